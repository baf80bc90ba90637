# Modules of this family are imported here so that they register.
from .av_classifier import AVClassifier
from .visual_classifier import VisualClassifier

__all__ = ['AVClassifier', 'VisualClassifier']
