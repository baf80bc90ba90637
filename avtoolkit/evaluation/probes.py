"""Cheap probes of representation quality on frozen features.

* :func:`linear_probe`: multinomial logistic regression on standardised
  features, fitted full-batch with L-BFGS (deterministic, no learning-rate
  tuning), L2-regularised.
* :func:`knn_probe`: weighted k-nearest-neighbour vote on cosine similarity,
  each neighbour weighted by ``exp(sim / temperature)`` (the non-parametric
  classifier of Wu et al., CVPR 2018, commonly used to monitor self-supervised
  training).

* :func:`run_probes`: both probes on every named feature.

Features are ``(N, C)`` float tensors, labels ``(N,)`` int64.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(train_x: Tensor, train_y: Tensor, test_x: Tensor,
           test_y: Tensor) -> None:
    if train_x.ndim != 2 or test_x.ndim != 2:
        raise ValueError('features must be (N, C); got '
                         f'{tuple(train_x.shape)} and {tuple(test_x.shape)}')
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError('train and test features differ in width: '
                         f'{train_x.shape[1]} vs {test_x.shape[1]}')
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError('features and labels differ in length')
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError('a probe needs at least one train and one test '
                         'sample')
    for name, x in (('train', train_x), ('test', test_x)):
        if not torch.isfinite(x).all():
            raise ValueError(f'{name} features contain NaN or infinity')


def _topk_accuracy(scores: Tensor, labels: Tensor,
                   topk=(1, 5)) -> Dict[str, float]:
    result = {}
    for k in topk:
        k_eff = min(k, scores.shape[1])
        hit = (scores.topk(k_eff, dim=1).indices == labels[:, None]).any(1)
        result[f'top{k}'] = hit.float().mean().item()
    return result


@torch.no_grad()
def knn_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor,
              test_y: Tensor, k: int = 20, temperature: float = 0.07,
              num_classes: Optional[int] = None) -> Dict[str, float]:
    """Weighted k-NN accuracy (``top1``, ``top5``) of ``test`` against ``train``."""
    _check(train_x, train_y, test_x, test_y)
    num_classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
    k = min(k, len(train_x))
    train_n = F.normalize(train_x.float(), dim=1)
    test_n = F.normalize(test_x.float(), dim=1)
    sims, idx = (test_n @ train_n.T).topk(k, dim=1)   # (N_test, k)
    weights = (sims / temperature).exp()
    votes = torch.zeros(len(test_x), num_classes)
    votes.scatter_add_(1, train_y[idx], weights)
    return _topk_accuracy(votes, test_y)


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor,
                 test_y: Tensor, num_classes: Optional[int] = None,
                 weight_decay: float = 1e-3, max_iter: int = 200
                 ) -> Dict[str, float]:
    """Logistic-regression accuracy (``top1``, ``top5``) on ``test``.

    Features are standardised with the training mean and standard deviation.
    ``weight_decay`` is the L2 penalty on the weights (not the bias) added to
    the mean cross-entropy.
    """
    _check(train_x, train_y, test_x, test_y)
    num_classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
    train_x, test_x = train_x.double(), test_x.double()
    mean, std = train_x.mean(0), train_x.std(0, unbiased=False)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    train_s, test_s = (train_x - mean) / std, (test_x - mean) / std
    weight = torch.zeros(train_x.shape[1], num_classes, dtype=torch.float64,
                         requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter,
                                  history_size=20,
                                  line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(train_s @ weight + bias, train_y) \
            + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        result = _topk_accuracy(test_s @ weight + bias, test_y)
        result['train_top1'] = _topk_accuracy(train_s @ weight + bias,
                                              train_y, (1, ))['top1']
    return result


class SmallProblemThreads:
    """Run small fits (SVMs, probes) with one intra-op thread.

    L-BFGS on a few thousand numbers per step is dominated by per-operation
    overhead; with several threads on a busy machine the threads' spinning
    made such fits ten times slower here.  Problems with more than
    ``threshold`` feature values keep torch's thread setting.
    """

    def __init__(self, num_values: int, threshold: int = 1 << 20):
        self.small = num_values <= threshold
        self.saved = None

    def __enter__(self):
        if self.small:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc) -> bool:
        if self.saved is not None:
            torch.set_num_threads(self.saved)
        return False


def run_probes(train_x: Dict[str, Tensor], train_y: Tensor,
               val_x: Dict[str, Tensor], val_y: Tensor,
               features: Sequence[str], knn_k: int = 10,
               linear_weight_decay: float = 1e-3) -> Dict[str, float]:
    """Linear and k-NN top-1 accuracy of every feature:
    ``{'<feature>/linear_top1': ..., '<feature>/knn_top1': ...}``."""
    num_classes = int(max(train_y.max(), val_y.max())) + 1
    results = {}
    for name in features:
        with SmallProblemThreads(train_x[name].numel()):
            lin = linear_probe(train_x[name], train_y, val_x[name], val_y,
                               num_classes=num_classes,
                               weight_decay=linear_weight_decay)
            knn = knn_probe(train_x[name], train_y, val_x[name], val_y,
                            k=knn_k, num_classes=num_classes)
        results[f'{name}/linear_top1'] = lin['top1']
        results[f'{name}/knn_top1'] = knn['top1']
    return results
