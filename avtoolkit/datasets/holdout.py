"""The held-out validation part of a training list (``HoldOutSplit``).

Fine-tuning protocols select models on a deterministic, class-stratified
part of the training list, so that model selection never looks at the test
split.
"""
from typing import Hashable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from avtoolkit.registry import DATASETS
from avtoolkit.utils.checks import check_int

__all__ = ['holdout_indices', 'holdout_split', 'per_class_subset']


def _stratum(label) -> Hashable:
    """Single-label entries are stratified by their class; others (no
    label, multi-label) fall into one stratum."""
    if isinstance(label, (torch.Tensor, np.ndarray)):
        label = label.reshape(-1).tolist()
    if isinstance(label, (list, tuple)):
        return label[0] if len(label) == 1 else None
    if isinstance(label, float) and label.is_integer():
        return int(label)
    return label if isinstance(label, int) else None


def holdout_indices(labels: Sequence, val_fraction: float, seed: int = 0,
                    stratify: bool = True) -> Tuple[List[int], List[int]]:
    """Deterministic ``(train, val)`` index lists of a training list.

    ``round(val_fraction * n)`` members of every stratum (class, with
    ``stratify``; the whole list otherwise) go to ``val``, at least one and
    never all of a stratum of two or more.  The choice depends only on
    ``labels``, ``val_fraction`` and ``seed``; the two lists are disjoint and
    cover every index.
    """
    if isinstance(val_fraction, bool) or not isinstance(
            val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        raise ValueError('val_fraction must be a number in (0, 1), got '
                         f'{val_fraction!r}')
    check_int('seed', seed, 0, 2**63 - 1)
    keys = [_stratum(label) if stratify else None for label in labels]
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    order = {}
    for i, key in enumerate(keys):
        order.setdefault(key, []).append(i)
    val = []
    for key in sorted(order, key=lambda k: (k is None, str(k))):
        members = np.asarray(order[key])
        n = len(members)
        k = min(max(1, int(round(val_fraction * n))), n - 1) if n > 1 else 0
        val.extend(int(i) for i in rng.permutation(members)[:k])
    if not val:
        raise ValueError(f'val_fraction={val_fraction} of {len(keys)} '
                         'entries leaves the validation part empty')
    val_set = set(val)
    return [i for i in range(len(keys)) if i not in val_set], sorted(val)


@DATASETS.register_module(name='HoldOutSplit')
def holdout_split(dataset: Union[dict, object],
                  part: str,
                  val_fraction: float = 0.1,
                  seed: int = 0,
                  stratify: bool = True,
                  train_per_class: Optional[int] = None):
    """The ``'train'`` or ``'val'`` part of a training dataset.

    Builds ``dataset`` (a config or a built mmengine dataset), chooses the
    validation entries with :func:`holdout_indices` (class-stratified for
    single-label data) and returns the dataset reduced in place to the
    requested part (``BaseDataset.get_subset_``), with ``holdout`` attribute
    ``dict(part, val_fraction, seed, num_train, num_val, train_per_class)``.
    Use the same ``dataset``, ``val_fraction`` and ``seed`` for both parts:
    they are then disjoint and together the whole list.

    ``train_per_class`` (single-label data, ``part='train'``): keep only
    this many training videos of every class (chosen with ``seed``; a class
    with fewer keeps all it has), for fine-tuning with few labels.  The
    validation part is the same with or without it.
    """
    if part not in ('train', 'val'):
        raise ValueError(f"part must be 'train' or 'val', got {part!r}")
    if train_per_class is not None:
        check_int('train_per_class', train_per_class, 1)
        if part != 'train' or not stratify:
            raise ValueError('train_per_class needs part="train" and '
                             'stratify=True (single-label data)')
    ds = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
    if not hasattr(ds, 'get_subset_'):
        raise TypeError('HoldOutSplit needs an mmengine BaseDataset, got '
                        f'{type(ds).__name__}')
    ds.full_init()
    labels = [ds.get_data_info(i).get('label') for i in range(len(ds))]
    train, val = holdout_indices(labels, val_fraction, seed, stratify)
    if train_per_class is not None:
        train = per_class_subset([labels[i] for i in train], train,
                                 train_per_class, seed)
    ds.get_subset_(train if part == 'train' else val)
    ds.holdout = dict(part=part, val_fraction=float(val_fraction),
                      seed=int(seed), num_train=len(train), num_val=len(val),
                      train_per_class=train_per_class)
    return ds


def per_class_subset(labels: Sequence, indices: Sequence[int], count: int,
                     seed: int = 0) -> List[int]:
    """``count`` members of ``indices`` per class (``labels[k]`` is the
    class of ``indices[k]``), chosen with ``seed``, in their original
    order; classes with fewer members keep them all."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    groups = {}
    for index, label in zip(indices, labels):
        groups.setdefault(_stratum(label), []).append(int(index))
    keep = set()
    for key in sorted(groups, key=str):
        members = np.asarray(groups[key])
        keep.update(int(i) for i in rng.permutation(members)[:count])
    return [int(i) for i in indices if int(i) in keep]
