from .probes import knn_probe, linear_probe
from .linear_svm import LinearSVM
from .metrics import (MultiLabelMAP, MultiViewAccuracy, aggregate_views,
                      summarize_folds, topk_hits)
from . import extraction
from .extraction import extract_pooled_features, run_probes
from .protocols import (FrozenFeatureSVMProtocol, cross_validate_svm,
                        format_results_table)

__all__ = [
    'knn_probe', 'linear_probe', 'LinearSVM', 'MultiViewAccuracy',
    'MultiLabelMAP', 'aggregate_views', 'summarize_folds', 'topk_hits',
    'extraction', 'extract_pooled_features', 'run_probes',
    'FrozenFeatureSVMProtocol', 'cross_validate_svm', 'format_results_table'
]
