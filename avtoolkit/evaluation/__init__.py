from .probes import knn_probe, linear_probe

__all__ = ['knn_probe', 'linear_probe']
