"""avtoolkit: self-supervised audio-visual video representation learning."""
from .version import __version__
from .utils.checkpoint import allow_mmengine_checkpoint_globals

# Resuming mmengine checkpoints under torch >= 2.6 needs mmengine's own state
# objects allowlisted for ``weights_only`` loading; nothing else is allowed.
allow_mmengine_checkpoint_globals()

__all__ = ['__version__']
