# Modules of this family are imported here so that they register.
from .info_nce import InfoNCELoss, info_nce

__all__ = ['InfoNCELoss', 'info_nce']
