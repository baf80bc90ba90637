# Parts shared by the fine-tuning schedules (paper, appendix A.4): the AMSGrad
# variant of AdamW with betas (0.9, 0.98) and weight decay 1e-4, linear
# warm-up over the first 6% of the iterations then linear decay to zero,
# iteration-based training with periodic validation on the held-out part of
# the training list.  The recipes set the learning rates, the parameter
# groups, the length and the metric that selects the best checkpoint.
#
# Global batch = GPUs x train_dataloader.batch_size x accumulative_counts.
# The runtime settings (default scope avtoolkit, hooks) come from
# default_runtime.py, whose checkpoint and logger hooks are adapted here.
_base_ = ['../default_runtime.py']

optim_wrapper = dict(
    type='OptimWrapper',
    constructor='GroupedOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.98), weight_decay=1e-4,
        amsgrad=True),
    paramwise_cfg=dict(groups=[], no_decay_norm=False, no_decay_bias=False),
    accumulative_counts=1,
    clip_grad=None)

param_scheduler = [
    # total_iters is filled from train_cfg.max_iters by tools/train.py
    dict(type='WarmupLinearDecayLR', warmup_ratio=0.06, total_iters=None)
]

train_cfg = dict(type='IterBasedTrainLoop', max_iters=40_000,
                 val_interval=2_000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='ParamGroupLrHook'),
    dict(type='ThroughputHook'),
    dict(type='BadInputLoggerHook', interval=50),
]
# Model selection: the checkpoint with the best validation metric (on the part
# carved out of the training list, never the test split) is kept as
# best_<metric>_iter_<n>.pth; recipes set save_best to their metric.
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=2_000, by_epoch=False,
                    max_keep_ckpts=2, save_best='auto', rule='greater'),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=False)
