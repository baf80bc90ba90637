from .hooks import (NonFiniteLossError, NonFiniteLossHook, ParamGroupLrHook,
                    ThroughputHook)
from .optim_constructor import GroupedOptimWrapperConstructor

__all__ = [
    'GroupedOptimWrapperConstructor', 'NonFiniteLossHook',
    'NonFiniteLossError', 'ParamGroupLrHook', 'ThroughputHook'
]
