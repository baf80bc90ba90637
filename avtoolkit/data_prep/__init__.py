"""Making data before a run: the synthetic audio-visual dataset, synthetic
layouts of the downstream datasets, and WebDataset shards.  Nothing here is
imported by training or evaluation; the entry points call :func:`prepare`."""
from .prepare import prepare

__all__ = ['prepare']
