"""Dataloaders of the evaluation tools, built from config sections: the
inputs of feature extraction and the labelled sets of the probes."""
import copy
import os.path as osp
from typing import Callable, Optional, Tuple

import numpy as np
import torch


def progress_bar(total: Optional[int], enabled: bool):
    if not enabled or not total:
        return None
    from mmengine.utils import ProgressBar
    return ProgressBar(total)


def build_dataloader(dataloader_cfg: dict, scope: str = 'avtoolkit'):
    """A dataloader from a config dict (as in ``test_dataloader``), built in
    the avtoolkit registry scope."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    cfg = dict(dataloader_cfg)
    with DefaultScope.overwrite_default_scope(scope):
        return Runner.build_dataloader(cfg)


def safe_len(loader, exact: bool = False) -> Optional[int]:
    """Samples a dataloader will give: ``len(loader.dataset)`` (None for
    other iterables).  ``exact`` also gives None for iterable datasets,
    whose length is an estimate (shards may hold skipped records)."""
    dataset = getattr(loader, 'dataset', None)
    if dataset is None:
        return None
    if exact and isinstance(dataset, torch.utils.data.IterableDataset):
        return None
    try:
        return len(dataset)
    except TypeError:
        return None


def as_plain(obj, convert: Callable = None):
    """A JSON-friendly copy of nested config dicts / lists / tuples."""
    if isinstance(obj, dict):
        return {str(k): as_plain(v, convert) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_plain(v, convert) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    return convert(obj) if convert is not None else repr(obj)


def _plain_dataloader(cfg, key: str) -> dict:
    """The dataloader config ``cfg[key]``; for a protocol config without
    ``test_dataloader`` the protocol's dataset in a sequential loader."""
    loader = cfg.get(key)
    if loader is None and key == 'test_dataloader' and cfg.get('protocol'):
        protocol = cfg.protocol
        loader = dict(batch_size=protocol.get('batch_size', 4),
                      num_workers=protocol.get('num_workers', 0),
                      dataset=protocol.dataset)
    if loader is None:
        keys = sorted(k for k in cfg.keys() if k.endswith('_dataloader')
                      and cfg.get(k))
        raise KeyError(f'the config has no "{key}"; dataloaders in it: '
                       f'{keys}')
    return dict(loader)


def feature_dataloader(cfg, dataloader_key: str = 'test_dataloader',
                       video_list: Optional[str] = None,
                       data_prefix: str = '',
                       shards: Optional[str] = None,
                       batch_size: Optional[int] = None,
                       num_workers: Optional[int] = None):
    """A sequential dataloader over the inputs to extract features from.

    Args:
        cfg: the config (mmengine ``Config``).
        dataloader_key: the config's dataloader to use as is, or whose
            dataset pipeline reads ``video_list`` / ``shards``.
        video_list: a list file (``path [label ...]`` per line, see
            :class:`~avtoolkit.datasets.AVVideoDataset`) read with that
            pipeline instead of the config's dataset.
        data_prefix: folder prepended to relative paths of ``video_list``.
        shards: a folder (with ``index.json``) or a pattern of webdataset
            shards (``tools/data/build_shards.py``) read with that pipeline.
        batch_size, num_workers: override the dataloader's.
    """
    if video_list and shards:
        raise ValueError('give either a video list or shards, not both')
    loader = _plain_dataloader(cfg, dataloader_key)
    dataset = dict(loader['dataset'])
    pipeline = dataset.get('pipeline')
    if (video_list or shards) and not pipeline:
        raise ValueError(f'{dataloader_key}.dataset has no pipeline to read '
                         'the inputs with')
    if video_list:
        if not osp.isfile(video_list):
            raise FileNotFoundError(f'video list "{video_list}" not found')
        dataset = dict(type='AVVideoDataset', ann_file=video_list,
                       data_prefix=dict(video=data_prefix),
                       pipeline=pipeline, test_mode=True)
    elif shards:
        dataset = dict(type='AVWebDataset', urls=shards, pipeline=pipeline,
                       test_mode=True, shard_shuffle=False)
    else:
        dataset['test_mode'] = True
    loader['dataset'] = dataset
    loader['sampler'] = None if shards else dict(type='DefaultSampler',
                                                 shuffle=False)
    loader['collate_fn'] = dict(type='pseudo_collate')
    loader['persistent_workers'] = False
    loader.pop('drop_last', None)
    if batch_size is not None:
        loader['batch_size'] = int(batch_size)
    if num_workers is not None:
        loader['num_workers'] = int(num_workers)
    return build_dataloader(loader)


def pipeline_modalities(dataset) -> Tuple[str, ...]:
    """The modalities the dataset's ``AVInit`` step reads (both when the
    pipeline has none)."""
    from avtoolkit.datasets.transforms import AVInit

    def find(transforms) -> Optional[Tuple[str, ...]]:
        # composite steps (AVSequencePipeline) expose their AVInit through
        # `transforms`
        for transform in transforms or []:
            if isinstance(transform, AVInit):
                return tuple(transform.modalities)
            inner = find(getattr(transform, 'transforms', None))
            if inner is not None:
                return inner
        return None

    pipeline = getattr(dataset, 'pipeline', None)
    return find(getattr(pipeline, 'transforms', None)) or ('video', 'audio')


def _pipeline_holder(dataset) -> Optional[dict]:
    """The innermost dataset dict of a (wrapped) dataset config that has a
    ``pipeline``."""
    while isinstance(dataset, dict):
        if dataset.get('pipeline') is not None:
            return dataset
        dataset = dataset.get('dataset')
    return None


def _fine_tuning_probe_loader(cfg, split: str) -> Optional[dict]:
    """A probe set of a fine-tuning config: the validation loader as it is
    (``split='val'``), or the training loader read once, in order, through
    the validation pipeline (``split='train'``; no training augmentation)."""
    train, val = cfg.get('train_dataloader'), cfg.get('val_dataloader')
    if not train or not val:
        return None
    val = as_plain(val)
    if split == 'val':
        return val
    val_holder = _pipeline_holder(val.get('dataset'))
    loader = as_plain(train)
    holder = _pipeline_holder(loader.get('dataset'))
    if val_holder is None or holder is None:
        return None
    holder['pipeline'] = copy.deepcopy(val_holder['pipeline'])
    holder['test_mode'] = True
    loader['sampler'] = dict(type='DefaultSampler', shuffle=False)
    loader['batch_size'] = val.get('batch_size', loader.get('batch_size'))
    loader.pop('batch_sampler', None)
    return loader


def probe_settings(cfg, train_key: Optional[str] = None,
                   val_key: Optional[str] = None) -> dict:
    """Dataloaders and options of the probes of a config.

    The labelled sets come from ``cfg[train_key]`` / ``cfg[val_key]`` when
    given, else from the config's ``ProbeHook`` (in ``custom_hooks``), else
    from ``probe_train_dataloader`` / ``probe_val_dataloader``, else (a
    fine-tuning config) from its ``train_dataloader`` read once in order
    through the ``val_dataloader``'s pipeline, and its ``val_dataloader``:
    fitted on the training part, scored on the held-out validation part.
    Returns ``{'train', 'val'}`` dataloader configs plus the hook's
    ``features``, ``knn_k`` and ``linear_weight_decay`` when it has them
    (a fine-tuning config's ``model.feature`` sets the default features).
    """
    hook = next((h for h in cfg.get('custom_hooks', None) or []
                 if h.get('type') == 'ProbeHook'), None)
    settings = dict(features=('x_mean', 'z_summary'), knn_k=10,
                    linear_weight_decay=1e-3)
    if hook is not None:
        for name in ('features', 'knn_k', 'linear_weight_decay'):
            if name in hook:
                settings[name] = hook[name]
    else:
        feature = (cfg.get('model') or {}).get('feature')
        if feature:
            settings['features'] = (feature, ) if isinstance(feature, str) \
                else tuple(feature)
    for split, key in (('train', train_key), ('val', val_key)):
        if key is not None:
            loader = cfg.get(key)
            where = f'config key "{key}"'
        elif hook is not None:
            loader = hook.get(f'{split}_dataloader')
            where = f'ProbeHook.{split}_dataloader'
        elif cfg.get(f'probe_{split}_dataloader'):
            loader = cfg.get(f'probe_{split}_dataloader')
            where = f'config key "probe_{split}_dataloader"'
        else:
            loader = _fine_tuning_probe_loader(cfg, split)
            where = ('config keys "probe_{0}_dataloader", or '
                     '"train_dataloader" and "val_dataloader",').format(split)
        if not loader:
            raise KeyError(f'no {split} dataloader for the probes ({where} '
                           'is missing); pass --train-key/--val-key')
        loader = dict(loader)
        loader['persistent_workers'] = False
        settings[split] = loader
    settings['features'] = tuple(settings['features'])
    return settings
