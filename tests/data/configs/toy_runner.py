# A tiny Runner job for tests: a 2-layer MLP regressing a linear target.
_base_ = ['../../../configs/_base_/default_runtime.py']

custom_imports = dict(imports=['toy_modules'], allow_failed_imports=False)

model = dict(type='ToyRegressor', in_dim=8, hidden=16)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ToyRegressionDataset', num_samples=64, in_dim=8))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20, val_interval=1000)
val_cfg = None
val_dataloader = None
val_evaluator = None
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=10)
]
default_hooks = dict(
    checkpoint=dict(interval=10, by_epoch=False, max_keep_ckpts=5),
    logger=dict(interval=5))
log_processor = dict(by_epoch=False)
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
randomness = dict(seed=0)
