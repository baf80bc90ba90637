# The splits and dataloaders of the fine-tuning protocols (Kinetics-Sounds,
# Charades, UCF101): the test set is the official test list, used only by
# tools/test.py; `val_fraction` of the training list (chosen with
# `holdout_seed`, the same for both parts) is held out for model selection
# (HoldOutSplit), and the model trains on the rest.  A dataset base merges
# its dataset (type, files, pipeline) and batch sizes into these loaders:
#   train_dataloader = dict(batch_size=4, dataset=dict(dataset=dict(
#       type=..., ann_file=..., pipeline=train_pipeline)))
val_fraction = 0.1
holdout_seed = 0

train_dataloader = dict(
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='HoldOutSplit',
        part='train',
        val_fraction=val_fraction,
        seed=holdout_seed,
        dataset=dict(bad_input=dict(mode='skip'))))
val_dataloader = dict(
    train_dataloader,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(train_dataloader['dataset'], part='val',
                 dataset=dict(test_mode=True)))
test_dataloader = dict(val_dataloader, dataset=dict(test_mode=True))
