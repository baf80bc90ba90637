# Modules of this family are imported here so that they register.
from .audio_transforms import (AudioMask, AudioNormalize, LogMelSpectrogram,
                               frames_for_samples, samples_for_frames)
from .av_decoding import AVDecode, AVInit
from .clip_sampling import AVSampleClips
from .formatting import PackAVInputs
from .sequence_pipeline import (AVSequencePipeline, flatten_pipeline,
                                sequence_steps)
from .video_transforms import VideoNormalize

__all__ = [
    'AVInit', 'AVSampleClips', 'AVDecode', 'LogMelSpectrogram',
    'AudioNormalize', 'AudioMask', 'frames_for_samples', 'samples_for_frames',
    'VideoNormalize', 'PackAVInputs', 'AVSequencePipeline',
    'flatten_pipeline', 'sequence_steps'
]
