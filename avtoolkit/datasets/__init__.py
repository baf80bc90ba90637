from . import transforms  # noqa: F401
from .av_video_dataset import AVVideoDataset  # noqa: F401
from .av_webdataset import AVWebDataset  # noqa: F401
from . import bad_input  # noqa: F401
from .downstream import (AudioSetDataset, CharadesDataset,  # noqa: F401
                         ESC50Dataset, Kinetics700Dataset,
                         KineticsSoundsDataset, UCF101Dataset)
from .synthetic_downstream import holdout_split  # noqa: F401
