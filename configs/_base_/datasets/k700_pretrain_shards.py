# Audio-visual pretraining data streamed from WebDataset shards.
#
# Build the shards first (docs/data_preparation.md):
#   python tools/data/build_shards.py --list data/kinetics700/train_list.txt \
#       --out data/kinetics700/shards_train --reencode --workers 16
# (re-encoded copies: 128-pixel short side, 16 fps H.264 with a key frame per
# second, 16 kHz mono AAC).
#
# The samples are those of av_pretrain_videos.py (its pipeline); only the
# dataset differs.

_base_ = ['./av_pretrain_videos.py']

data_root = 'data/kinetics700/'
train_shards = data_root + 'shards_train'  # a folder holding index.json

train_dataloader = dict(
    # Keeps the dataset copies in the workers alive, so that the shard order
    # changes from epoch to epoch (AVWebDataset counts epochs per process).
    persistent_workers=True,
    # Inherited, and needed here most: an epoch of shards ends with one
    # incomplete batch per worker, whose size depends on the records
    # skipped as bad inputs; a batch of one sequence cannot train CPP.
    drop_last=True,
    sampler=None,  # an iterable dataset: shards are split by rank and worker
    dataset=dict(
        _delete_=True,
        type='AVWebDataset',
        urls=train_shards,
        pipeline=_base_.train_pipeline,
        shuffle_buffer=1000,
        shard_shuffle=True,
        seed=0,
        bad_input=dict(mode='skip', max_retries=50, log_interval=100)))
