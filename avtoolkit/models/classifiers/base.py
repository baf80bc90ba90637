"""What the fine-tuning classifiers share: label reading, losses, view
pooling and prediction packing (:class:`ClassifierMixin`), head building.

Batches are made by ``PackAVInputs`` + ``AVDataPreprocessor``:

* ``inputs['video']``: (B, T, C, F, H, W), or (B, V, T, C, F, H, W) with V
  spatial views (``ThreeCrop`` at test time);
* ``inputs['audio']``: (B, T, 1, mel, frames), or (B, V, T, 1, mel, frames).

Every view is scored separately; ``predict`` pools the V views of each
sample (mean or max of the class probabilities, ``view_reduce``) and stores
one ``(num_classes,)`` probability vector per sample with
``ActionDataSample.set_pred_score``, which ``MultiViewAccuracy`` (use
``aggregate='mean_score'``) and ``MultiLabelMAP`` read.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmaction.structures import ActionDataSample
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from avtoolkit.checkpoint.loading import LoadReport, load_weights
from avtoolkit.registry import MODELS

VIEW_REDUCTIONS = ('mean', 'max')


def build_head(head: dict, in_channels: int, num_classes: int) -> nn.Module:
    if not isinstance(head, dict):
        raise TypeError(f'head must be a config dict, got '
                        f'{type(head).__name__}')
    head = dict(head)
    head.setdefault('type', 'MLPClsHead')
    for name, value in (('in_channels', in_channels),
                        ('num_classes', num_classes)):
        if head.get(name, value) != value:
            raise ValueError(f'head.{name}={head[name]} disagrees with the '
                             f'model ({value}); leave it out of the head '
                             'config')
        head[name] = value
    return MODELS.build(head)


def _label_of(sample) -> Tensor:
    """The ground truth of one data sample as a tensor (``gt_label`` or
    mmaction2's ``gt_labels.item``)."""
    value = None
    if isinstance(sample, BaseDataElement):
        value = sample.get('gt_label', None)
        if value is None:
            labels = sample.get('gt_labels', None)
            value = labels.get('item', None) if labels is not None else None
    elif isinstance(sample, dict):
        value = sample.get('gt_label')
    if value is None:
        raise KeyError('a data sample has no ground truth (gt_label or '
                       'gt_labels.item); training needs labelled data')
    return torch.as_tensor(value)


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
            or num_classes < 1:
        raise ValueError(f'num_classes must be a positive int, got '
                         f'{num_classes!r}')
    return num_classes


class ClassifierMixin:
    """Pretrained weights, labels, losses and prediction packing shared by
    the two models.

    A model sets ``pretrained`` (a checkpoint path or None),
    ``strict_pretrained`` and ``pretrained_part`` (what the checkpoint
    fills, for the log), and defines :meth:`pretrained_prefix_map`.
    """

    num_classes: int
    multi_label: bool
    view_reduce: str
    label_smoothing: float
    pretrained: Optional[str]
    strict_pretrained: bool
    pretrained_part: str

    def pretrained_prefix_map(self) -> Dict[str, str]:
        """Checkpoint key prefix -> model key prefix of the pretrained
        part."""
        raise TypeError(f'{type(self).__name__} must define '
                        'pretrained_prefix_map')

    def load_pretrained(self, filename: str,
                        strict: Optional[bool] = None) -> LoadReport:
        """Load the pretrained part from an AVBERT checkpoint."""
        return load_weights(
            self, filename, self.pretrained_prefix_map(),
            strict=self.strict_pretrained if strict is None else strict)

    def init_weights(self) -> None:
        """Random initialisation, then the ``pretrained`` weights if set."""
        super().init_weights()
        if self.pretrained:
            self.load_pretrained(self.pretrained)
        elif not self.init_cfg:
            print_log(f'{type(self).__name__}: no pretrained checkpoint; the '
                      f'{self.pretrained_part} starts from random weights',
                      logger='current')

    def _check_common(self, num_classes, multi_label, view_reduce,
                      label_smoothing) -> None:
        self.num_classes = _check_num_classes(num_classes)
        self.multi_label = bool(multi_label)
        if view_reduce not in VIEW_REDUCTIONS:
            raise ValueError(f'view_reduce must be one of {VIEW_REDUCTIONS}, '
                             f'got {view_reduce!r}')
        self.view_reduce = view_reduce
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError('label_smoothing must be in [0, 1), got '
                             f'{label_smoothing!r}')
        if label_smoothing and self.multi_label:
            raise ValueError('label_smoothing applies to single-label '
                             'cross-entropy only')
        self.label_smoothing = float(label_smoothing)

    def _targets(self, data_samples, device) -> Tensor:
        """(B,) class indices, or (B, num_classes) 0/1 targets."""
        if not data_samples:
            raise ValueError('training needs data_samples with labels')
        rows = []
        for sample in data_samples:
            label = _label_of(sample).reshape(-1)
            if self.multi_label:
                if label.is_floating_point():
                    if label.numel() != self.num_classes:
                        raise ValueError(
                            f'a multi-hot label must have {self.num_classes} '
                            f'entries, got {label.numel()}')
                    rows.append(label.float())
                else:
                    if label.numel() and (label.min() < 0 or
                                          label.max() >= self.num_classes):
                        raise ValueError('label indices must lie in [0, '
                                         f'{self.num_classes}), got '
                                         f'{label.tolist()}')
                    hot = torch.zeros(self.num_classes)
                    hot[label.long()] = 1.0
                    rows.append(hot)
            else:
                if label.numel() != 1:
                    raise ValueError(
                        'single-label training needs one class index per '
                        f'sample, got {label.numel()} values; set '
                        'multi_label=True for multi-label data')
                index = int(label.item())
                if not 0 <= index < self.num_classes:
                    raise ValueError(f'label {index} is outside [0, '
                                     f'{self.num_classes})')
                rows.append(torch.tensor(index))
        return torch.stack(rows).to(device)

    def _classification_loss(self, logits: Tensor, targets: Tensor,
                             repeats: int) -> Dict[str, Tensor]:
        """Loss of (B*repeats, K) logits whose rows r*repeats..r*repeats+
        repeats-1 belong to sample r."""
        if repeats > 1:
            targets = targets.repeat_interleave(repeats, dim=0)
        if self.multi_label:
            return dict(loss_cls=F.binary_cross_entropy_with_logits(
                logits, targets))
        losses = dict(loss_cls=F.cross_entropy(
            logits, targets, label_smoothing=self.label_smoothing))
        with torch.no_grad():
            losses['acc_top1'] = (logits.argmax(1) == targets).float().mean()
        return losses

    def _scores(self, logits: Tensor, batch: int) -> Tensor:
        """(B*V, K) logits -> (B, K) probabilities pooled over the V views."""
        probs = logits.sigmoid() if self.multi_label else logits.softmax(1)
        probs = probs.view(batch, -1, probs.shape[-1])
        return probs.mean(1) if self.view_reduce == 'mean' else \
            probs.max(1).values

    def _pack(self, scores: Tensor, data_samples) -> list:
        if data_samples is None:
            data_samples = [ActionDataSample() for _ in range(len(scores))]
        if len(data_samples) != len(scores):
            raise ValueError(f'{len(data_samples)} data samples for a batch '
                             f'of {len(scores)}')
        for sample, score in zip(data_samples, scores):
            sample.set_pred_score(score.detach().float())
            if not self.multi_label:
                sample.set_pred_label(score.argmax().reshape(1))
        return data_samples


def flatten_views(name: str, x: Tensor, base_ndim: int) -> Tuple[Tensor,
                                                                  int]:
    """(B, T, *clip) -> itself, V = 1; (B, V, T, *clip) -> (B*V, T, *clip)."""
    if not isinstance(x, Tensor):
        raise TypeError(f'inputs["{name}"] must be a tensor, got '
                        f'{type(x).__name__}')
    if x.dim() == base_ndim:
        return x, 1
    if x.dim() == base_ndim + 1:
        return x.flatten(0, 1), x.shape[1]
    raise ValueError(f'inputs["{name}"] must be (B, T, ...) with '
                     f'{base_ndim} dims or (B, V, T, ...) with '
                     f'{base_ndim + 1}, got shape {tuple(x.shape)}')
