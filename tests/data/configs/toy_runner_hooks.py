# The toy job with avtoolkit's optimizer constructor and training hooks.
_base_ = ['./toy_runner.py']

optim_wrapper = dict(
    constructor='GroupedOptimWrapperConstructor',
    paramwise_cfg=dict(
        groups=[dict(name='first', keys=[r'^net\.0\.'], lr_mult=0.1)]))
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='ParamGroupLrHook'),
    dict(type='ThroughputHook'),
]
default_hooks = dict(checkpoint=dict(interval=5))
