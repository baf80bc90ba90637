from .optim_constructor import GroupedOptimWrapperConstructor

__all__ = ['GroupedOptimWrapperConstructor']
