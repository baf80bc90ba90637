from .checkpoint_hook import CheckpointSaveError, SafeCheckpointHook
from .config_diff import ResumeConfigError, check_resume_config
from .hook_args import HookArgumentError, check_hook_args
from .hooks import (BadInputLoggerHook, NonFiniteError, NonFiniteGradientError,
                    NonFiniteLossError, NonFiniteLossHook,
                    NonFiniteParameterError, ParamGroupLrHook, ProbeHook,
                    ThroughputHook)
from .optim_constructor import GroupedOptimWrapperConstructor
from .resume import (RandomStateHook, ResumableIterBasedTrainLoop,
                     get_random_state, set_random_state)
from .schedulers import WarmupLinearDecayLR, fill_schedule_lengths
from .work_dir import WorkDirInUseError, prepare_work_dir

__all__ = [
    'BadInputLoggerHook', 'CheckpointSaveError',
    'GroupedOptimWrapperConstructor', 'HookArgumentError', 'NonFiniteError',
    'NonFiniteGradientError', 'NonFiniteLossError', 'NonFiniteLossHook',
    'NonFiniteParameterError', 'ParamGroupLrHook', 'ProbeHook',
    'RandomStateHook', 'ResumableIterBasedTrainLoop', 'ResumeConfigError',
    'SafeCheckpointHook', 'ThroughputHook', 'WarmupLinearDecayLR',
    'WorkDirInUseError', 'check_hook_args', 'check_resume_config',
    'fill_schedule_lengths', 'get_random_state', 'prepare_work_dir',
    'set_random_state'
]
