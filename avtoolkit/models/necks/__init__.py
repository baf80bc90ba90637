# Modules of this family are imported here so that they register.
from .embeddings import ClipTokens, TimeEmbedding
from .lowrank_linear import (FactorizedLinear, orthogonal_from_generator,
                             rotation_block_init_)
from .shared_lowrank_transformer import SharedLowRankTransformer
from .transformer_layer import TransformerLayer, TransformerStack

__all__ = [
    'ClipTokens', 'FactorizedLinear', 'orthogonal_from_generator',
    'rotation_block_init_', 'SharedLowRankTransformer', 'TimeEmbedding',
    'TransformerLayer', 'TransformerStack'
]
