# Modules of this family are imported here so that they register.
from .cls_heads import MLPClsHead  # noqa: F401
from .cpp_head import CPPHead, make_derangement, sample_positions
from .masking import MaskGenerator, generate_mask
from .mep_head import MEPHead, info_nce, strip_multimodal_bos

__all__ = [
    'CPPHead', 'make_derangement', 'sample_positions', 'MaskGenerator',
    'generate_mask', 'MEPHead', 'info_nce', 'strip_multimodal_bos'
]
