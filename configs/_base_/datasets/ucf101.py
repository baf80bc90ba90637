# UCF101 (official download, see docs/downstream.md):
#   data/ucf101/videos/<Class>/v_<Class>_gXX_cYY.avi   (UCF101.rar's UCF-101/)
#   data/ucf101/ucfTrainTestlist/{classInd,trainlist0k,testlist0k}.txt
#
# Splits (downstream_splits.py): `ucf101_lists` names the lists of the three
# official splits; the dataloaders below use split 1.  To use split 2 or 3
# take the leaf configs *_split2.py / *_split3.py, or override the three
# ann_file entries.  A held-out part of every class of the training list
# selects the model.
#
# Clips (video only): F = 64 consecutive frames at UCF101's 25 fps (2.56 s;
# T_f = 64 and T_s = 8 for SlowFast with alpha = 8), frames scaled to the
# 128-pixel short side of av_clip_format.py while decoding, and its crops:
#   train: one clip at a random time, 112x112 random crop, horizontal flip;
#   val:   3 clips evenly spaced over the video, centre 128x128 crop (cheap);
#   test:  10 clips evenly spaced x 3 crops of 128x128 (left/centre/right or
#          top/centre/bottom) = 30 views, probabilities averaged (A.3).
# Per sample: inputs['video'] uint8 (T, 3, 64, H, W), or (3, 10, 3, 64, 128,
# 128) at test.
_base_ = ['./av_clip_format.py', './downstream_splits.py']

data_root = 'data/ucf101/'
ann_dir = data_root + 'ucfTrainTestlist/'
video_prefix = data_root + 'videos'
ucf101_lists = {
    f'split{k}': dict(train=f'{ann_dir}trainlist0{k}.txt',
                      test=f'{ann_dir}testlist0{k}.txt')
    for k in (1, 2, 3)}
num_classes = 101

fps = 25
frames_per_clip = 64
clip_duration = frames_per_clip / fps
train_pipeline = dict(
    type='AVSequencePipeline', modalities=('video', ),
    clips=dict(_base_.av_clips, num_clips=1, clip_duration=clip_duration,
               frames_per_clip=frames_per_clip, mode='random'),
    decode=dict(type='AVDecode', short_side=_base_.av_decode.short_side),
    video=_base_.av_video_train_steps)
val_pipeline = dict(
    train_pipeline, video=_base_.av_video_val_steps,
    clips=dict(train_pipeline['clips'], num_clips=3, mode='uniform'))
test_pipeline = dict(
    train_pipeline, video=_base_.av_video_test_steps,
    clips=dict(train_pipeline['clips'], num_clips=10, mode='uniform'))

dataset = dict(type='UCF101Dataset', data_prefix=dict(video=video_prefix))
train_dataloader = dict(batch_size=8, dataset=dict(dataset=dict(
    dataset, ann_file=ucf101_lists['split1']['train'],
    pipeline=train_pipeline)))
val_dataloader = dict(batch_size=4, dataset=dict(dataset=dict(
    dataset, ann_file=ucf101_lists['split1']['train'],
    pipeline=val_pipeline)))
test_dataloader = dict(batch_size=1, dataset=dict(
    dataset, ann_file=ucf101_lists['split1']['test'],
    pipeline=test_pipeline))

# The model pools the views of a sample into class probabilities.
val_evaluator = dict(type='MultiViewAccuracy', topk=(1, 5),
                     aggregate='mean_score')
test_evaluator = val_evaluator
