from .probes import knn_probe, linear_probe
from .linear_svm import LinearSVM
from .metrics import (MultiLabelMAP, MultiViewAccuracy, aggregate_views,
                      summarize_folds, topk_hits)

__all__ = [
    'knn_probe', 'linear_probe', 'LinearSVM', 'MultiViewAccuracy',
    'MultiLabelMAP', 'aggregate_views', 'summarize_folds', 'topk_hits'
]
