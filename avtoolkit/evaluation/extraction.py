"""Features of frozen models: extraction, checkpoint loading, storage.

Shared by the probe hook (:class:`avtoolkit.engine.ProbeHook`), the
evaluation protocols (:mod:`avtoolkit.evaluation.protocols`),
``tools/extract_features.py`` and ``tools/analysis/probe.py``.

Feature names (:data:`FEATURE_NAMES`), shapes per sample, with T clips, D the
model width, ``C_cnn`` the pooled CNN width (``feat_dim`` of the backbone)
and H the modalities in the multimodal output:

=================  ===========  ============================================
name               shape        what
=================  ===========  ============================================
``cnn_v/cnn_a``    (T, C_cnn)   CNN output of every clip, globally pooled
                                (the input of the backbone's projection)
``x_v/x_a``        (T, D)       CNN embeddings (projection + LayerNorm)
``y_v/y_a``        (T+1, D)     unimodal Transformer outputs, BOS at 0
``z``              (H(T+1), D)  multimodal Transformer output
``*_summary``      (D,)         BOS outputs: ``y_v_summary``,
                                ``y_a_summary``, ``z_v_summary``,
                                ``z_a_summary``
``x_mean`` ...     (C,)         pooled features of
                                :mod:`avtoolkit.evaluation.features`
=================  ===========  ============================================

Only final outputs are available: ``SharedLowRankTransformer.forward``
returns the last layer of every Transformer and has no option to return
intermediate layers.
"""
import copy
import json
import logging
import os
import os.path as osp
from typing import (Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import numpy as np
import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from avtoolkit.evaluation.features import FEATURES, pool_features
from avtoolkit.models.structures import AVOutputs

CLIP_FEATURES = ('cnn_v', 'cnn_a', 'x_v', 'x_a')
SEQUENCE_FEATURES = ('y_v', 'y_a', 'z')
SUMMARY_FEATURES = ('y_v_summary', 'y_a_summary', 'z_v_summary',
                    'z_a_summary')
FEATURE_NAMES = CLIP_FEATURES + SEQUENCE_FEATURES + SUMMARY_FEATURES + \
    FEATURES
INDEX_FILE = 'index.json'
_BACKBONE_OF = {'cnn_v': 'visual_backbone', 'cnn_a': 'audio_backbone'}


# --------------------------------------------------------------- helpers
def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside a DDP / mmengine wrapper."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def sample_label(data_sample) -> Optional[object]:
    """The label of a packed data sample: an int, a list of class indices
    (multi-label one-hot targets), or None when unlabelled."""
    if hasattr(data_sample, 'gt_labels'):
        value = data_sample.gt_labels.item
    elif hasattr(data_sample, 'gt_label'):
        value = data_sample.gt_label
    else:
        return None
    value = torch.as_tensor(value).reshape(-1)
    if value.numel() == 1 and not value.is_floating_point():
        return int(value[0])
    if value.is_floating_point() and value.numel() > 1:
        return value.nonzero().flatten().tolist()  # one-hot target
    return [int(v) for v in value]


def _progress(total: Optional[int], enabled: bool):
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


# ------------------------------------------------------ checkpoint loading
def read_state_dict(checkpoint: str) -> Dict[str, Tensor]:
    """The ``state_dict`` of an mmengine checkpoint (or a bare state dict),
    loaded with ``weights_only=True``, without a ``module.`` prefix."""
    from avtoolkit.utils.checkpoint import (allow_mmengine_checkpoint_globals,
                                            load_checkpoint_file)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint "{checkpoint}" not found')
    allow_mmengine_checkpoint_globals()
    ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'{checkpoint}: expected a dict, got '
                         f'{type(ckpt).__name__}')
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict) or not any(
            isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f'{checkpoint} holds no tensors under "state_dict"')
    return {(k[7:] if k.startswith('module.') else k): v
            for k, v in state.items() if isinstance(v, Tensor)}


def load_weights(module: nn.Module, checkpoint: str, prefix: str = '',
                 strict: bool = False) -> dict:
    """Load the entries of ``checkpoint`` under ``prefix`` into ``module``.

    Args:
        module: the module to fill (e.g. an audio backbone).
        checkpoint: path of an mmengine checkpoint.
        prefix: key prefix of the module in the checkpoint, e.g.
            ``'audio_backbone.'`` for the audio CNN of an AVBERT checkpoint;
            ``''`` for a checkpoint of ``module`` itself.
        strict: raise when keys of ``module`` are missing from the
            checkpoint or the checkpoint has unexpected keys under
            ``prefix``.

    Returns:
        ``{'checkpoint', 'prefix', 'loaded', 'missing', 'unexpected',
        'ignored'}``: the number of tensors loaded, the module's keys the
        checkpoint lacks, the checkpoint keys under ``prefix`` the module
        lacks, and the number of checkpoint entries outside ``prefix``.
    """
    state = read_state_dict(checkpoint)
    selected = {k[len(prefix):]: v for k, v in state.items()
                if k.startswith(prefix)}
    if not selected:
        heads = sorted({k.split('.')[0] + '.' for k in state})
        raise KeyError(f'{checkpoint} has no weights under "{prefix}"; its '
                       f'top-level prefixes are {heads[:12]}')
    own = module.state_dict()
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model '
                  f'{tuple(own[k].shape)}' for k, v in selected.items()
                  if k in own and own[k].shape != v.shape]
    if mismatched:
        raise ValueError(f'{checkpoint}: shapes under "{prefix}" differ from '
                         'the model built from the config (a different '
                         f'architecture?): {mismatched[:5]}')
    result = module.load_state_dict(selected, strict=False)
    report = dict(checkpoint=checkpoint, prefix=prefix,
                  loaded=len(selected) - len(result.unexpected_keys),
                  missing=list(result.missing_keys),
                  unexpected=list(result.unexpected_keys),
                  ignored=len(state) - len(selected))
    if report['missing'] or report['unexpected']:
        msg = (f'{checkpoint} under "{prefix}": {len(report["missing"])} '
               f'missing keys {report["missing"][:5]}, '
               f'{len(report["unexpected"])} unexpected keys '
               f'{report["unexpected"][:5]}')
        if strict:
            raise KeyError(msg)
        print_log(msg, logger='current', level=logging.WARNING)
    return report


def init_weights_quietly(module: nn.Module) -> None:
    """``module.init_weights()`` without mmengine's per-parameter report
    (hundreds of INFO lines on the console when no log file is open)."""
    if not hasattr(module, 'init_weights'):
        return
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        module.init_weights()
    finally:
        logger.setLevel(level)


def build_model(model_cfg: dict, checkpoint: Optional[str] = None,
                seed: int = 0, device: str = 'cpu',
                scope: str = 'avtoolkit') -> Tuple[nn.Module, Optional[dict]]:
    """Build ``model_cfg`` with its initial weights (seeded), then load
    ``checkpoint`` into it if given.  Returns ``(model in eval mode,
    load report or None)``."""
    from mmengine.registry import DefaultScope

    from avtoolkit.registry import MODELS
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    init_weights_quietly(model)
    report = load_weights(model, checkpoint) if checkpoint else None
    return model.to(device).eval(), report


class ProjectionInputTap:
    """Record the input of a ``ClipSequenceEncoder``'s projection layer: the
    globally pooled CNN output of every clip, ``(B*T, feat_dim)``.

    Use as a context manager around a forward pass; :meth:`pop` returns the
    recorded features as ``(B, T, feat_dim)``.
    """

    def __init__(self, backbone: nn.Module, name: str = 'backbone'):
        proj = getattr(backbone, 'proj', None)
        if not isinstance(proj, nn.Module):
            raise ValueError(
                f'the {name} ({type(backbone).__name__}) has no "proj" layer, '
                'so its pooled CNN features cannot be read; use the CNN '
                'embeddings (x_v / x_a) instead')
        self.proj = proj
        self.name = name
        self._handle = None
        self._chunks: List[Tensor] = []

    def _hook(self, module, inputs, output) -> None:
        self._chunks.append(inputs[0].detach())

    def __enter__(self) -> 'ProjectionInputTap':
        self._chunks = []
        self._handle = self.proj.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> bool:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        return False

    def pop(self, batch: int, num_clips: int) -> Tensor:
        if not self._chunks:
            raise RuntimeError(f'the {self.name} projection did not run')
        feats = torch.cat(self._chunks)
        self._chunks = []
        if feats.shape[0] != batch * num_clips:
            raise RuntimeError(
                f'the {self.name} projection saw {feats.shape[0]} clips, '
                f'expected {batch} x {num_clips} (padding masks are not '
                'supported here)')
        return feats.view(batch, num_clips, -1)


# ---------------------------------------------------- pooled (probe) features
@torch.no_grad()
def extract_pooled_features(model: nn.Module, dataloader,
                            features: Sequence[str],
                            progress: bool = False
                            ) -> Tuple[Dict[str, Tensor], Tensor]:
    """Pooled features of every labelled sequence of ``dataloader``.

    The model (an ``AVBERTEncoder`` or subclass, possibly wrapped) runs in
    eval mode and is put back in its previous mode afterwards.  Batches go
    through the model's data preprocessor, then ``extract_feat``.  In a
    distributed run every rank extracts its share and the rows are gathered
    and ordered by ``sample_idx`` on all ranks.

    Returns:
        ``({name: (N, C) float32}, labels (N,) int64)`` on the CPU.
    """
    from mmengine.dist import all_gather_object, is_distributed
    unknown = set(features) - set(FEATURES)
    if unknown or not features:
        raise ValueError(f'features must be among {FEATURES}, got '
                         f'{list(features)}')
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    rows = []
    bar = _progress(_safe_len(dataloader), progress)
    try:
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            inputs = data['inputs']
            out = model.extract_feat(inputs.get('video'),
                                     inputs.get('audio'))
            pooled = {name: pool_features(out, name).float().cpu()
                      for name in features}
            for i, sample in enumerate(data['data_samples']):
                label = sample_label(sample)
                if not isinstance(label, int):
                    raise ValueError(
                        'probes need one integer label per sample, got '
                        f'{label!r} for {sample.metainfo.get("filename")}')
                rows.append((sample.metainfo.get('sample_idx', len(rows)),
                             label, {k: v[i] for k, v in pooled.items()}))
            if bar is not None:
                bar.update(len(data['data_samples']))
    finally:
        model.train(was_training)
    if is_distributed():
        gathered = all_gather_object(rows)
        rows = {r[0]: r for part in gathered for r in part}
        rows = [rows[k] for k in sorted(rows)]
    if not rows:
        raise ValueError('the dataloader gave no sample')
    labels = torch.tensor([r[1] for r in rows])
    feats = {k: torch.stack([r[2][k] for r in rows]) for k in features}
    return feats, labels


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
    from avtoolkit.evaluation.probes import knn_probe, linear_probe
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


def _safe_len(loader, exact: bool = False) -> Optional[int]:
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


# ------------------------------------------------------------ named features
def available_features(model: nn.Module,
                       modalities: Sequence[str]) -> List[str]:
    """Feature names that ``model`` produces from inputs of ``modalities``
    (``'video'``, ``'audio'``), in :data:`FEATURE_NAMES` order."""
    model = unwrap_model(model)
    has_v = 'video' in modalities and getattr(model, 'visual_backbone',
                                              None) is not None
    has_a = 'audio' in modalities and getattr(model, 'audio_backbone',
                                              None) is not None
    fusion = getattr(getattr(model, 'neck', None), 'fusion', 'mid')
    names = []
    for short, present in (('v', has_v), ('a', has_a)):
        if not present:
            continue
        backbone = getattr(model, _BACKBONE_OF[f'cnn_{short}'])
        if isinstance(getattr(backbone, 'proj', None), nn.Module):
            names.append(f'cnn_{short}')
        names.append(f'x_{short}')
        if fusion != 'early':
            names += [f'y_{short}', f'y_{short}_summary']
        if fusion != 'late':
            names.append(f'z_{short}_summary')
    if not (has_v or has_a):
        return []
    if fusion != 'late':
        names.append('z')
    names += ['x_mean']
    if fusion != 'early':
        names += ['y_summary', 'y_mean']
    if fusion != 'late':
        names += ['z_summary', 'z_mean']
    return [n for n in FEATURE_NAMES if n in names]


def collect_features(out: AVOutputs, cnn: Dict[str, Tensor],
                     names: Sequence[str]) -> Dict[str, Tensor]:
    """The tensors of ``names`` (see the module docstring) from one batch:
    each ``(B, ...)``."""
    found: Dict[str, Tensor] = {}
    for name in names:
        if name in CLIP_FEATURES[:2]:
            value = cnn.get(name)
        elif name in FEATURES:
            value = pool_features(out, name)
        elif name in ('y_v_summary', 'y_a_summary'):
            y = out.y_v if name == 'y_v_summary' else out.y_a
            value = None if y is None else y[:, 0]
        elif name in ('z_v_summary', 'z_a_summary'):
            z = out.z_v if name == 'z_v_summary' else out.z_a
            value = None if z is None else z[:, 0]
        elif name in FEATURE_NAMES:
            value = getattr(out, name)
        else:
            raise KeyError(f'unknown feature "{name}"; choose from '
                           f'{FEATURE_NAMES}')
        if value is None:
            raise ValueError(f'the model outputs hold nothing for "{name}" '
                             '(modality absent from the inputs, or not '
                             'produced by this fusion)')
        found[name] = value
    return found


@torch.no_grad()
def iter_named_features(model: nn.Module, dataloader,
                        names: Sequence[str], progress: bool = True
                        ) -> Iterator[Tuple[Dict[str, np.ndarray],
                                            List[dict]]]:
    """Run ``model`` over ``dataloader`` and yield, per batch,
    ``({name: (B, ...) float32 array}, [meta of every sample])`` where meta
    has ``sample_idx``, ``filename`` and ``label`` (None if unlabelled)."""
    model = unwrap_model(model)
    model.eval()
    taps = {}
    for name in names:
        if name in _BACKBONE_OF:
            backbone = getattr(model, _BACKBONE_OF[name], None)
            if backbone is None:
                raise ValueError(f'"{name}" needs the model\'s '
                                 f'{_BACKBONE_OF[name]}')
            taps[name] = ProjectionInputTap(backbone, _BACKBONE_OF[name])
    bar = _progress(_safe_len(dataloader), progress)
    count = 0
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        inputs = data['inputs']
        for tap in taps.values():
            tap.__enter__()
        try:
            out = model.extract_feat(inputs.get('video'), inputs.get('audio'))
        finally:
            for tap in taps.values():
                tap.__exit__(None, None, None)
        batch, clips = out.x_v.shape[:2] if out.x_v is not None else \
            out.x_a.shape[:2]
        cnn = {name: tap.pop(batch, clips) for name, tap in taps.items()}
        feats = collect_features(out, cnn, names)
        arrays = {k: v.float().cpu().numpy() for k, v in feats.items()}
        metas = []
        for sample in data['data_samples']:
            meta = sample.metainfo
            metas.append(dict(sample_idx=int(meta.get('sample_idx', count)),
                              filename=str(meta.get('filename', '')),
                              label=sample_label(sample)))
            count += 1
        if bar is not None:
            bar.update(len(metas))
        yield arrays, metas


# ------------------------------------------------------------------ writers
def check_output_dir(out_dir: str, overwrite: bool = False) -> None:
    """Refuse to write into a folder that already holds files, unless
    ``overwrite`` (then the folder's previous feature files are removed)."""
    if osp.isfile(out_dir):
        raise FileExistsError(f'{out_dir} is a file, not a folder')
    existing = sorted(os.listdir(out_dir)) if osp.isdir(out_dir) else []
    if existing and not overwrite:
        raise FileExistsError(
            f'{out_dir} already holds {len(existing)} entries (e.g. '
            f'{existing[:3]}); pass --overwrite to replace them or choose '
            'another --out')
    if existing:
        for name in existing:
            path = osp.join(out_dir, name)
            if osp.isfile(path) and (name == INDEX_FILE or name.endswith(
                    ('.npy', '.tar'))):
                os.remove(path)
    os.makedirs(out_dir, exist_ok=True)


class NpyFeatureWriter:
    """One ``<name>.npy`` file per feature, ``(N, ...)`` float32 in sample
    order, plus ``index.json`` (``{'features': {name: shape}, 'samples':
    [{'row', 'sample_idx', 'filename', 'label'}, ...]}``).

    With ``num_samples`` known the arrays are written through memory maps as
    batches arrive; otherwise batches are kept in memory until
    :meth:`close`.
    """

    def __init__(self, out_dir: str, num_samples: Optional[int] = None):
        self.out_dir = out_dir
        self.num_samples = num_samples
        self._maps: Dict[str, np.ndarray] = {}
        self._chunks: Dict[str, List[np.ndarray]] = {}
        self.samples: List[dict] = []

    def write(self, arrays: Dict[str, np.ndarray], metas: List[dict]) -> None:
        start = len(self.samples)
        end = start + len(metas)
        if self.num_samples is not None and end > self.num_samples:
            raise ValueError(f'more samples than the {self.num_samples} '
                             'announced')
        for name, value in arrays.items():
            if self.num_samples is None:
                self._chunks.setdefault(name, []).append(value)
                continue
            if name not in self._maps:
                self._maps[name] = np.lib.format.open_memmap(
                    osp.join(self.out_dir, f'{name}.npy'), mode='w+',
                    dtype=np.float32,
                    shape=(self.num_samples, ) + value.shape[1:])
            self._maps[name][start:end] = value
        for i, meta in enumerate(metas):
            self.samples.append(dict(meta, row=start + i))

    def close(self) -> dict:
        shapes = {}
        if self.num_samples is not None and len(self.samples) != \
                self.num_samples:
            raise RuntimeError(f'wrote {len(self.samples)} samples, expected '
                               f'{self.num_samples}')
        for name, mm in self._maps.items():
            mm.flush()
            shapes[name] = list(mm.shape)
        self._maps = {}
        for name, chunks in self._chunks.items():
            array = np.concatenate(chunks).astype(np.float32, copy=False)
            np.save(osp.join(self.out_dir, f'{name}.npy'), array)
            shapes[name] = list(array.shape)
        self._chunks = {}
        index = dict(format='npy', features=shapes, samples=self.samples)
        with open(osp.join(self.out_dir, INDEX_FILE), 'w') as f:
            json.dump(index, f, indent=1)
        return index


class WebDatasetFeatureWriter:
    """Tar shards ``features-%06d.tar`` of ``shard_size`` samples; sample
    ``<key>`` holds ``<key>.<name>.npy`` per feature and ``<key>.json``
    (``sample_idx``, ``filename``, ``label``).  ``index.json`` lists the
    shards and feature shapes."""

    def __init__(self, out_dir: str, shard_size: int = 1000):
        import webdataset as wds
        if shard_size < 1:
            raise ValueError('shard_size must be positive')
        self.out_dir = out_dir
        self._writer = wds.ShardWriter(
            osp.join(out_dir, 'features-%06d.tar'), maxcount=shard_size,
            verbose=0)
        self.shapes: Dict[str, List[int]] = {}
        self.count = 0

    def write(self, arrays: Dict[str, np.ndarray], metas: List[dict]) -> None:
        for i, meta in enumerate(metas):
            record = {'__key__': f'{self.count:09d}', 'json': meta}
            for name, value in arrays.items():
                record[f'{name}.npy'] = np.ascontiguousarray(value[i])
                self.shapes[name] = list(value.shape[1:])
            self._writer.write(record)
            self.count += 1

    def close(self) -> dict:
        self._writer.close()
        shards = sorted(f for f in os.listdir(self.out_dir)
                        if f.endswith('.tar'))
        index = dict(format='webdataset', num_samples=self.count,
                     features={k: [self.count] + v
                               for k, v in self.shapes.items()},
                     shards=shards)
        with open(osp.join(self.out_dir, INDEX_FILE), 'w') as f:
            json.dump(index, f, indent=1)
        return index


def extract_to_dir(model: nn.Module, dataloader, names: Sequence[str],
                   out_dir: str, fmt: str = 'npy', overwrite: bool = False,
                   shard_size: int = 1000, progress: bool = True) -> dict:
    """Extract ``names`` for every sample of ``dataloader`` into ``out_dir``
    (``fmt='npy'``: :class:`NpyFeatureWriter`; ``'webdataset'``:
    :class:`WebDatasetFeatureWriter`).  Returns the index written."""
    if fmt not in ('npy', 'webdataset'):
        raise ValueError(f"fmt must be 'npy' or 'webdataset', got {fmt!r}")
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown or not names:
        raise ValueError(f'unknown features {unknown}; choose from '
                         f'{FEATURE_NAMES}')
    check_output_dir(out_dir, overwrite)
    writer = NpyFeatureWriter(out_dir, _safe_len(dataloader, exact=True)) \
        if fmt == 'npy' else WebDatasetFeatureWriter(out_dir, shard_size)
    for arrays, metas in iter_named_features(model, dataloader, names,
                                             progress):
        writer.write(arrays, metas)
    return writer.close()


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


# ------------------------------------------------------- dataloader sources
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
