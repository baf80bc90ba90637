"""Checkpoint files: safe reading, atomic writing, weight loading and
conversion to and from other code bases."""
import pickle

from .io import (ConversionError, UnsafeCheckpointError,
                 allow_mmengine_checkpoint_globals, load_checkpoint_file,
                 use_atomic_local_writes)
from .loading import LoadReport, load_encoder_checkpoint, read_state_dict

# Errors a user can fix (bad path, refused file, mismatched weights): the
# command-line tools print them as one line.
CONVERSION_ERRORS = (ConversionError, UnsafeCheckpointError, FileExistsError,
                     FileNotFoundError, pickle.UnpicklingError)

__all__ = [
    'CONVERSION_ERRORS', 'ConversionError', 'LoadReport',
    'UnsafeCheckpointError', 'allow_mmengine_checkpoint_globals',
    'load_checkpoint_file', 'load_encoder_checkpoint', 'read_state_dict',
    'use_atomic_local_writes'
]
