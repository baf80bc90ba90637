# The demo: pretrain a small AVBERT (mid fusion, part sharing, CANS-Similar,
# MEP + CPP: the paper's code paths at small width) on generated data, on a
# CPU, then compare linear probes of its frozen features with the same
# architecture's random initial weights.
#   python tools/train.py configs/pretrain/demo_mid_part.py
# The synthetic data is generated into data/demo/ first if absent.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/avbert_tiny.py',
    '../_base_/datasets/demo_synthetic.py',
    '../_base_/schedules/adamw_warmup_linear.py',
]

max_iters = 300
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters + 1)
val_cfg = None
val_dataloader = None
val_evaluator = None

# The optimiser of the paper's recipes at a higher rate, with gradient
# clipping and without its norm/bias and accumulation settings.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='GroupedOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.98),
                   weight_decay=1e-4, amsgrad=True),
    paramwise_cfg=dict(groups=[_base_.orthogonal_group]),
    clip_grad=dict(max_norm=5.0))

custom_hooks = _base_.custom_hooks + [
    dict(type='ProbeHook',
         train_dataloader=_base_.probe_train_dataloader,
         val_dataloader=_base_.probe_val_dataloader,
         features=('z_summary', 'z_mean', 'x_mean'),
         main_feature='z_mean'),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=200, by_epoch=False,
                    max_keep_ckpts=2),
    logger=dict(type='LoggerHook', interval=20))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
