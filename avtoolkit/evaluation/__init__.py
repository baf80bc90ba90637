# Modules that register metrics and protocols are imported here.
from .cross_validation import cross_validate_svm, summarize_folds
from .linear_svm import LinearSVM
from .metrics import (MultiLabelMAP, MultiViewAccuracy, aggregate_views,
                      topk_hits)
from .probes import knn_probe, linear_probe, run_probes
from .protocols import FrozenFeatureSVMProtocol, format_results_table

__all__ = [
    'knn_probe', 'linear_probe', 'run_probes', 'LinearSVM',
    'MultiViewAccuracy', 'MultiLabelMAP', 'aggregate_views',
    'summarize_folds', 'topk_hits', 'FrozenFeatureSVMProtocol',
    'cross_validate_svm', 'format_results_table'
]
