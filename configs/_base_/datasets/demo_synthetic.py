# The synthetic demo data (tools/data/make_synthetic_av.py): 8-s videos of
# 128x128 pixels at 16 fps with 16 kHz mono audio, 10 latent classes whose
# per-second events are seen and heard together, with a new backdrop and
# audio background every second (scene_seconds=1: with one backdrop per
# video, pretraining learned to tell backdrops apart instead of classes; see
# docs/benchmarks.md).  Sequences in the demo clip format
# (demo_clip_format.py), cut small for a CPU run: T=8 one-second clips of 8
# frames, 32x32 crops, 64-bin log-mel spectrograms of 101 frames.
_base_ = ['./demo_clip_format.py']

data_root = 'data/demo/'

# Made by tools/train.py before the Runner starts, if absent.
synthetic_data = dict(out_dir=data_root, num_videos=200, seconds=8,
                      num_classes=10, seed=0, val_fraction=0.3,
                      scene_seconds=1, workers=2)

train_pipeline = dict(
    type='AVSequencePipeline', modalities=('video', 'audio'),
    clips=dict(_base_.demo_clips, mode='random', jitter=0.1,
               short_policy='error'),
    decode=_base_.demo_decode, video=_base_.demo_video_train_steps,
    audio=_base_.demo_audio_steps)
# Deterministic sequences (centred, centre crop of the training size) for
# probes and evaluation.
test_pipeline = dict(
    train_pipeline,
    clips=dict(_base_.demo_clips, mode='center', short_policy='loop'),
    video=[dict(type='CenterCrop', crop_size=32),
           dict(type='FormatShape', input_format='NCTHW')])

train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    drop_last=True,  # full batches only, as av_pretrain_videos.py
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
