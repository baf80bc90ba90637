"""Cross-validated linear SVMs on frozen per-clip features (the ESC-50
protocol's folds), and fold summaries.

Shapes: clip features ``(N, T, C)`` (N recordings), labels and folds
``(N,)``, scores ``(N, K)`` for K classes.  A recording's score is the mean
of its clips' SVM scores.
"""
import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .linear_svm import LinearSVM
from .metrics import topk_hits
from .probes import SmallProblemThreads

VAL_STRATEGIES = ('fold', 'stratified')


def _clips(feats: Tensor, labels: Tensor, rows: Tensor) -> Tuple[Tensor,
                                                                  Tensor]:
    """Every clip of the recordings ``rows`` as a sample: ``(n*T, C)`` and
    their recordings' labels ``(n*T,)``."""
    x = feats[rows]
    return x.reshape(-1, x.shape[-1]), labels[rows].repeat_interleave(
        x.shape[1])


def recording_scores(svm: LinearSVM, feats: Tensor) -> Tensor:
    """``(n, T, C)`` clip features -> ``(n, K)`` scores, the mean of the T
    clip scores of every recording."""
    n, t = feats.shape[:2]
    scores = svm.decision_function(feats.reshape(n * t, -1))
    return scores.view(n, t, -1).mean(dim=1)


def validation_split(labels: Tensor, folds: Tensor, train_rows: Tensor,
                     test_fold: int, strategy: str = 'fold',
                     val_fraction: float = 0.2,
                     seed: int = 0) -> Tuple[Tensor, Tensor, dict]:
    """Split the training recordings ``train_rows`` into a fitting part and
    a validation part for choosing ``C``.

    ``'fold'``: the validation part is one whole training fold, the first
    training fold after ``test_fold`` (cyclically).  ``'stratified'``: a
    seeded ``val_fraction`` of the training recordings of every class (at
    least one of every class with two or more).

    Returns ``(fit_rows, val_rows, description)``; neither part contains a
    recording outside ``train_rows``.
    """
    train_folds = sorted({int(f) for f in folds[train_rows].tolist()})
    if strategy == 'fold':
        if len(train_folds) < 2:
            raise ValueError(
                'choosing C on a held-out training fold needs at least two '
                f'training folds, got {train_folds}; use '
                "val_strategy='stratified' or a single value in C_grid")
        later = [f for f in train_folds if f > test_fold]
        val_fold = later[0] if later else train_folds[0]
        is_val = folds[train_rows] == val_fold
        desc = dict(strategy='fold', val_folds=[val_fold])
    elif strategy == 'stratified':
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f'val_fraction must be in (0, 1), got '
                             f'{val_fraction}')
        rng = np.random.default_rng(seed * 1000 + int(test_fold))
        is_val = torch.zeros(len(train_rows), dtype=torch.bool)
        train_labels = labels[train_rows]
        for c in torch.unique(train_labels).tolist():
            members = (train_labels == c).nonzero().flatten().numpy()
            if len(members) < 2:
                continue
            take = min(len(members) - 1,
                       max(1, int(round(val_fraction * len(members)))))
            is_val[rng.permutation(members)[:take]] = True
        desc = dict(strategy='stratified', val_fraction=val_fraction)
    else:
        raise ValueError(f'val_strategy must be one of {VAL_STRATEGIES}, '
                         f'got {strategy!r}')
    fit_rows, val_rows = train_rows[~is_val], train_rows[is_val]
    if len(fit_rows) == 0 or len(val_rows) == 0:
        raise ValueError('the validation split left an empty part; use more '
                         'recordings or another val_strategy')
    desc.update(num_fit=len(fit_rows), num_val=len(val_rows))
    return fit_rows, val_rows, desc


def _accuracy(scores: Tensor, labels: Tensor, k: int) -> float:
    return topk_hits(scores, labels, min(k, scores.shape[1])).float().mean(
    ).item()


def cross_validate_svm(feats: Tensor,
                       labels: Tensor,
                       folds: Tensor,
                       test_folds: Sequence[int],
                       C_grid: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
                       svm_cfg: Optional[dict] = None,
                       svm_iters: Optional[int] = None,
                       val_strategy: str = 'fold',
                       val_fraction: float = 0.2,
                       num_classes: Optional[int] = None,
                       topk: Sequence[int] = (1, 5),
                       seed: int = 0,
                       progress: bool = False) -> dict:
    """Leave-one-fold-out evaluation of a linear SVM on clip features.

    For every ``k`` in ``test_folds``: the recordings of the other folds are
    the training set; ``C`` is chosen among ``C_grid`` by top-1 accuracy
    (recording level, clip scores averaged) on a validation part of the
    training set (:func:`validation_split`; ties go to the first value of
    the grid); the SVM is refitted with that ``C`` on the whole training set
    and scores the recordings of fold ``k``.

    Args:
        feats: ``(N, T, C)`` clip features of N recordings.
        labels: ``(N,)`` int64 classes.
        folds: ``(N,)`` fold of every recording.
        test_folds: the folds to test on, in order.
        C_grid: candidate values of the SVM's ``C``.
        svm_cfg: other :class:`LinearSVM` arguments (``loss``, ``epochs``,
            ``batch_size``, ``lr``, ...).
        svm_iters: with ``loss='multi_margin'``, the number of mini-batch
            steps of every fit (the paper's 38K); the epochs follow from the
            training-set size.  Unused by ``'squared_hinge'`` (solved to
            convergence).
        val_strategy, val_fraction: see :func:`validation_split`.
        num_classes: K (default ``max(labels) + 1``).
        topk: accuracies to report.
        seed: seed of the stratified split and of the SVM's sample order.
        progress: show a progress bar over the SVM fits.

    Returns:
        ``{'folds': {k: {'top1', 'top5', ...}}, 'mean', 'std', 'num_folds'``
        (from :func:`summarize_folds`), ``'selection': {k: {'C',
        'val_top1': {C: acc}, 'strategy', ...}}``, ``'scores'``: ``(N, K)``
        float64 test scores (rows of recordings outside ``test_folds`` are
        NaN)}``.
    """
    if feats.dim() != 3:
        raise ValueError('feats must be (N, T, C), got shape '
                         f'{tuple(feats.shape)}')
    n = feats.shape[0]
    if labels.shape != (n, ) or folds.shape != (n, ):
        raise ValueError(f'labels and folds must be ({n},), got '
                         f'{tuple(labels.shape)} and {tuple(folds.shape)}')
    grid = [float(c) for c in C_grid]
    if not grid or any(not (c > 0 and math.isfinite(c)) for c in grid):
        raise ValueError(f'C_grid must hold positive numbers, got {C_grid}')
    svm_cfg = dict(svm_cfg or {})
    if 'C' in svm_cfg:
        raise ValueError('give C through C_grid, not svm_cfg')
    svm_cfg.setdefault('seed', seed)
    num_classes = int(num_classes or int(labels.max()) + 1)
    labels, folds = labels.long(), folds.long()
    present = set(folds.tolist())
    missing = [k for k in test_folds if k not in present]
    if missing:
        raise ValueError(f'no recording in test folds {missing}; the data '
                         f'has folds {sorted(present)}')

    def make_svm(C: float, num_clips: int) -> LinearSVM:
        cfg = dict(svm_cfg, C=C)
        if svm_iters and cfg.get('loss', 'squared_hinge') == 'multi_margin':
            steps = math.ceil(num_clips / cfg.get('batch_size', 128))
            cfg['epochs'] = max(1, math.ceil(svm_iters / steps))
        return LinearSVM(**cfg)

    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        fits = len(test_folds) * (len(grid) + (len(grid) > 1))
        bar = ProgressBar(fits)

    per_fold, selection = {}, {}
    scores = torch.full((n, num_classes), float('nan'), dtype=torch.float64)
    with SmallProblemThreads(feats.numel()):
        for k in test_folds:
            _fit_fold(k, feats, labels, folds, grid, make_svm, val_strategy,
                      val_fraction, seed, num_classes, topk, scores,
                      per_fold, selection, bar)
    result = summarize_folds(per_fold)
    result['selection'] = selection
    result['scores'] = scores
    return result


def _fit_fold(k, feats, labels, folds, grid, make_svm, val_strategy,
              val_fraction, seed, num_classes, topk, scores, per_fold,
              selection, bar) -> None:
    """Choose C on the training folds of test fold ``k``, refit, score
    fold ``k`` (fills ``scores``, ``per_fold[k]``, ``selection[k]``)."""
    test_rows = (folds == k).nonzero().flatten()
    train_rows = (folds != k).nonzero().flatten()
    if len(train_rows) == 0:
        raise ValueError(f'fold {k} leaves no training recording')
    chosen: Dict = dict(val_top1={})
    if len(grid) == 1:
        best = grid[0]
        chosen['strategy'] = 'none (single C)'
    else:
        fit_rows, val_rows, desc = validation_split(
            labels, folds, train_rows, k, val_strategy, val_fraction,
            seed)
        chosen.update(desc)
        x_fit, y_fit = _clips(feats, labels, fit_rows)
        best, best_acc = grid[0], -1.0
        for C in grid:
            svm = make_svm(C, len(x_fit)).fit(x_fit, y_fit, num_classes)
            acc = _accuracy(recording_scores(svm, feats[val_rows]),
                            labels[val_rows], 1)
            chosen['val_top1'][C] = acc
            if acc > best_acc:
                best, best_acc = C, acc
            if bar is not None:
                bar.update()
    chosen['C'] = best
    x_train, y_train = _clips(feats, labels, train_rows)
    svm = make_svm(best, len(x_train)).fit(x_train, y_train, num_classes)
    fold_scores = recording_scores(svm, feats[test_rows])
    scores[test_rows] = fold_scores
    per_fold[k] = {f'top{t}': _accuracy(fold_scores, labels[test_rows], t)
                   for t in topk}
    chosen['num_train'] = len(train_rows)
    chosen['num_test'] = len(test_rows)
    selection[k] = chosen
    if bar is not None:
        bar.update()


# --------------------------------------------------------------- protocol


def summarize_folds(per_fold: Mapping[Any, Union[float, Mapping[str, float]]],
                    ddof: int = 0,
                    expected_num_folds: Optional[int] = None) -> Dict:
    """Mean and standard deviation of a metric over cross-validation folds.

    For ESC-50's 5 folds or UCF101's 3 splits, reported as the mean over the
    folds (the papers' "mean accuracy").

    The standard deviation is the *population* one (``ddof=0``, numpy's
    default and what ``sklearn``'s ``cross_val_score(...).std()`` reports): the
    folds are the complete, predefined set of splits rather than a sample of
    them.  Pass ``ddof=1`` for the sample standard deviation.

    Args:
        per_fold: fold name -> value, or fold name -> {metric: value} (every
            fold with the same metrics).
        ddof: delta degrees of freedom of the standard deviation (0 or 1).
        expected_num_folds: if given, the number of folds that must be present
            (5 for ESC-50, 3 for UCF101), so that a run that tested on only
            one split cannot pass for the full protocol.

    Returns:
        ``{'folds': per_fold (as floats), 'mean': m, 'std': s,
        'num_folds': n}``, where ``m`` and ``s`` are floats for scalar folds
        and {metric: float} dicts for dict folds.
    """
    if not isinstance(per_fold, Mapping) or not per_fold:
        raise ValueError('per_fold must be a non-empty mapping of fold -> '
                         'value')
    if ddof not in (0, 1):
        raise ValueError(f'ddof must be 0 or 1, got {ddof!r}')
    num = len(per_fold)
    if expected_num_folds is not None and num != expected_num_folds:
        raise ValueError(f'expected {expected_num_folds} folds, got {num}: '
                         f'{list(per_fold)}')
    if ddof == 1 and num < 2:
        raise ValueError('the sample standard deviation needs >= 2 folds')

    def as_float(fold, name, value):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f'fold {fold!r}{name}: expected a number, got '
                            f'{value!r}') from None
        if not math.isfinite(value):
            raise ValueError(f'fold {fold!r}{name} is not finite: {value}')
        return value

    values = list(per_fold.values())
    if all(isinstance(v, Mapping) for v in values):
        names = list(values[0])
        if not names:
            raise ValueError('fold metric dicts must not be empty')
        folds = {}
        for fold, metrics in per_fold.items():
            if set(metrics) != set(names):
                raise ValueError(f'fold {fold!r} has metrics {sorted(metrics)}'
                                 f', expected {sorted(names)}')
            folds[fold] = {
                n: as_float(fold, f'[{n!r}]', metrics[n])
                for n in names
            }
        table = np.array([[folds[f][n] for n in names] for f in folds])
        mean = table.mean(axis=0)
        std = table.std(axis=0, ddof=ddof)
        return dict(
            folds=folds,
            mean={n: float(m) for n, m in zip(names, mean)},
            std={n: float(s) for n, s in zip(names, std)},
            num_folds=num)
    if any(isinstance(v, Mapping) for v in values):
        raise TypeError('per_fold values must be all numbers or all dicts')
    folds = {fold: as_float(fold, '', v) for fold, v in per_fold.items()}
    arr = np.array(list(folds.values()))
    return dict(
        folds=folds,
        mean=float(arr.mean()),
        std=float(arr.std(ddof=ddof)),
        num_folds=num)
