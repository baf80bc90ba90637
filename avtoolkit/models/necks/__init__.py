# Modules of this family are imported here so that they register.
from .lowrank_linear import (FactorizedLinear, orthogonal_from_generator,
                             rotation_block_init_)
from .shared_lowrank_transformer import (SharedLowRankTransformer,
                                         TransformerLayer, TransformerStack)

__all__ = [
    'FactorizedLinear', 'orthogonal_from_generator', 'rotation_block_init_',
    'SharedLowRankTransformer', 'TransformerLayer', 'TransformerStack'
]
