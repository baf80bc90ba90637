"""Downstream metrics with multi-view test protocols.

The downstream protocols of AVBERT (paper, Appendix A.3) score every test
video through several *views* and pool the view scores per video before the
metric is taken:

* UCF101: 10 temporal clips x 3 spatial crops = 30 views, scores averaged;
* ESC-50: 10 two-second clips per recording, scores averaged;
* Kinetics-Sounds: 3 spatially cropped sequences, scores averaged;
* Charades: 3 spatially cropped sequences, scores max-pooled, then mAP.

In an mmengine test loop each view may be a separate data sample, and the
views of one video may fall into different batches (or, in distributed
testing, onto different ranks).  The metrics below therefore keep one record
per data sample in :meth:`process` and group the records by a video id only in
:meth:`compute_metrics`, after mmengine has gathered the results of all
batches and ranks.

Fields read from each data sample (a dict, as mmengine's ``Evaluator`` passes
them, or a ``BaseDataElement``):

* scores: ``pred_score``, a ``(num_classes,)`` tensor; the mmaction2 1.1
  layout ``pred_scores`` (a ``LabelData`` / dict whose ``item`` is that tensor)
  is read as well.  Set ``score_key`` to read another field.
* labels: ``gt_label`` (or mmaction2 1.1's ``gt_labels.item``): for
  :class:`MultiViewAccuracy` one class index (int or a 1-element tensor); for
  :class:`MultiLabelMAP` the indices of the classes present (what the Charades
  reader and ``PackAVInputs`` produce), or a multi-hot ``(num_classes,)``
  vector (mmaction2's convention) with ``label_format='multi_hot'``.
* the video id: ``video_key``, any hashable scalar (int, str or a 0-d /
  1-element tensor), read from the data sample or its ``metainfo``.  Samples
  with the same id are views of one video.  The default, ``'filename'``, is in
  the metainfo that ``PackAVInputs`` writes by default and is shared by all
  views of a video; ``'video_id'`` (set by the Charades reader; add it to
  ``PackAVInputs``' ``meta_keys``) or ``'sample_idx'`` (when each data sample
  already holds all views of one video) work as well.

Why mmaction2's ``AccMetric`` is not enough here:

* it has no notion of views of one video spread over several data samples;
* its ``top_k_accuracy`` ranks classes with ``np.argsort`` (an unstable sort),
  so when the true class ties with another class the hit depends on the sort
  implementation; here a tie counts *against* the prediction (see
  :func:`topk_hits`), which makes a constant or degenerate score vector score
  zero instead of a label-frequency-dependent number;
* its ``mmit_mean_average_precision`` averages AP over *samples*, not classes,
  which is not the Charades metric.

mmaction2's ``mean_average_precision`` *is* the right per-class AP: it computes
scikit-learn's ``average_precision_score`` (precision weighted by the recall
increment at every distinct score threshold, so tied scores enter as one
threshold).  It returns NaN for a class without positives and drops it from the
mean, but warns on the 0/0 on the way; :class:`MultiLabelMAP` removes such
classes itself first, counts them, and then calls it.
"""
import math
from collections import OrderedDict
from typing import (Any, Dict, Hashable, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import torch
from mmaction.evaluation.functional import mean_average_precision
from mmengine.evaluator import BaseMetric
from mmengine.structures import BaseDataElement
from torch import Tensor

from avtoolkit.registry import METRICS

_SCORE_KEYS = ('pred_score', 'pred_scores')
_LABEL_KEYS = ('gt_label', 'gt_labels')


# --------------------------------------------------------------------- helpers
def _as_dict(data_sample: Any) -> Mapping:
    if isinstance(data_sample, BaseDataElement):
        return data_sample.to_dict()
    if isinstance(data_sample, Mapping):
        return data_sample
    raise TypeError('a data sample must be a dict or a BaseDataElement, got '
                    f'{type(data_sample).__name__}')


def _lookup(sample: Mapping, key: str) -> Any:
    if key in sample:
        return sample[key]
    meta = sample.get('metainfo')
    if isinstance(meta, Mapping) and key in meta:
        return meta[key]
    return None


def _unwrap_item(value: Any) -> Any:
    """``LabelData`` / ``{'item': x}`` -> ``x``; anything else unchanged."""
    if isinstance(value, BaseDataElement):
        value = value.to_dict()
    if isinstance(value, Mapping):
        if 'item' not in value:
            raise ValueError('expected a tensor or a dict with an "item" '
                             f'entry, got a dict with keys {sorted(value)}')
        return value['item']
    return value


def _read_field(sample: Mapping, key: Optional[str],
                defaults: Sequence[str], what: str) -> Any:
    keys = (key, ) if key is not None else defaults
    for k in keys:
        value = _lookup(sample, k)
        if value is not None:
            return _unwrap_item(value)
    raise KeyError(f'data sample has no {what} field (looked for '
                   f'{", ".join(keys)}); its fields are {sorted(sample)}')


def _to_vector(value: Any, what: str) -> Tensor:
    """A 1-D float64 CPU tensor from a tensor, array or sequence."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    elif isinstance(value, (list, tuple)):
        value = torch.tensor(value)
    if not isinstance(value, Tensor):
        raise TypeError(f'{what} must be a tensor, array or sequence, got '
                        f'{type(value).__name__}')
    value = value.detach().cpu()
    if value.dim() != 1 or value.numel() == 0:
        raise ValueError(f'{what} must be a non-empty 1-D vector, got shape '
                         f'{tuple(value.shape)}')
    return value.to(torch.float64)


def _numel(value: Union[Tensor, np.ndarray]) -> int:
    return value.numel() if isinstance(value, Tensor) else int(value.size)


def _video_id(sample: Mapping, key: str) -> Hashable:
    value = _lookup(sample, key)
    if value is None:
        raise KeyError(
            f'data sample has no video id field "{key}" (its fields are '
            f'{sorted(sample)}); set video_key to a field that is equal for '
            'all views of one video, e.g. the video file name or index')
    if isinstance(value, (Tensor, np.ndarray)):
        if _numel(value) != 1:
            raise ValueError(f'video id "{key}" must be a scalar, got shape '
                             f'{tuple(value.shape)}')
        value = value.reshape(-1)[0].item()
    try:
        hash(value)
    except TypeError:
        raise TypeError(f'video id "{key}" must be hashable, got '
                        f'{type(value).__name__}') from None
    return value


def aggregate_views(scores: Tensor,
                    group_ids: Sequence[Hashable],
                    reduce: str = 'mean') -> Tuple[List[Hashable], Tensor]:
    """Pool the score vectors of all views of each group (video).

    Args:
        scores: ``(N, C)`` scores, one row per view.
        group_ids: ``N`` hashable ids; rows with equal ids are pooled.
        reduce: ``'mean'`` or ``'max'`` (element-wise over the views).

    Returns:
        ``(ids, pooled)``: the ``G`` distinct ids in order of first appearance
        and the ``(G, C)`` pooled scores in that order.
    """
    if reduce not in ('mean', 'max'):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    if not isinstance(scores, Tensor) or scores.dim() != 2:
        raise ValueError('scores must be an (N, C) tensor, got '
                         f'{getattr(scores, "shape", type(scores).__name__)}')
    if len(group_ids) != scores.shape[0]:
        raise ValueError(f'{len(group_ids)} group ids for {scores.shape[0]} '
                         'score rows')
    index: Dict[Hashable, int] = OrderedDict()
    rows = torch.empty(len(group_ids), dtype=torch.long)
    for i, gid in enumerate(group_ids):
        rows[i] = index.setdefault(gid, len(index))
    num_groups, num_classes = len(index), scores.shape[1]
    target = rows[:, None].expand(-1, num_classes)
    if reduce == 'mean':
        pooled = scores.new_zeros(num_groups, num_classes)
        pooled.scatter_add_(0, target, scores)
        counts = torch.bincount(rows, minlength=num_groups).to(scores.dtype)
        pooled = pooled / counts[:, None]
    else:
        pooled = scores.new_full((num_groups, num_classes), -math.inf)
        pooled.scatter_reduce_(0, target, scores, reduce='amax')
    return list(index), pooled


def topk_hits(scores: Tensor, labels: Tensor, k: int) -> Tensor:
    """Whether the true class is among the ``k`` best, ties counted against.

    The rank of the true class is the number of *other* classes whose score is
    greater than or equal to its own; the sample is a hit when that rank is
    below ``k``.  A class tied with the true class is thus always ranked above
    it, so equal scores can never produce a hit that a different tie-break
    would turn into a miss.

    Args:
        scores: ``(N, C)`` scores.
        labels: ``(N,)`` int64 class indices.
        k: ``1 <= k <= C``.

    Returns:
        ``(N,)`` bool tensor.
    """
    true_score = scores.gather(1, labels[:, None])            # (N, 1)
    ahead = (scores >= true_score).sum(dim=1) - 1               # minus itself
    return ahead < k


def _check_topk(topk: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    if isinstance(topk, int):
        topk = (topk, )
    topk = tuple(topk)
    if not topk or any(not isinstance(k, int) or k < 1 for k in topk):
        raise ValueError(f'topk must be positive ints, got {topk!r}')
    return topk


# ------------------------------------------------- views grouped per video
class _PerVideoMetric(BaseMetric):
    """Shared part of metrics whose samples are views of videos.

    Holds the field names (``video_key``, ``score_key``, ``label_key``) and
    the optional ``num_views`` check; :meth:`_read_score` reads one view's
    score vector and :meth:`_stack_views` validates the stored results and
    groups their labels per video.
    """

    def __init__(self, video_key: str, num_views: Optional[int],
                 score_key: Optional[str], label_key: Optional[str],
                 collect_device: str, prefix: Optional[str]) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_views is not None and (not isinstance(num_views, int)
                                      or num_views < 1):
            raise ValueError('num_views must be None or a positive int, got '
                             f'{num_views!r}')
        self.video_key = video_key
        self.num_views = num_views
        self.score_key = score_key
        self.label_key = label_key

    def _read_score(self, sample: Mapping) -> Tensor:
        return _to_vector(
            _read_field(sample, self.score_key, _SCORE_KEYS, 'score'),
            'pred_score')

    def _stack_views(self, results: List[dict]
                     ) -> Tuple[Tensor, Dict[Hashable, Any]]:
        """``(scores (N, C), {video id: label})`` after checking that score
        vectors agree in length and are finite, that the views of a video
        share one label, and (if set) that every video has ``num_views``."""
        if not results:
            raise ValueError(f'{type(self).__name__} got no results to '
                             'evaluate')
        num_classes = results[0]['score'].numel()
        for r in results:
            if r['score'].numel() != num_classes:
                raise ValueError('all score vectors must have the same length;'
                                 f' got {num_classes} and '
                                 f'{r["score"].numel()}')
        scores = torch.stack([r['score'] for r in results])     # (N, C)
        if not torch.isfinite(scores).all():
            raise ValueError('scores contain NaN or infinity')
        label_of: Dict[Hashable, Any] = {}
        views_of: Dict[Hashable, int] = {}
        for r in results:
            vid = r['video']
            known = label_of.setdefault(vid, r['label'])
            same = torch.equal(known, r['label']) if isinstance(
                known, Tensor) else known == r['label']
            if not same:
                raise ValueError(f'video {vid!r} has views with different '
                                 f'labels ({known} and {r["label"]})')
            views_of[vid] = views_of.get(vid, 0) + 1
        if self.num_views is not None:
            wrong = {v: n for v, n in views_of.items() if n != self.num_views}
            if wrong:
                shown = dict(list(wrong.items())[:5])
                raise ValueError(
                    f'{len(wrong)} video(s) do not have num_views='
                    f'{self.num_views} views, e.g. {shown}')
        return scores, label_of


# ------------------------------------------------------------ single label
@METRICS.register_module()
class MultiViewAccuracy(_PerVideoMetric):
    """Top-k accuracy after pooling the scores of all views of each video.

    Args:
        topk (int | Sequence[int]): the k of the reported accuracies
            (``top{k}`` entries). Defaults to ``(1, 5)``.
        aggregate (str): how the view scores of a video are pooled:

            * ``'mean_prob'``: softmax of every view, then the mean (the
              paper's "average the prediction scores"; the release sums the
              softmax outputs, which ranks classes identically);
            * ``'mean_score'``: mean of ``pred_score`` as stored (logits, or
              probabilities if the head already applied a softmax);
            * ``'max_prob'`` / ``'max_score'``: element-wise maximum instead.

            ``'*_prob'`` refuses scores that already are probability vectors
            (non-negative, summing to one): applying a second softmax would
            flatten them; use ``'*_score'`` for those. Defaults to
            ``'mean_prob'``.
        video_key (str): data-sample field holding the video id.
            Defaults to ``'filename'``.
        num_views (int, optional): if given, every video must have exactly this
            many views (e.g. 30 for UCF101), which catches missing or
            duplicated samples. Defaults to None (any number).
        score_key (str, optional): field of the scores; None reads
            ``pred_score``, then ``pred_scores.item``.
        label_key (str, optional): field of the label; None reads
            ``gt_label``, then ``gt_labels.item``.
        collect_device (str): ``'cpu'`` or ``'gpu'`` for gathering results
            across ranks. Defaults to ``'cpu'``.
        prefix (str, optional): prefix of the metric names. Defaults to
            ``'acc'``.

    Returns of :meth:`compute_metrics`: ``top{k}`` (fractions in [0, 1]) and
    ``num_videos``.
    """
    default_prefix: Optional[str] = 'acc'
    AGGREGATES = ('mean_prob', 'mean_score', 'max_prob', 'max_score')

    def __init__(self,
                 topk: Union[int, Sequence[int]] = (1, 5),
                 aggregate: str = 'mean_prob',
                 video_key: str = 'filename',
                 num_views: Optional[int] = None,
                 score_key: Optional[str] = None,
                 label_key: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(video_key, num_views, score_key, label_key,
                         collect_device, prefix)
        self.topk = _check_topk(topk)
        if aggregate not in self.AGGREGATES:
            raise ValueError(f'aggregate must be one of {self.AGGREGATES}, '
                             f'got {aggregate!r}')
        self.aggregate = aggregate

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store ``(video id, (C,) scores, label)`` for every data sample."""
        for data_sample in data_samples:
            sample = _as_dict(data_sample)
            score = self._read_score(sample)
            label = _read_field(sample, self.label_key, _LABEL_KEYS, 'label')
            if isinstance(label, (Tensor, np.ndarray)):
                if _numel(label) != 1:
                    raise ValueError(
                        'MultiViewAccuracy needs one class index per sample, '
                        f'got a label of shape {tuple(label.shape)}; use '
                        'MultiLabelMAP for multi-label data')
                label = label.reshape(-1)[0].item()
            if isinstance(label, float) and label.is_integer():
                label = int(label)
            if not isinstance(label, int) or isinstance(label, bool):
                raise TypeError('the label must be an int class index, got '
                                f'{label!r}')
            self.results.append(
                dict(video=_video_id(sample, self.video_key), score=score,
                     label=label))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Pool the views of each video and compute top-k accuracy."""
        scores, labels_of = self._stack_views(results)
        ids = [r['video'] for r in results]
        num_classes = scores.shape[1]

        reduce, kind = self.aggregate.split('_')
        if kind == 'prob':
            sums = scores.sum(dim=1)
            if (scores >= 0).all() and torch.allclose(
                    sums, torch.ones_like(sums), atol=1e-4):
                raise ValueError(
                    f"aggregate='{self.aggregate}' applies a softmax, but the "
                    'scores already are probability vectors; use '
                    f"aggregate='{reduce}_score'")
            scores = scores.softmax(dim=1)
        videos, pooled = aggregate_views(scores, ids, reduce)
        labels = torch.tensor([labels_of[v] for v in videos])
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f'labels must lie in [0, {num_classes}), got '
                             f'[{labels.min().item()}, '
                             f'{labels.max().item()}]')
        if max(self.topk) > num_classes:
            raise ValueError(f'top-{max(self.topk)} accuracy is undefined for '
                             f'{num_classes} classes')

        metrics: Dict[str, float] = OrderedDict()
        for k in self.topk:
            metrics[f'top{k}'] = topk_hits(pooled, labels,
                                           k).double().mean().item()
        metrics['num_videos'] = len(videos)
        return metrics


# ------------------------------------------------------------- multi label
def _multi_hot(label: Any, num_classes: int, label_format: str) -> Tensor:
    if label_format == 'indices':
        if isinstance(label, int):
            label = [label]
        idx = torch.as_tensor(label).reshape(-1).long()
        if idx.numel() and (idx.min() < 0 or idx.max() >= num_classes):
            raise ValueError(f'label indices must lie in [0, {num_classes}), '
                             f'got {idx.tolist()}')
        out = torch.zeros(num_classes, dtype=torch.int64)
        out[idx] = 1
        return out
    vec = _to_vector(label, 'multi-hot gt_label')
    if vec.numel() != num_classes:
        raise ValueError(f'multi-hot label of length {vec.numel()} for '
                         f'{num_classes} classes (use label_format="indices" '
                         'for lists of class indices)')
    if not ((vec == 0) | (vec == 1)).all():
        raise ValueError('a multi-hot label must hold only 0 and 1, got '
                         f'{sorted(set(vec.tolist()))}')
    return vec.to(torch.int64)


@METRICS.register_module()
class MultiLabelMAP(_PerVideoMetric):
    """Class-wise mean average precision over videos (Charades).

    The view scores of each video are pooled (``'max'`` by default, the
    paper's Charades protocol), then one average precision per class is
    computed over the videos and averaged over the classes.

    Average precision is scikit-learn's ``average_precision_score``:
    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in
    decreasing order.  Videos with tied scores for a class cross the threshold
    together, so their order does not matter (computed by mmaction2's
    ``mean_average_precision``).

    Classes with no positive video in the evaluated set have no defined AP and
    are left out of the mean, as PySlowFast's Charades evaluation does; the
    number of classes evaluated and left out is reported.

    Args:
        aggregate (str): ``'max'`` or ``'mean'`` over the views of a video.
            Defaults to ``'max'``.
        sigmoid (bool): apply a sigmoid to each view's scores before pooling
            (matters for ``'mean'`` only; max-pooling commutes with it).
            Defaults to False.
        label_format (str): ``'indices'`` (the class indices present, possibly
            none) or ``'multi_hot'`` (a ``(num_classes,)`` 0/1 vector).
            Defaults to ``'indices'``.
        video_key, num_views, score_key, label_key, collect_device: as in
            :class:`MultiViewAccuracy`.
        prefix (str, optional): Defaults to ``'multilabel'``.

    Returns of :meth:`compute_metrics`: ``mAP`` (in [0, 1]),
    ``num_classes_evaluated``, ``num_classes_absent`` and ``num_videos``.
    """
    default_prefix: Optional[str] = 'multilabel'

    def __init__(self,
                 aggregate: str = 'max',
                 sigmoid: bool = False,
                 label_format: str = 'indices',
                 video_key: str = 'filename',
                 num_views: Optional[int] = None,
                 score_key: Optional[str] = None,
                 label_key: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(video_key, num_views, score_key, label_key,
                         collect_device, prefix)
        if aggregate not in ('max', 'mean'):
            raise ValueError(f"aggregate must be 'max' or 'mean', got "
                             f'{aggregate!r}')
        if label_format not in ('multi_hot', 'indices'):
            raise ValueError("label_format must be 'multi_hot' or 'indices', "
                             f'got {label_format!r}')
        self.aggregate = aggregate
        self.sigmoid = sigmoid
        self.label_format = label_format

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store ``(video id, (C,) scores, (C,) 0/1 labels)`` per sample."""
        for data_sample in data_samples:
            sample = _as_dict(data_sample)
            score = self._read_score(sample)
            label = _multi_hot(
                _read_field(sample, self.label_key, _LABEL_KEYS, 'label'),
                score.numel(), self.label_format)
            self.results.append(
                dict(video=_video_id(sample, self.video_key), score=score,
                     label=label))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Pool the views of each video; mean of the per-class APs."""
        scores, label_of = self._stack_views(results)
        num_classes = scores.shape[1]

        if self.sigmoid:
            scores = scores.sigmoid()
        videos, pooled = aggregate_views(scores, [r['video'] for r in results],
                                         self.aggregate)
        labels = torch.stack([label_of[v] for v in videos])      # (G, C)
        present = labels.sum(dim=0) > 0                          # (C,)
        num_present = int(present.sum())
        if num_present == 0:
            raise ValueError('no class has a positive video in the evaluated '
                             'set; mAP is undefined')
        kept_scores = pooled[:, present].numpy()
        kept_labels = labels[:, present].numpy()
        m_ap = float(mean_average_precision(list(kept_scores),
                                            list(kept_labels)))
        return OrderedDict(
            mAP=m_ap,
            num_classes_evaluated=num_present,
            num_classes_absent=num_classes - num_present,
            num_videos=len(videos))
