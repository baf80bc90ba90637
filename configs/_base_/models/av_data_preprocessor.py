# The input normalisation of the AVBERT models: the pipelines hand over uint8
# RGB frames and log-mel spectrograms that are already normalised
# (AudioNormalize); AVDataPreprocessor stacks the batch and normalises the
# frames on the device with the ImageNet statistics (0-255 scale).  The
# statistics belong to the model: a checkpoint is fine-tuned and evaluated
# with those it was pretrained with, whatever the dataset.
video_mean = [123.675, 116.28, 103.53]
video_std = [58.395, 57.12, 57.375]
av_data_preprocessor = dict(
    type='AVDataPreprocessor', video_mean=video_mean, video_std=video_std)
