# The UCF101 protocol on synthetic data for CPU runs: the layout of ucf101.py
# (videos/<Class>/v_<Class>_gXX_cYY.mp4, ucfTrainTestlist/) written by
# avtoolkit.data_prep.synthetic_layouts from the synthetic demo generator:
# 10 classes (the classes of the pretraining demo), 5 groups of 2 videos per
# class, 4-s videos of 160x128 pixels at 16 fps.  Split k tests on group k.
#
# Clips scaled down like the pretraining demo (demo_clip_format.py): 16
# frames per 1-s clip (twice the 8 frames of pretraining, as the paper goes
# from 32 to 64), a 40-pixel short side, 32x32 training crops, 3 crops of
# 40x40 at test (10 clips x 3 crops = 30 views).
_base_ = ['./ucf101.py', './demo_clip_format.py']

data_root = 'data/demo_downstream/ucf101/'
ann_dir = data_root + 'ucfTrainTestlist/'
video_prefix = data_root + 'videos'
ucf101_lists = {
    f'split{k}': dict(train=f'{ann_dir}trainlist0{k}.txt',
                      test=f'{ann_dir}testlist0{k}.txt')
    for k in (1, 2, 3)}
num_classes = 10

# Made before the Runner starts, if absent (see docs/downstream.md).
synthetic_downstream = dict(
    out_dir=data_root, layout='ucf101', num_videos=100, seconds=4,
    num_classes=num_classes, seed=0, height=128, width=160, fps=16,
    num_groups=5, workers=2)

# Merged into ucf101.py's pipelines and datasets.
frames_per_clip = 16
clip_duration = 1.0
clips = dict(frames_per_clip=frames_per_clip, clip_duration=clip_duration)
decode = dict(short_side=_base_.demo_decode.short_side)
train_pipeline = dict(clips=clips, decode=decode,
                      video=_base_.demo_video_train_steps)
val_pipeline = dict(train_pipeline, video=_base_.demo_video_val_steps)
test_pipeline = dict(train_pipeline, video=_base_.demo_video_test_steps)
dataset = dict(data_prefix=dict(video=video_prefix))
train_dataloader = dict(batch_size=8, num_workers=1, dataset=dict(dataset=dict(
    dataset, ann_file=ucf101_lists['split1']['train'],
    pipeline=train_pipeline)))
val_dataloader = dict(batch_size=8, num_workers=1, dataset=dict(dataset=dict(
    dataset, ann_file=ucf101_lists['split1']['train'],
    pipeline=val_pipeline)))
test_dataloader = dict(batch_size=4, num_workers=1, dataset=dict(
    dataset, ann_file=ucf101_lists['split1']['test'],
    pipeline=test_pipeline))
