# Kinetics-Sounds (the Kinetics classes with audible sound events; 32 classes
# in the paper), from a Kinetics download (see docs/downstream.md):
#   data/kinetics_sounds/videos/<youtube_id>_<start:06d>_<end:06d>.mp4
#   data/kinetics_sounds/train.csv, validate.csv
#       (Kinetics CSVs: label,youtube_id,time_start,time_end,split, with the
#        rows of the Kinetics-Sounds classes only: a label outside
#        classes.txt is an error naming the line; to read the full Kinetics
#        CSVs set unknown_labels='drop' on the three datasets)
#   data/kinetics_sounds/classes.txt   (the class names, one per line)
# Videos in class folders: set filename_tmpl='{label}/{youtube_id}_...' on the
# datasets (see KineticsSoundsDataset).
#
# Splits (downstream_splits.py): Kinetics' validation videos are the test
# set; a held-out part of every class of train.csv selects the model.
#
# One sample: the T = 10 one-second clips of a 10-s video (repeated if
# shorter) in the clip format of av_clip_format.py:
#   train: random position, synchronised jitter, 112x112 crop, flip;
#   val:   centred sequence, centre 128x128 crop;
#   test:  centred sequence, 3 crops of 128x128 (3 views), probabilities
#          averaged (A.3).
# Settings: the pipelines read video and audio (M); the V and A configs set
# their `modalities` to ('video',) or ('audio',) (an audio-only sample has
# one view).
_base_ = ['./av_clip_format.py', './downstream_splits.py']

data_root = 'data/kinetics_sounds/'
video_prefix = data_root + 'videos'
ann_file_train = data_root + 'train.csv'
ann_file_test = data_root + 'validate.csv'
class_file = data_root + 'classes.txt'
num_classes = 32

train_pipeline = dict(_base_.av_train_pipeline,
                      clips=dict(_base_.av_train_clips, num_clips=10))
val_pipeline = dict(_base_.av_val_pipeline,
                    clips=dict(_base_.av_test_clips, num_clips=10))
test_pipeline = dict(_base_.av_test_pipeline, clips=val_pipeline['clips'])

dataset_type = 'KineticsSoundsDataset'
dataset = dict(type=dataset_type, classes=class_file,
               data_prefix=dict(video=video_prefix))
train_dataloader = dict(batch_size=4, dataset=dict(dataset=dict(
    dataset, ann_file=ann_file_train, pipeline=train_pipeline)))
val_dataloader = dict(batch_size=4, dataset=dict(dataset=dict(
    dataset, ann_file=ann_file_train, pipeline=val_pipeline)))
test_dataloader = dict(batch_size=2, dataset=dict(
    dataset, ann_file=ann_file_test, pipeline=test_pipeline))

# The model averages the probabilities of the views of a sample.
val_evaluator = dict(type='MultiViewAccuracy', topk=(1, 5),
                     aggregate='mean_score')
test_evaluator = val_evaluator
