# The UCF101 protocol on synthetic data for CPU runs: the layout of ucf101.py
# (videos/<Class>/v_<Class>_gXX_cYY.mp4, ucfTrainTestlist/) written by
# avtoolkit.data_prep.synthetic_layouts from the synthetic demo generator:
# 10 classes (the classes of the pretraining demo), 5 groups of 2 videos per
# class, 4-s videos of 160x128 pixels at 16 fps.  Split k tests on group k.
#
# Clips scaled down like the pretraining demo: 16 frames per 1-s clip (twice
# the 8 frames of pretraining, as the paper goes from 32 to 64), a 40-pixel
# short side, 32x32 training crops, 3 crops of 40x40 at test (10 clips x 3
# crops = 30 views).
_base_ = ['./ucf101.py']

data_root = 'data/demo_downstream/ucf101/'
ann_dir = data_root + 'ucfTrainTestlist/'
video_prefix = data_root + 'videos'
ucf101_lists = dict(
    split1=dict(train=ann_dir + 'trainlist01.txt',
                test=ann_dir + 'testlist01.txt'),
    split2=dict(train=ann_dir + 'trainlist02.txt',
                test=ann_dir + 'testlist02.txt'),
    split3=dict(train=ann_dir + 'trainlist03.txt',
                test=ann_dir + 'testlist03.txt'))
num_classes = 10

# Made before the Runner starts, if absent (see docs/downstream.md).
synthetic_downstream = dict(
    out_dir=data_root, layout='ucf101', num_videos=100, seconds=4,
    num_classes=num_classes, seed=0, height=128, width=160, fps=16,
    num_groups=5, workers=2)

frames_per_clip = 16
clip_duration = 1.0
short_side = 40
train_crop_size = 32
test_crop_size = 40

# Merged into the base's pipelines (the step lists replace the base's).
train_clips = dict(frames_per_clip=frames_per_clip,
                   clip_duration=clip_duration)
val_clips = dict(train_clips, num_clips=3)
test_clips = dict(train_clips, num_clips=10)
decode = dict(short_side=short_side)
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
train_pipeline = dict(clips=train_clips, decode=decode,
                      video=video_train_steps)
val_pipeline = dict(clips=val_clips, decode=decode, video=video_val_steps)
test_pipeline = dict(clips=test_clips, decode=decode, video=video_test_steps)

train_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(dataset=dict(
        ann_file=ucf101_lists['split1']['train'],
        data_prefix=dict(video=video_prefix), pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(dataset=dict(
        ann_file=ucf101_lists['split1']['train'],
        data_prefix=dict(video=video_prefix), pipeline=val_pipeline)))
test_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(
        ann_file=ucf101_lists['split1']['test'],
        data_prefix=dict(video=video_prefix), pipeline=test_pipeline))
