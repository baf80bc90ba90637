"""Checkpoint files: the one reader (safe unpickling, clear errors), atomic
writing, weight loading into modules and conversion to and from other code
bases."""
import pickle

from .io import (CheckpointError, ConversionError, NotACheckpointError,
                 UnsafeCheckpointError, allow_mmengine_checkpoint_globals,
                 check_checkpoint_file, read_checkpoint, save_checkpoint,
                 use_atomic_local_writes)
from .loading import (LoadReport, WeightsMismatchError, extract_state_dict,
                      load_weights, read_state_dict)

# Errors a user can fix (bad path, refused or unreadable file, mismatched
# weights): the command-line tools print them as one line.
CONVERSION_ERRORS = (CheckpointError, FileExistsError, FileNotFoundError,
                     pickle.UnpicklingError)

__all__ = [
    'CONVERSION_ERRORS', 'CheckpointError', 'ConversionError', 'LoadReport',
    'NotACheckpointError', 'UnsafeCheckpointError', 'WeightsMismatchError',
    'allow_mmengine_checkpoint_globals', 'check_checkpoint_file',
    'extract_state_dict', 'load_weights', 'read_checkpoint',
    'read_state_dict', 'save_checkpoint', 'use_atomic_local_writes'
]
