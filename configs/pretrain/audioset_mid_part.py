# The paper's AudioSet pretraining (appendix A.4): the recipe of
# k700_mid_part.py on 10-s AudioSet segments, global batch 300, 220K
# iterations.
#
# Global batch = GPUs x train_dataloader.batch_size x accumulative_counts:
# 60 x 5 x 1 here.  On 12 GPUs keep the recipe with
#   --cfg-options optim_wrapper.accumulative_counts=5
#
# Build the shards from a segment list (docs/data_preparation.md):
#   python tools/data/build_shards.py --list data/audioset/train_list.txt \
#       --out data/audioset/shards_train --reencode --workers 16
#
# One sample is T=10 back-to-back one-second clips (the whole segment) with
# the frames, crops and 128 x 220 log-mel spectrograms of Kinetics-700; only
# the clip-sampling step differs from the pipeline of
# configs/_base_/datasets/av_pretrain_videos.py.
_base_ = ['./k700_mid_part.py']

data_root = 'data/audioset/'
num_clips = 10

# Downloaded segments are often a few frames short of 10 s; `loop` repeats
# the missing tail instead of skipping the sample (set 'error' to skip).
train_sample_clips = dict(
    type='AVSampleClips', num_clips=num_clips, clip_duration=1.0,
    frames_per_clip=32, mode='random', jitter=0.1, short_policy='loop')

train_pipeline = [
    {{_base_.av_init}},
    train_sample_clips,
    {{_base_.av_decode}},
    dict(type='RandomCrop', size=112),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    {{_base_.logmel}},
    {{_base_.audio_norm}},
    {{_base_.audio_mask}},
    dict(type='PackAVInputs'),
]

train_dataloader = dict(
    batch_size=5,
    dataset=dict(urls=data_root + 'shards_train', pipeline=train_pipeline))
