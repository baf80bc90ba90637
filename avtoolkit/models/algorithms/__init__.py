# Modules of this family are imported here so that they register.
from .avbert import AVBERT
from .avbert_encoder import AVBERTEncoder

__all__ = ['AVBERT', 'AVBERTEncoder']
