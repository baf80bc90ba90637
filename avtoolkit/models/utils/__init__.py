from .dist import gather_sequences
from .masking import MaskGenerator, generate_mask
from .pairing import make_derangement, sample_positions

__all__ = [
    'gather_sequences', 'MaskGenerator', 'generate_mask', 'make_derangement',
    'sample_positions'
]
