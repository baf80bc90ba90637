# Audio-visual pretraining data streamed from WebDataset shards.
#
# Build the shards first (docs/data_preparation.md):
#   python tools/data/build_shards.py --list data/kinetics700/train_list.txt \
#       --out data/kinetics700/shards_train --reencode --workers 16
# (re-encoded copies: 128-pixel short side, 16 fps H.264 with a key frame per
# second, 16 kHz mono AAC).
#
# One sample: T=30 back-to-back one-second clips at a random position, with
# synchronised audio-visual jitter; per clip F=32 evenly spaced frames (the
# SlowFast fast pathway), a 112x112 random crop (the same for the whole
# sample), horizontal flip, and a 128-bin log-mel spectrogram of 220 frames
# (16 kHz, 25 ms window, hop 73 samples).  Videos shorter than 30 s are
# skipped and counted (bad-input policy); set short_policy='loop' in
# AVSampleClips to repeat them instead.
#
# Per sample: inputs['video'] uint8 (30, 3, 32, 112, 112) and
# inputs['audio'] float32 (30, 1, 128, 220).  The video is normalised on the
# device by the model's data preprocessor: use `av_data_preprocessor` below as
# model.data_preprocessor (avtoolkit's AVDataPreprocessor), which
# stacks the batch to (B, 30, 3, 32, 112, 112) and (B, 30, 1, 128, 220).

data_root = 'data/kinetics700/'
train_shards = data_root + 'shards_train'  # a folder holding index.json

num_clips = 30
clip_duration = 1.0
frames_per_clip = 32
crop_size = 112
short_side = 128
sample_rate = 16000
n_mels = 128
mel_frames = 220
temporal_jitter = 0.1  # seconds; the paper gives no value
# Rough log-mel statistics of natural recordings; recompute on your data.
audio_mean = -4.0
audio_std = 4.0
audio_mask_prob = 0.0  # SpecAugment-style masks; off as in the paper
video_mean = [123.675, 116.28, 103.53]
video_std = [58.395, 57.12, 57.375]

train_pipeline = [
    dict(type='AVInit', modalities=('video', 'audio'), num_threads=1),
    dict(type='AVSampleClips', num_clips=num_clips,
         clip_duration=clip_duration, frames_per_clip=frames_per_clip,
         mode='random', jitter=temporal_jitter, short_policy='error'),
    dict(type='AVDecode', short_side=short_side, sample_rate=sample_rate),
    dict(type='RandomCrop', size=crop_size),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='LogMelSpectrogram', sample_rate=sample_rate, n_mels=n_mels,
         n_fft=1024, win_length=400, hop_length=73, num_frames=mel_frames),
    dict(type='AudioNormalize', mean=audio_mean, std=audio_std),
    dict(type='AudioMask', prob=audio_mask_prob, freq_mask_param=24,
         time_mask_param=40),
    dict(type='PackAVInputs'),
]

av_data_preprocessor = dict(
    type='AVDataPreprocessor', video_mean=video_mean, video_std=video_std)

train_dataloader = dict(
    batch_size=4,
    num_workers=8,
    # Keeps the dataset copies in the workers alive, so that the shard order
    # changes from epoch to epoch (AVWebDataset counts epochs per process).
    persistent_workers=True,
    sampler=None,  # an iterable dataset: shards are split by rank and worker
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='AVWebDataset',
        urls=train_shards,
        pipeline=train_pipeline,
        shuffle_buffer=1000,
        shard_shuffle=True,
        seed=0,
        bad_input=dict(mode='skip', max_retries=50, log_interval=100)))
