from .hooks import (BadInputLoggerHook, NonFiniteLossError, NonFiniteLossHook,
                    ParamGroupLrHook, ProbeHook, ThroughputHook)
from .optim_constructor import GroupedOptimWrapperConstructor
from .resume import (RandomStateHook, ResumableIterBasedTrainLoop,
                     get_random_state, set_random_state)
from .schedulers import WarmupLinearDecayLR, fill_schedule_lengths

__all__ = [
    'BadInputLoggerHook', 'GroupedOptimWrapperConstructor',
    'NonFiniteLossError', 'NonFiniteLossHook', 'ParamGroupLrHook',
    'ProbeHook', 'RandomStateHook', 'ResumableIterBasedTrainLoop',
    'ThroughputHook', 'WarmupLinearDecayLR', 'fill_schedule_lengths',
    'get_random_state', 'set_random_state'
]
