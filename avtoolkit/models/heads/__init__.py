# Modules of this family are imported here so that they register.
from .cls_head import MLPClsHead
from .cpp_head import CPPHead
from .mep_head import MEPHead

__all__ = ['CPPHead', 'MEPHead', 'MLPClsHead']
