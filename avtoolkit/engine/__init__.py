from .hooks import (BadInputLoggerHook, NonFiniteLossError, NonFiniteLossHook, ParamGroupLrHook,
                    ProbeHook, ThroughputHook)
from .optim_constructor import GroupedOptimWrapperConstructor
from .schedulers import WarmupLinearDecayLR, fill_schedule_lengths

__all__ = [
    'BadInputLoggerHook',
    'GroupedOptimWrapperConstructor', 'NonFiniteLossHook',
    'NonFiniteLossError', 'ParamGroupLrHook', 'ProbeHook', 'ThroughputHook', 'WarmupLinearDecayLR',
    'fill_schedule_lengths'
]
