# Pretraining optimisation of the paper (appendix A.4): AMSGrad variant of AdamW,
# betas (0.9, 0.98), weight decay 1e-4, learning rate 1e-4 and ten times less
# (1e-5) for the orthogonal parameters, linear warm-up over the first 6% of the
# iterations then linear decay, 220K iterations.
#
# The global batch is  GPUs x train_dataloader.batch_size x accumulative_counts.
# The paper used 64 GPUs x 4 = 256.  To keep the recipe on other hardware, keep
# the product at 256, e.g. 8 GPUs x 4 x accumulative_counts=8, or 32 GPUs x 8 x 1.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='GroupedOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.98), weight_decay=1e-4,
        amsgrad=True),
    # Σ of the low-rank factorisation is exp(A - A^T); A is "sigma_generator".
    paramwise_cfg=dict(
        groups=[dict(name='orthogonal', keys=[r'sigma_generator'],
                     lr_mult=0.1)],
        no_decay_norm=False, no_decay_bias=False),
    accumulative_counts=1,
    clip_grad=None)

param_scheduler = [
    # total_iters is filled from train_cfg.max_iters by tools/train.py
    dict(type='WarmupLinearDecayLR', warmup_ratio=0.06, total_iters=None)
]

train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=220_000,
                 val_interval=10_000)
val_cfg = None
test_cfg = None

custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='ParamGroupLrHook'),
    dict(type='ThroughputHook'),
    dict(type='BadInputLoggerHook', interval=50),
]
