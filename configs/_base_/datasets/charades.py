# Charades (official download, see docs/downstream.md):
#   data/charades/Charades_v1_480/<id>.mp4
#   data/charades/Charades_v1_train.csv, Charades_v1_test.csv
#       (id,...,actions,length; actions = "c092 11.90 21.20;c147 0.00 12.60")
# Multi-label over 157 classes: the label of a video is the set of classes of
# its actions (CharadesDataset gives one-hot vectors).
#
# Splits (downstream_splits.py): Charades_v1_test.csv is the test set; a
# held-out part of Charades_v1_train.csv selects the model (random, not
# stratified, as videos have several labels).
#
# One sample: T = 30 one-second clips spread evenly over the whole video
# (about 30 s on average) in the clip format of av_clip_format.py:
#   train: clips evenly spread with synchronised jitter, 112x112 crop, flip;
#   val:   evenly spread, centre 128x128 crop;
#   test:  evenly spread, 3 crops of 128x128 (3 views), probabilities
#          max-pooled (A.3); metric: mAP over classes.
# Settings: the pipelines read video and audio (M); the V and A configs set
# their `modalities` to ('video',) or ('audio',).
_base_ = ['./av_clip_format.py', './downstream_splits.py']

data_root = 'data/charades/'
video_prefix = data_root + 'Charades_v1_480'
ann_file_train = data_root + 'Charades_v1_train.csv'
ann_file_test = data_root + 'Charades_v1_test.csv'
num_classes = 157

train_pipeline = dict(_base_.av_train_pipeline,
                      clips=dict(_base_.av_train_clips, mode='uniform'))
val_pipeline = dict(_base_.av_val_pipeline,
                    clips=dict(_base_.av_test_clips, mode='uniform'))
test_pipeline = dict(_base_.av_test_pipeline, clips=val_pipeline['clips'])

dataset_type = 'CharadesDataset'
dataset = dict(type=dataset_type, num_classes=num_classes,
               data_prefix=dict(video=video_prefix))
train_dataloader = dict(batch_size=1, dataset=dict(
    stratify=False,
    dataset=dict(dataset, ann_file=ann_file_train, pipeline=train_pipeline)))
val_dataloader = dict(batch_size=2, dataset=dict(
    stratify=False,
    dataset=dict(dataset, ann_file=ann_file_train, pipeline=val_pipeline)))
test_dataloader = dict(batch_size=1, dataset=dict(
    dataset, ann_file=ann_file_test, pipeline=test_pipeline))

# The model max-pools the view probabilities of a sample; labels are one-hot.
val_evaluator = dict(type='MultiLabelMAP', aggregate='max',
                     label_format='multi_hot')
test_evaluator = val_evaluator
