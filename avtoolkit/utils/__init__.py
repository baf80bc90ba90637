from .checkpoint import (UnsafeCheckpointError,
                         allow_mmengine_checkpoint_globals,
                         load_checkpoint_file)
from .setup_env import register_all_modules

__all__ = [
    'register_all_modules', 'allow_mmengine_checkpoint_globals',
    'load_checkpoint_file', 'UnsafeCheckpointError'
]
