"""avtoolkit: self-supervised audio-visual video representation learning."""
from .checkpoint.io import (allow_mmengine_checkpoint_globals,
                            use_atomic_local_writes)
from .version import __version__

# Resuming mmengine checkpoints under torch >= 2.6 needs mmengine's own state
# objects allowlisted for ``weights_only`` loading; nothing else is allowed.
allow_mmengine_checkpoint_globals()
# Checkpoints (and every other local file mmengine writes) are written to a
# temporary name and renamed, so a crash during a save never truncates one.
use_atomic_local_writes()

__all__ = ['__version__']
