# Audio-visual pretraining data read from a list of raw video files.
#
# List file: one video per line, "path [label]" (labels are ignored in
# pretraining), paths relative to data_prefix.  Only the sampled 30 seconds of
# each video are decoded (seek + segment decoding), at any resolution, frame
# rate, sample rate and channel layout; frames are scaled to a 128-pixel short
# side while being converted.
#
# One sample: T=30 back-to-back one-second clips at a random position, with
# synchronised audio-visual jitter; per clip F=32 evenly spaced frames, a
# 112x112 random crop, horizontal flip, and a 128-bin log-mel spectrogram of
# 220 frames.  Videos shorter than 30 s are skipped and counted (bad-input
# policy); set short_policy='loop' to repeat them instead.
#
# Per sample: inputs['video'] uint8 (30, 3, 32, 112, 112), inputs['audio']
# float32 (30, 1, 128, 220); use `av_data_preprocessor` as the model's data
# preprocessor (normalises the video on the device).

data_root = 'data/kinetics700/'
ann_file_train = data_root + 'train_list.txt'
video_prefix = data_root + 'videos'

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

# The steps are named so that a dataset with other clip counts or spectrogram
# settings (e.g. audioset_pretrain_shards.py) replaces single steps and
# reuses the rest.
av_init = dict(type='AVInit', modalities=('video', 'audio'), num_threads=1)
train_sample_clips = dict(
    type='AVSampleClips', num_clips=num_clips, clip_duration=clip_duration,
    frames_per_clip=frames_per_clip, mode='random', jitter=temporal_jitter,
    short_policy='error')
val_sample_clips = dict(
    type='AVSampleClips', num_clips=num_clips, clip_duration=clip_duration,
    frames_per_clip=frames_per_clip, mode='center', short_policy='loop')
av_decode = dict(type='AVDecode', short_side=short_side,
                 sample_rate=sample_rate)
logmel = dict(type='LogMelSpectrogram', sample_rate=sample_rate,
              n_mels=n_mels, n_fft=1024, win_length=400, hop_length=73,
              num_frames=mel_frames)
audio_norm = dict(type='AudioNormalize', mean=audio_mean, std=audio_std)
audio_mask = dict(type='AudioMask', prob=audio_mask_prob, freq_mask_param=24,
                  time_mask_param=40)

train_pipeline = [
    av_init,
    train_sample_clips,
    av_decode,
    dict(type='RandomCrop', size=crop_size),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    logmel,
    audio_norm,
    audio_mask,
    dict(type='PackAVInputs'),
]

# Deterministic variant (centred sequence, no flip, centre crop) for
# monitoring the pretraining losses on held-out videos.
val_pipeline = [
    av_init,
    val_sample_clips,
    av_decode,
    dict(type='CenterCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    logmel,
    audio_norm,
    dict(type='PackAVInputs'),
]

av_data_preprocessor = dict(
    type='AVDataPreprocessor', video_mean=video_mean, video_std=video_std)

train_dataloader = dict(
    batch_size=4,
    num_workers=8,
    persistent_workers=True,
    # Iteration-based pretraining: an endless, per-rank shuffled stream.
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='AVVideoDataset',
        ann_file=ann_file_train,
        data_prefix=dict(video=video_prefix),
        pipeline=train_pipeline,
        bad_input=dict(mode='skip', max_retries=50, log_interval=100)))
