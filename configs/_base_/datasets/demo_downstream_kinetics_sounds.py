# The Kinetics-Sounds protocol on synthetic data for CPU runs: the layout of
# kinetics_sounds.py (videos/<youtube_id>_<start>_<end>.mp4, train.csv,
# validate.csv, classes.txt) written by avtoolkit.data_prep.synthetic_layouts
# from the synthetic demo generator: 10 classes (those of the pretraining
# demo), 100 videos of 8 s at 160x128 pixels, 30% of every class in
# validate.csv (the test set).
#
# Sequences as in the pretraining demo: T = 8 one-second clips of 8 frames, a
# 40-pixel short side, 32x32 training crops, 3 crops of 40x40 at test, 64-bin
# log-mel spectrograms of 101 frames.
_base_ = ['./kinetics_sounds.py']

data_root = 'data/demo_downstream/kinetics_sounds/'
video_prefix = data_root + 'videos'
ann_file_train = data_root + 'train.csv'
ann_file_test = data_root + 'validate.csv'
class_file = data_root + 'classes.txt'
num_classes = 10
synthetic_downstream = dict(
    out_dir=data_root, layout='kinetics_sounds', num_videos=100, seconds=8,
    num_classes=num_classes, seed=0, height=128, width=160, fps=16,
    test_fraction=0.3, workers=2)

# The clip format of the pretraining demo.  These dicts are merged into the
# base's (its pipelines keep their type, modalities and clip modes); the
# step lists replace the base's.
num_clips = 8
frames_per_clip = 8
short_side = 40
train_crop_size = 32
test_crop_size = 40
sample_rate = 16000
train_clips = dict(num_clips=num_clips, frames_per_clip=frames_per_clip)
test_clips = dict(num_clips=num_clips, frames_per_clip=frames_per_clip)
decode = dict(short_side=short_side, sample_rate=sample_rate)
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
audio_steps = [
    dict(type='LogMelSpectrogram', sample_rate=sample_rate, n_mels=64,
         n_fft=512, win_length=400, hop_length=160, num_frames=101),
    dict(type='AudioNormalize', mean=-4.0, std=4.0),
]
train_pipeline = dict(clips=train_clips, decode=decode,
                      video=video_train_steps, audio=audio_steps)
val_pipeline = dict(clips=test_clips, decode=decode, video=video_val_steps,
                    audio=audio_steps)
test_pipeline = dict(clips=test_clips, decode=decode, video=video_test_steps,
                     audio=audio_steps)

train_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(dataset=dict(
        ann_file=ann_file_train, classes=class_file,
        data_prefix=dict(video=video_prefix), pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(dataset=dict(
        ann_file=ann_file_train, classes=class_file,
        data_prefix=dict(video=video_prefix), pipeline=val_pipeline)))
test_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(
        ann_file=ann_file_test, classes=class_file,
        data_prefix=dict(video=video_prefix), pipeline=test_pipeline))
