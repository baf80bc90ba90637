# Audio-visual pretraining data read from a list of raw video files.
#
# List file: one video per line, "path [label]" (labels are ignored in
# pretraining), paths relative to data_prefix.  Only the sampled 30 seconds of
# each video are decoded (seek + segment decoding), at any resolution, frame
# rate, sample rate and channel layout.
#
# One sample: the training pipeline of av_clip_format.py (30 back-to-back
# one-second clips at a random position with synchronised jitter, 112x112
# random crop, flip, log-mel spectrograms) with two changes: videos shorter
# than 30 s are skipped and counted (bad-input policy; short_policy='loop'
# repeats them instead), and SpecAugment-style masks follow the log-mel step
# (off, as in the paper).  Per sample: inputs['video'] uint8 (30, 3, 32, 112,
# 112), inputs['audio'] float32 (30, 1, 128, 220).
_base_ = ['./av_clip_format.py']

data_root = 'data/kinetics700/'
ann_file_train = data_root + 'train_list.txt'
video_prefix = data_root + 'videos'

audio_mask_prob = 0.0
audio_mask = dict(type='AudioMask', prob=audio_mask_prob, freq_mask_param=24,
                  time_mask_param=40)
train_pipeline = dict(
    _base_.av_train_pipeline,
    clips=dict(_base_.av_train_clips, short_policy='error'),
    audio=_base_.av_audio_steps + [audio_mask])
# Deterministic variant (centred sequence, no flip, centre crop of the
# training size) for monitoring the pretraining losses on held-out videos.
val_pipeline = dict(
    _base_.av_val_pipeline,
    video=[dict(type='CenterCrop', crop_size=112),
           dict(type='FormatShape', input_format='NCTHW')])

train_dataloader = dict(
    batch_size=4,
    num_workers=8,
    persistent_workers=True,
    # Full batches only: correct pair prediction needs two sequences per
    # batch, and skipped bad inputs make an epoch's sample count unknown in
    # advance (with an iterable dataset every worker drops its own
    # incomplete last batch, at most batch_size - 1 samples per worker and
    # epoch).  With the InfiniteSampler below no batch is ever incomplete.
    drop_last=True,
    # Iteration-based pretraining: an endless, per-rank shuffled stream.
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='AVVideoDataset',
        ann_file=ann_file_train,
        data_prefix=dict(video=video_prefix),
        pipeline=train_pipeline,
        bad_input=dict(mode='skip', max_retries=50, log_interval=100)))
