# The synthetic demo data (tools/data/make_synthetic_av.py): 8-s videos of
# 128x128 pixels at 16 fps with 16 kHz mono audio, 10 latent classes whose
# per-second events are seen and heard together, with a new backdrop and
# audio background every second (scene_seconds=1: with one backdrop per
# video, pretraining learned to tell backdrops apart instead of classes; see
# docs/benchmarks.md).  Sequences are cut small
# for a CPU run: T=8 one-second clips of 8 frames, 32x32 crops, 64-bin
# log-mel spectrograms of 101 frames (hop 160 at 16 kHz).
data_root = 'data/demo/'

# Made by tools/train.py before the Runner starts, if absent.
synthetic_data = dict(out_dir=data_root, num_videos=200, seconds=8,
                      num_classes=10, seed=0, val_fraction=0.3,
                      scene_seconds=1, workers=2)

num_clips = 8
frames_per_clip = 8
short_side = 40
crop_size = 32
sample_rate = 16000
logmel = dict(type='LogMelSpectrogram', sample_rate=sample_rate, n_mels=64,
              n_fft=512, win_length=400, hop_length=160, num_frames=101)
video_mean = [123.675, 116.28, 103.53]
video_std = [58.395, 57.12, 57.375]
audio_norm = dict(type='AudioNormalize', mean=-4.0, std=4.0)

train_pipeline = [
    dict(type='AVInit', modalities=('video', 'audio'), num_threads=1),
    dict(type='AVSampleClips', num_clips=num_clips, clip_duration=1.0,
         frames_per_clip=frames_per_clip, mode='random', jitter=0.1,
         short_policy='error'),
    dict(type='AVDecode', short_side=short_side, sample_rate=sample_rate),
    dict(type='RandomCrop', size=crop_size),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    logmel,
    audio_norm,
    dict(type='PackAVInputs'),
]
# Deterministic sequences for probes and evaluation.
test_pipeline = [
    dict(type='AVInit', modalities=('video', 'audio'), num_threads=1),
    dict(type='AVSampleClips', num_clips=num_clips, clip_duration=1.0,
         frames_per_clip=frames_per_clip, mode='center', short_policy='loop'),
    dict(type='AVDecode', short_side=short_side, sample_rate=sample_rate),
    dict(type='CenterCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    logmel,
    audio_norm,
    dict(type='PackAVInputs'),
]

av_data_preprocessor = dict(
    type='AVDataPreprocessor', video_mean=video_mean, video_std=video_std)

train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='AVVideoDataset',
        ann_file=data_root + 'train_list.txt',
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline,
        bad_input=dict(mode='skip')))

# Labelled sets of the probes (ProbeHook): fit on train, score on val.
probe_dataset = dict(
    type='AVVideoDataset',
    data_prefix=dict(video=data_root),
    pipeline=test_pipeline,
    test_mode=True)
probe_train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(probe_dataset, ann_file=data_root + 'train_list.txt'))
probe_val_dataloader = dict(
    probe_train_dataloader,
    dataset=dict(probe_dataset, ann_file=data_root + 'val_list.txt'))
