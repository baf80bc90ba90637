# Modules of this family are imported here so that they register.
from .avbert_encoder import AVBERTEncoder

__all__ = ['AVBERTEncoder']
