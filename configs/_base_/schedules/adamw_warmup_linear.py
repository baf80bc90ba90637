# The optimisation of the paper's pretraining and fine-tuning recipes
# (appendix A.4): the AMSGrad variant of AdamW with betas (0.9, 0.98) and
# weight decay 1e-4 (norms and biases included), parameter groups by name,
# linear warm-up over the first 6% of the iterations then linear decay to
# zero, and the training hooks.  The recipes set the learning rate, the
# groups and the length.
#
# The global batch is  GPUs x train_dataloader.batch_size x
# accumulative_counts.

# Σ of the low-rank factorisation is exp(A - A^T); A is "sigma_generator",
# trained at a tenth of the rate.
orthogonal_group = dict(name='orthogonal', keys=[r'sigma_generator'],
                        lr_mult=0.1)
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='GroupedOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.98), weight_decay=1e-4,
        amsgrad=True),
    paramwise_cfg=dict(groups=[orthogonal_group], no_decay_norm=False,
                       no_decay_bias=False),
    accumulative_counts=1,
    clip_grad=None)

param_scheduler = [
    # total_iters is filled from train_cfg.max_iters by tools/train.py
    dict(type='WarmupLinearDecayLR', warmup_ratio=0.06, total_iters=None)
]

custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='ParamGroupLrHook'),
    dict(type='ThroughputHook'),
    dict(type='BadInputLoggerHook', interval=50),
]
