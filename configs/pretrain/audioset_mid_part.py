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
# the frames, crops and 128 x 220 log-mel spectrograms of Kinetics-700: only
# the clip sampling of the pipeline (av_pretrain_videos.py) differs.
_base_ = ['./k700_mid_part.py']

data_root = 'data/audioset/'
# Downloaded segments are often a few frames short of 10 s; `loop` repeats
# the missing tail instead of skipping the sample (set 'error' to skip).
train_pipeline = dict(clips=dict(num_clips=10, short_policy='loop'))

train_dataloader = dict(
    batch_size=5,
    dataset=dict(urls=data_root + 'shards_train', pipeline=train_pipeline))
