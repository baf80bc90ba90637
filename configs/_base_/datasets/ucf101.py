# UCF101 (official download, see docs/downstream.md):
#   data/ucf101/videos/<Class>/v_<Class>_gXX_cYY.avi   (UCF101.rar's UCF-101/)
#   data/ucf101/ucfTrainTestlist/{classInd,trainlist0k,testlist0k}.txt
#
# Splits: `ucf101_lists` names the lists of the three official splits; the
# dataloaders below use split 1.  To use split 2 or 3 take the leaf configs
# *_split2.py / *_split3.py, or override the three ann_file entries.
#
# Model selection: `val_fraction` of every class of the training list (chosen
# with `holdout_seed`, the same for both parts) is held out for validation
# (HoldOutSplit); the test list is only used by tools/test.py.
#
# Clips: F = 64 consecutive frames at UCF101's 25 fps (2.56 s; T_f = 64 and
# T_s = 8 for SlowFast with alpha = 8), frames scaled to a 128-pixel short
# side while decoding.
#   train: one clip at a random time, 112x112 random crop, horizontal flip;
#   val:   3 clips evenly spaced over the video, centre 128x128 crop (cheap);
#   test:  10 clips evenly spaced x 3 crops of 128x128 (left/centre/right or
#          top/centre/bottom) = 30 views, probabilities averaged (A.3).
# Per sample: inputs['video'] uint8 (T, 3, 64, H, W), or (3, 10, 3, 64, 128,
# 128) at test; normalised on the device by `av_data_preprocessor`.
data_root = 'data/ucf101/'
ann_dir = data_root + 'ucfTrainTestlist/'
video_prefix = data_root + 'videos'
ucf101_lists = dict(
    split1=dict(train=ann_dir + 'trainlist01.txt',
                test=ann_dir + 'testlist01.txt'),
    split2=dict(train=ann_dir + 'trainlist02.txt',
                test=ann_dir + 'testlist02.txt'),
    split3=dict(train=ann_dir + 'trainlist03.txt',
                test=ann_dir + 'testlist03.txt'))
num_classes = 101
val_fraction = 0.1
holdout_seed = 0

fps = 25
frames_per_clip = 64
clip_duration = frames_per_clip / fps
short_side = 128
train_crop_size = 112
test_crop_size = 128
num_val_clips = 3
num_test_clips = 10
video_mean = [123.675, 116.28, 103.53]
video_std = [58.395, 57.12, 57.375]

train_clips = dict(type='AVSampleClips', num_clips=1,
                   clip_duration=clip_duration,
                   frames_per_clip=frames_per_clip, mode='random',
                   short_policy='loop')
val_clips = dict(train_clips, num_clips=num_val_clips, mode='uniform')
test_clips = dict(train_clips, num_clips=num_test_clips, mode='uniform')
decode = dict(type='AVDecode', short_side=short_side)
video_train_steps = [
    dict(type='RandomCrop', size=train_crop_size),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
]
video_val_steps = [
    dict(type='CenterCrop', crop_size=test_crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
]
video_test_steps = [
    dict(type='ThreeCrop', crop_size=test_crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
]
train_pipeline = dict(type='AVSequencePipeline', modalities=('video', ),
                      clips=train_clips, decode=decode,
                      video=video_train_steps)
val_pipeline = dict(train_pipeline, clips=val_clips, video=video_val_steps)
test_pipeline = dict(train_pipeline, clips=test_clips,
                     video=video_test_steps)

av_data_preprocessor = dict(
    type='AVDataPreprocessor', video_mean=video_mean, video_std=video_std)

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='HoldOutSplit',
        part='train',
        val_fraction=val_fraction,
        seed=holdout_seed,
        dataset=dict(
            type='UCF101Dataset',
            ann_file=ucf101_lists['split1']['train'],
            data_prefix=dict(video=video_prefix),
            pipeline=train_pipeline,
            bad_input=dict(mode='skip'))))
val_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='HoldOutSplit',
        part='val',
        val_fraction=val_fraction,
        seed=holdout_seed,
        dataset=dict(
            type='UCF101Dataset',
            ann_file=ucf101_lists['split1']['train'],
            data_prefix=dict(video=video_prefix),
            pipeline=val_pipeline,
            test_mode=True)))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='UCF101Dataset',
        ann_file=ucf101_lists['split1']['test'],
        data_prefix=dict(video=video_prefix),
        pipeline=test_pipeline,
        test_mode=True))

# The model pools the views of a sample into class probabilities.
val_evaluator = dict(type='MultiViewAccuracy', topk=(1, 5),
                     aggregate='mean_score')
test_evaluator = val_evaluator
