# Every module that registers a dataset or transform is imported here.
from . import transforms  # noqa: F401
from .av_video_dataset import AVVideoDataset
from .av_webdataset import AVWebDataset
from .bad_input import BadInputCounter, BadInputError, BadInputPolicy
from .holdout import holdout_split
from .public_datasets import (AudioSetDataset, CharadesDataset, ESC50Dataset,
                              Kinetics700Dataset, KineticsSoundsDataset,
                              UCF101Dataset)

__all__ = [
    'AVVideoDataset', 'AVWebDataset', 'AudioSetDataset', 'BadInputCounter',
    'BadInputError', 'BadInputPolicy', 'CharadesDataset', 'ESC50Dataset',
    'Kinetics700Dataset', 'KineticsSoundsDataset', 'UCF101Dataset',
    'holdout_split'
]
