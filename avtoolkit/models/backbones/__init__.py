# Modules of this family are imported here so that they register.
from .audio_resnet import AudioResNet
from .clip_sequence_encoder import ClipSequenceEncoder, global_average_pool

__all__ = ['AudioResNet', 'ClipSequenceEncoder', 'global_average_pool']
