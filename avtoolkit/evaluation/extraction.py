"""Features of frozen models: pooled features for the probes, named
per-stage features for ``tools/extract_features.py``.

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
``x_mean`` ...     (C,)         pooled features
                                (:data:`~avtoolkit.models.structures.POOLED_FEATURES`)
=================  ===========  ============================================

Only final outputs are available: ``SharedLowRankTransformer.forward``
returns the last layer of every Transformer and has no option to return
intermediate layers.
"""
import logging
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from avtoolkit.checkpoint.loading import load_weights
from avtoolkit.datasets.bad_input import BadInputCounter, collect_bad_inputs
from avtoolkit.models.structures import (POOLED_FEATURES, AVOutputs,
                                         pool_features)
from avtoolkit.utils.logs import init_weights_quietly

from .feature_writers import (NpyFeatureWriter, WebDatasetFeatureWriter,
                              check_output_dir)
from .loaders import progress_bar, safe_len

CLIP_FEATURES = ('cnn_v', 'cnn_a', 'x_v', 'x_a')
SEQUENCE_FEATURES = ('y_v', 'y_a', 'z')
SUMMARY_FEATURES = ('y_v_summary', 'y_a_summary', 'z_v_summary',
                    'z_a_summary')
FEATURE_NAMES = CLIP_FEATURES + SEQUENCE_FEATURES + SUMMARY_FEATURES + \
    POOLED_FEATURES
_BACKBONE_OF = {'cnn_v': 'visual_backbone', 'cnn_a': 'audio_backbone'}


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


def build_model(model_cfg: dict, checkpoint: Optional[str] = None,
                seed: int = 0, device: str = 'cpu',
                scope: str = 'avtoolkit') -> Tuple[nn.Module, Optional[dict]]:
    """Build ``model_cfg`` with its initial weights (seeded), then load
    ``checkpoint`` into it if given (every checkpoint key, not strictly:
    e.g. a pretraining checkpoint into a fine-tuning model).  Returns
    ``(model in eval mode, load report as a dict
    (:meth:`~avtoolkit.checkpoint.LoadReport.to_dict`) or None)``."""
    from mmengine.registry import DefaultScope

    from avtoolkit.registry import MODELS
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    init_weights_quietly(model)
    report = None
    if checkpoint:
        report = load_weights(model, checkpoint, '', strict=False).to_dict()
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


def report_bad_inputs(counter: BadInputCounter, what: str) -> None:
    """Log the bad-input report of an extraction when it has anything (a
    skipped input, or one used after a policy change such as looping)."""
    if counter.counts:
        from mmengine.logging import print_log
        print_log(f'{what}: {counter.format()}', logger='current',
                  level=logging.WARNING)


@torch.no_grad()
def extract_pooled_features(model: nn.Module, dataloader,
                            features: Sequence[str],
                            progress: bool = False,
                            counter: Optional[BadInputCounter] = None
                            ) -> Tuple[Dict[str, Tensor], Tensor]:
    """Pooled features of every labelled sequence of ``dataloader``.

    The model (an ``AVBERTEncoder`` or subclass, possibly wrapped) runs in
    eval mode and is put back in its previous mode afterwards.  Batches go
    through the model's data preprocessor, then ``extract_feat``.  In a
    distributed run every rank extracts its share and the rows are gathered
    and ordered by ``sample_idx`` on all ranks.  The bad-input records of
    the batches go to ``counter`` (a new one by default) and are logged.

    Returns:
        ``({name: (N, C) float32}, labels (N,) int64)`` on the CPU.
    """
    from mmengine.dist import all_gather_object, is_distributed
    unknown = set(features) - set(POOLED_FEATURES)
    if unknown or not features:
        raise ValueError(f'features must be among {POOLED_FEATURES}, got '
                         f'{list(features)}')
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    rows = []
    counter = BadInputCounter() if counter is None else counter
    bar = progress_bar(safe_len(dataloader), progress)
    try:
        for data in dataloader:
            counter.update(collect_bad_inputs(data))
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
    report_bad_inputs(counter, 'feature extraction')
    if is_distributed():
        gathered = all_gather_object(rows)
        rows = {r[0]: r for part in gathered for r in part}
        rows = [rows[k] for k in sorted(rows)]
    if not rows:
        raise ValueError('the dataloader gave no sample')
    labels = torch.tensor([r[1] for r in rows])
    feats = {k: torch.stack([r[2][k] for r in rows]) for k in features}
    return feats, labels


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
        elif name in POOLED_FEATURES:
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
                        names: Sequence[str], progress: bool = True,
                        counter: Optional[BadInputCounter] = None
                        ) -> Iterator[Tuple[Dict[str, np.ndarray],
                                            List[dict]]]:
    """Run ``model`` over ``dataloader`` and yield, per batch,
    ``({name: (B, ...) float32 array}, [meta of every sample])`` where meta
    has ``sample_idx``, ``filename`` and ``label`` (None if unlabelled).
    The bad-input records of the batches go to ``counter`` (a new one by
    default) and are logged at the end."""
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
    bar = progress_bar(safe_len(dataloader), progress)
    counter = BadInputCounter() if counter is None else counter
    count = 0
    for data in dataloader:
        counter.update(collect_bad_inputs(data))
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
    report_bad_inputs(counter, 'feature extraction')


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
    writer = NpyFeatureWriter(out_dir, safe_len(dataloader, exact=True)) \
        if fmt == 'npy' else WebDatasetFeatureWriter(out_dir, shard_size)
    try:
        for arrays, metas in iter_named_features(model, dataloader, names,
                                                 progress):
            writer.write(arrays, metas)
        return writer.close()
    except BaseException:
        writer.abort()
        raise
