from .hooks import (NonFiniteLossError, NonFiniteLossHook, ParamGroupLrHook,
                    ThroughputHook)
from .optim_constructor import GroupedOptimWrapperConstructor
from .schedulers import WarmupLinearDecayLR, fill_schedule_lengths

__all__ = [
    'GroupedOptimWrapperConstructor', 'NonFiniteLossHook',
    'NonFiniteLossError', 'ParamGroupLrHook', 'ThroughputHook', 'WarmupLinearDecayLR',
    'fill_schedule_lengths'
]
