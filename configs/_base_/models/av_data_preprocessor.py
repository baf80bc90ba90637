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

# The same, computing the log-mel spectrograms on the device from the clips'
# waveforms (pipelines with audio=[]: no LogMelSpectrogram/AudioNormalize
# steps), with the arguments and statistics of av_clip_format.py's
# av_audio_steps.
av_device_log_mel = dict(sample_rate=16000, n_mels=128, n_fft=1024,
                         win_length=400, hop_length=73, num_frames=220)
av_device_log_mel_preprocessor = dict(
    av_data_preprocessor, audio_mean=-4.0, audio_std=4.0,
    audio_features=av_device_log_mel)
