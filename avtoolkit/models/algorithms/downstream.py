"""Fine-tuning models of the downstream protocols (paper, Sec. 3 and A.3-A.4).

* :class:`AVClassifier`: the whole AVBERT encoder (CNNs + Transformers) with an
  MLP classifier on a pooled feature, in the visual-only (V), audio-only (A)
  and multimodal (M) settings of Kinetics-Sounds and Charades (Table 2(c)).
* :class:`VisualClassifier`: the visual CNN alone with a linear classifier,
  fine-tuned end to end (UCF101, Table 2(a)).

Both read batches made by ``PackAVInputs`` + ``AVDataPreprocessor``:

* ``inputs['video']``: (B, T, C, F, H, W), or (B, V, T, C, F, H, W) with V
  spatial views (``ThreeCrop`` at test time);
* ``inputs['audio']``: (B, T, 1, mel, frames), or (B, V, T, 1, mel, frames).

Every view is scored separately; :meth:`predict` pools the V views of each
sample (mean or max of the class probabilities, ``view_reduce``) and stores
one ``(num_classes,)`` probability vector per sample with
``ActionDataSample.set_pred_score``, which :class:`MultiViewAccuracy` (use
``aggregate='mean_score'``) and :class:`MultiLabelMAP` read.  Samples that
are views of the same video (same ``filename``) are pooled again by the
metrics.

Pretrained weights come from an AVBERT pretraining checkpoint (keys
``visual_backbone.*``, ``audio_backbone.*``, ``neck.*`` and the pretraining
heads, which are dropped) through the ``pretrained`` argument, loaded by
:meth:`init_weights` (the Runner calls it before training; testing loads the
fine-tuned checkpoint instead).  :func:`load_encoder_checkpoint` reports
what was loaded, ignored, missing or of the wrong shape, and refuses a
checkpoint that leaves encoder weights missing unless
``strict_pretrained=False``.  mmengine's
``init_cfg=dict(type='Pretrained', checkpoint=...)`` works as well (the key
names match), with mmengine's less detailed report.
"""
import logging
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmaction.structures import ActionDataSample
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from avtoolkit.models.backbones.clip_sequence_encoder import \
    global_average_pool
from avtoolkit.registry import MODELS
from avtoolkit.utils.checkpoint import (allow_mmengine_checkpoint_globals,
                                        load_checkpoint_file)

from .avbert_encoder import AVBERTEncoder

MODALITY_SETTINGS = {
    'visual': ('video', ),
    'audio': ('audio', ),
    'multimodal': ('video', 'audio'),
}
# Pooled feature of each setting when ``feature`` is not given: the summary
# (BOS) output of the Transformer(s) the setting uses.  V: BOS of the visual
# Transformer g_V; A: BOS of g_A; M: the two BOS outputs of the multimodal
# Transformer h_AV, concatenated (2D).
DEFAULT_FEATURES = {
    'visual': ('y_summary', ),
    'audio': ('y_summary', ),
    'multimodal': ('z_summary', ),
}
VIEW_REDUCTIONS = ('mean', 'max')


def _pool_features(out, name: str) -> Tensor:
    # Imported on use: avtoolkit.evaluation imports avtoolkit.models.
    from avtoolkit.evaluation.features import pool_features
    return pool_features(out, name)


def _feature_names() -> Tuple[str, ...]:
    from avtoolkit.evaluation.features import FEATURES
    return FEATURES


_Z_FEATURES = ('z_summary', 'z_mean')
_Y_FEATURES = ('y_summary', 'y_mean')


# ------------------------------------------------------------ weight loading
@dataclass
class LoadReport:
    """What :func:`load_encoder_checkpoint` did with each key."""
    filename: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    shape_mismatch: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)

    def summary(self) -> str:
        def show(keys: List[str], limit: int = 8) -> str:
            shown = ', '.join(keys[:limit])
            more = f' (+{len(keys) - limit} more)' if len(keys) > limit else ''
            return shown + more

        lines = [f'pretrained weights from {self.filename}: '
                 f'{len(self.loaded)} tensors loaded']
        for name, keys in (('missing (left at their initial values)',
                            self.missing),
                           ('shape mismatch (not loaded)',
                            self.shape_mismatch),
                           ('unexpected under a mapped prefix (not loaded)',
                            self.unexpected),
                           ('ignored (pretraining heads, unused modules)',
                            self.ignored)):
            if keys:
                lines.append(f'  {name}: {len(keys)}: {show(keys)}')
        return '\n'.join(lines)


def read_state_dict(filename: str) -> 'OrderedDict[str, Tensor]':
    """The state dict of a checkpoint file (mmengine's ``{'state_dict':
    ...}``, PySlowFast's ``model_state`` or a bare state dict), with a
    ``module.`` prefix of wrapped models removed.  Loaded with
    ``weights_only=True``."""
    if not isinstance(filename, str) or not filename:
        raise ValueError(f'pretrained must be a checkpoint path, got '
                         f'{filename!r}')
    if not osp.isfile(filename):
        raise FileNotFoundError(f'pretrained checkpoint "{filename}" does not '
                                'exist')
    allow_mmengine_checkpoint_globals()
    ckpt = load_checkpoint_file(filename, map_location='cpu')
    state = ckpt
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model_state', 'model_state_dict'):
            if isinstance(ckpt.get(key), dict):
                state = ckpt[key]
                break
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f'{filename} holds no state dict of tensors (looked '
                         'for "state_dict", "model_state", '
                         '"model_state_dict" or a bare state dict)')
    out = OrderedDict()
    for key, value in state.items():
        out[key[len('module.'):] if key.startswith('module.') else key] = \
            value
    return out


def load_encoder_checkpoint(module: nn.Module,
                            filename: str,
                            prefix_map: Dict[str, str],
                            strict: bool = True,
                            logger: str = 'current') -> LoadReport:
    """Load the tensors of a checkpoint whose names start with a mapped prefix.

    Args:
        module: the model to fill.
        filename: checkpoint path (see :func:`read_state_dict`).
        prefix_map: checkpoint prefix -> module prefix, e.g.
            ``{'visual_backbone.cnn.': 'cnn.'}``.  Checkpoint keys under no
            mapped prefix are ignored (reported); module keys under a mapped
            module prefix must all be found.
        strict: raise if module keys under a mapped prefix are missing or
            have another shape.
        logger: mmengine logger name for the report.

    Returns:
        :class:`LoadReport`.
    """
    if not prefix_map:
        raise ValueError('prefix_map must name at least one prefix')
    state = read_state_dict(filename)
    own = module.state_dict()
    report = LoadReport(filename=filename)
    to_load = OrderedDict()
    mismatched = set()
    for key, value in state.items():
        target = None
        for src, dst in prefix_map.items():
            if key.startswith(src):
                target = dst + key[len(src):]
                break
        if target is None:
            report.ignored.append(key)
        elif target not in own:
            report.unexpected.append(key)
        elif tuple(own[target].shape) != tuple(value.shape):
            mismatched.add(target)
            report.shape_mismatch.append(
                f'{target} (checkpoint {tuple(value.shape)}, model '
                f'{tuple(own[target].shape)})')
        else:
            to_load[target] = value
            report.loaded.append(target)
    wanted = tuple(prefix_map.values())
    report.missing = [k for k in own if k.startswith(wanted)
                      and k not in to_load and k not in mismatched]
    if strict and (report.missing or report.shape_mismatch):
        raise RuntimeError(
            'the pretrained checkpoint does not fit the model (pass '
            'strict_pretrained=False to load it anyway):\n' + report.summary())
    if not to_load:
        raise RuntimeError('nothing was loaded from the pretrained '
                           f'checkpoint:\n{report.summary()}')
    module.load_state_dict(to_load, strict=False)
    level = logging.WARNING if (report.missing or report.shape_mismatch
                                or report.unexpected) else logging.INFO
    print_log(report.summary(), logger=logger, level=level)
    return report


def apply_pretrained_option(cfg) -> None:
    """Copy a config's top-level ``pretrained`` into ``cfg.model``.

    Configs of the fine-tuning protocols declare ``pretrained = None`` at the
    top level, so that ``--cfg-options pretrained=PATH`` selects the
    pretraining checkpoint.  mmengine does not re-evaluate ``model`` after
    such an override; this function (called by the training entry point
    after ``--cfg-options`` are merged) forwards the value.  A different,
    non-empty ``model.pretrained`` is a conflict and raises ``ValueError``.
    """
    top = cfg.get('pretrained')
    model = cfg.get('model')
    if top is None or model is None:
        return
    current = model.get('pretrained')
    if current not in (None, top):
        raise ValueError(f'pretrained={top!r} and model.pretrained='
                         f'{current!r} disagree; set only one of them')
    model['pretrained'] = top


# ------------------------------------------------------------------ helpers
def _build_head(head: dict, in_channels: int, num_classes: int) -> nn.Module:
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


class _ClassifierMixin:
    """Labels, losses and prediction packing shared by the two models."""

    num_classes: int
    multi_label: bool
    view_reduce: str
    label_smoothing: float

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


def _flatten_views(name: str, x: Tensor, base_ndim: int) -> Tuple[Tensor,
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


# ----------------------------------------------------------- whole model
@MODELS.register_module()
class AVClassifier(_ClassifierMixin, AVBERTEncoder):
    """AVBERT encoder + MLP classifier (Kinetics-Sounds, Charades).

    Settings (``modality``):

    * ``'visual'`` (V): visual CNN + visual Transformer; the audio backbone is
      not built and ``inputs['audio']`` is ignored (may be absent);
    * ``'audio'`` (A): audio CNN + audio Transformer, ``inputs['video']``
      ignored;
    * ``'multimodal'`` (M): both CNNs and all three Transformers.

    The mask embeddings of the neck (``*.mask_token``) serve masked
    pretraining only; no clip is masked here, so they are frozen
    (``requires_grad=False``) and every other parameter of the M setting gets
    a gradient.  In the V and A settings the other modality's embeddings get
    none, nor, with the default features, do the multimodal embeddings (with
    mid fusion the neck runs its multimodal Transformer on the one present
    modality), so distributed training of V/A needs
    ``find_unused_parameters = True`` (set by the V/A configs).

    Pooled feature (``feature``, names of
    :func:`avtoolkit.evaluation.features.pool_features`, concatenated in the
    given order): default ``'y_summary'`` for V and A (BOS output of the
    unimodal Transformer, D channels) and ``'z_summary'`` for M (the visual
    and audio BOS outputs of the multimodal Transformer, 2D channels).  Each
    name contributes D channels per modality of the setting.

    Shapes: video (B, [V,] T, C, F, H, W), audio (B, [V,] T, 1, mel, frames)
    -> encoder outputs (B*V, T(+1), D) -> feature (B*V, C_feat) -> logits
    (B*V, num_classes) -> pooled scores (B, num_classes).

    Args:
        neck: ``SharedLowRankTransformer`` config (as in pretraining).
        num_classes: number of classes.
        visual_backbone, audio_backbone: clip encoders (as in pretraining);
            the one a setting does not use may be None and is dropped.
        modality: ``'visual'``, ``'audio'`` or ``'multimodal'``.
        feature: a feature name or a list of names (see above); None for the
            setting's default.
        head: config of the classifier (default ``MLPClsHead`` with two GELU
            hidden layers of width D and dropout 0.1); ``in_channels`` and
            ``num_classes`` are filled in.
        multi_label: sigmoid + binary cross-entropy per class (Charades)
            instead of softmax + cross-entropy.
        view_reduce: ``'mean'`` (Kinetics-Sounds) or ``'max'`` (Charades)
            pooling of the view probabilities in :meth:`predict`.
        label_smoothing: of the single-label cross-entropy.
        pretrained: AVBERT checkpoint to start from (None: random weights).
        pretrained_prefix: prefix of the encoder keys in that checkpoint
            (``''`` for our checkpoints).
        strict_pretrained: raise if encoder weights are missing from it.
        data_preprocessor, init_cfg: as :class:`AVBERTEncoder`.
    """

    def __init__(self,
                 neck: dict,
                 num_classes: int,
                 visual_backbone: Optional[dict] = None,
                 audio_backbone: Optional[dict] = None,
                 modality: str = 'multimodal',
                 feature: Union[None, str, Sequence[str]] = None,
                 head: Optional[dict] = None,
                 multi_label: bool = False,
                 view_reduce: str = 'mean',
                 label_smoothing: float = 0.0,
                 pretrained: Optional[str] = None,
                 pretrained_prefix: str = '',
                 strict_pretrained: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if modality not in MODALITY_SETTINGS:
            raise ValueError(f'modality must be one of '
                             f'{tuple(MODALITY_SETTINGS)}, got {modality!r}')
        inputs = MODALITY_SETTINGS[modality]
        if 'video' in inputs and visual_backbone is None:
            raise ValueError(f'the {modality} setting needs visual_backbone')
        if 'audio' in inputs and audio_backbone is None:
            raise ValueError(f'the {modality} setting needs audio_backbone')
        super().__init__(
            neck=neck,
            visual_backbone=visual_backbone if 'video' in inputs else None,
            audio_backbone=audio_backbone if 'audio' in inputs else None,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self._check_common(num_classes, multi_label, view_reduce,
                           label_smoothing)
        self.modality = modality
        self.input_keys = inputs

        if feature is None:
            features = DEFAULT_FEATURES[modality]
        elif isinstance(feature, str):
            features = (feature, )
        else:
            features = tuple(feature)
        if not features:
            raise ValueError('feature must name at least one feature')
        unknown = [f for f in features if f not in _feature_names()]
        if unknown:
            raise ValueError(f'unknown features {unknown}; choose from '
                             f'{_feature_names()}')
        fusion = self.neck.fusion
        if fusion == 'early' and modality != 'multimodal':
            raise ValueError('an early-fusion neck needs both modalities; '
                             'use modality="multimodal"')
        if fusion == 'early' and any(f in _Y_FEATURES for f in features):
            raise ValueError('an early-fusion neck has no unimodal '
                             'Transformer outputs (y_*)')
        if fusion == 'late' and any(f in _Z_FEATURES for f in features):
            raise ValueError('a late-fusion neck has no multimodal '
                             'Transformer output (z_*)')
        self.features = features
        self.feat_dim = self.embed_dim * len(inputs) * len(features)
        head = dict(type='MLPClsHead', hidden_channels=self.embed_dim,
                    num_layers=2, act='gelu', dropout=0.1) if head is None \
            else head
        self.head = _build_head(head, self.feat_dim, self.num_classes)

        self.pretrained = pretrained
        self.pretrained_prefix = pretrained_prefix or ''
        self.strict_pretrained = strict_pretrained
        for name, param in self.neck.named_parameters():
            if name.rsplit('.', 1)[-1] == 'mask_token':
                param.requires_grad_(False)

    # ------------------------------------------------------------ weights
    @property
    def encoder_prefixes(self) -> Tuple[str, ...]:
        """Module prefixes filled from a pretraining checkpoint."""
        names = [name for name, module in (
            ('visual_backbone.', self.visual_backbone),
            ('audio_backbone.', self.audio_backbone)) if module is not None]
        return tuple(names) + ('neck.', )

    def load_pretrained(self, filename: str,
                        strict: Optional[bool] = None) -> LoadReport:
        """Load the encoder of an AVBERT checkpoint (heads dropped)."""
        prefix_map = {self.pretrained_prefix + p: p
                      for p in self.encoder_prefixes}
        return load_encoder_checkpoint(
            self, filename, prefix_map,
            strict=self.strict_pretrained if strict is None else strict)

    def init_weights(self) -> None:
        """Random initialisation, then the ``pretrained`` encoder if set."""
        super().init_weights()
        if self.pretrained:
            self.load_pretrained(self.pretrained)
        elif not self.init_cfg:
            print_log('AVClassifier: no pretrained checkpoint; the encoder '
                      'starts from random weights', logger='current')

    # ------------------------------------------------------------ forward
    def _encode_views(self, inputs: Dict[str, Tensor]) -> Tuple[Tensor, int]:
        """(B*V, num_classes) logits and B."""
        missing = [k for k in self.input_keys if k not in inputs]
        if missing:
            raise ValueError(f'the {self.modality} setting needs inputs '
                             f'{missing}; got {sorted(inputs)}')
        video = audio = None
        views = {}
        batch = None
        if 'video' in self.input_keys:
            video, views['video'] = _flatten_views('video', inputs['video'], 6)
            batch = inputs['video'].shape[0]
        if 'audio' in self.input_keys:
            audio, views['audio'] = _flatten_views('audio', inputs['audio'], 5)
            if batch is not None and inputs['audio'].shape[0] != batch:
                raise ValueError('video and audio batch sizes differ: '
                                 f'{batch} and {inputs["audio"].shape[0]}')
            batch = inputs['audio'].shape[0]
        num_views = max(views.values())
        if video is not None and audio is not None and \
                views['video'] != views['audio']:
            # The spatial views of a video share its one soundtrack.
            if views['audio'] == 1:
                audio = audio.repeat_interleave(num_views, dim=0)
            elif views['video'] == 1:
                video = video.repeat_interleave(num_views, dim=0)
            else:
                raise ValueError(f'{views["video"]} video views and '
                                 f'{views["audio"]} audio views')
        out = self.extract_feat(video, audio)
        feats = torch.cat([_pool_features(out, f) for f in self.features],
                          dim=1)
        return self.head(feats), batch

    @staticmethod
    def _no_masks(mask, padding_mask) -> None:
        if mask is not None or padding_mask is not None:
            raise ValueError('the downstream classifiers take complete, '
                             'fixed-length clip sequences (no mask or '
                             'padding_mask)')

    def loss(self, inputs: Dict[str, Tensor], data_samples=None,
             mask: Optional[Tensor] = None,
             padding_mask: Optional[Tensor] = None,
             **kwargs) -> Dict[str, Tensor]:
        """``loss_cls`` (cross-entropy or binary cross-entropy) and, for
        single-label data, the training ``acc_top1`` (not summed)."""
        self._no_masks(mask, padding_mask)
        logits, batch = self._encode_views(inputs)
        targets = self._targets(data_samples, logits.device)
        return self._classification_loss(logits, targets,
                                         logits.shape[0] // batch)

    def predict(self, inputs: Dict[str, Tensor], data_samples=None,
                mask: Optional[Tensor] = None,
                padding_mask: Optional[Tensor] = None, **kwargs) -> list:
        """Data samples with ``pred_score`` (class probabilities pooled over
        the views) and, single-label, ``pred_label``."""
        self._no_masks(mask, padding_mask)
        logits, batch = self._encode_views(inputs)
        return self._pack(self._scores(logits, batch), data_samples)


# ------------------------------------------------------------- CNN only
@MODELS.register_module()
class VisualClassifier(_ClassifierMixin, BaseModel):
    """Visual CNN + linear classifier, fine-tuned end to end (UCF101).

    Every clip (and spatial view) is classified on its own from the globally
    average-pooled CNN feature map; :meth:`predict` averages the class
    probabilities of all V x T views of a sample (10 clips x 3 crops in the
    paper's test protocol), :meth:`loss` applies the cross-entropy to every
    clip with its video's label.

    Why not mmaction2's ``Recognizer3D``: its SlowFast backbone could be
    reused as is (it is the ``cnn`` here), but mmaction2 1.1 gives
    recognizers no ``init_cfg`` and ``ResNet3dSlowFast.init_weights`` ignores
    its own, so the only way to start it from our pretraining checkpoint is
    its ``pretrained`` argument, which loads a file *strictly* and without
    renaming keys.  That needs a separate conversion of every checkpoint
    (``tools/convert/to_mmaction.py --prefix ''``) before fine-tuning, and
    ``Recognizer3D`` expects mmaction's flat (B*views, C, F, H, W) batches
    instead of the clip-sequence layout of our pipelines.  This model loads
    the ``visual_backbone.cnn.*`` tensors of a pretraining checkpoint directly
    (``pretrained``), reports missing keys, and reads the same batches as
    :class:`AVClassifier`.

    Shapes: video (B, [V,] T, C, F, H, W) -> B*V*T clips (C, F, H, W) -> CNN
    -> pooled (B*V*T, in_channels) -> logits (B*V*T, num_classes) -> scores
    (B, num_classes).

    Args:
        backbone: config of the per-clip CNN (e.g. ``ResNet3dSlowFast``); it
            maps (N, C, F, H, W) to a feature map or a tuple of them.
        num_classes: number of classes.
        in_channels: channels after global pooling (2304 for SlowFast-R50).
        head: classifier config (default ``MLPClsHead`` with no hidden layer
            and dropout 0.5 on its input: a linear classifier).
        multi_label, view_reduce, label_smoothing: as :class:`AVClassifier`.
        clip_chunk_size: at most this many clips per CNN call (bounds memory
            of the 30-view test; BatchNorm in training then sees chunks).
        pretrained: AVBERT checkpoint (None: random weights).
        pretrained_prefix: prefix of the CNN keys in that checkpoint.
        strict_pretrained: raise if CNN weights are missing from it.
        data_preprocessor: default ``AVDataPreprocessor``.
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 backbone: dict,
                 num_classes: int,
                 in_channels: int,
                 head: Optional[dict] = None,
                 multi_label: bool = False,
                 view_reduce: str = 'mean',
                 label_smoothing: float = 0.0,
                 clip_chunk_size: Optional[int] = None,
                 pretrained: Optional[str] = None,
                 pretrained_prefix: str = 'visual_backbone.cnn.',
                 strict_pretrained: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor
            or dict(type='AVDataPreprocessor'),
            init_cfg=init_cfg)
        self._check_common(num_classes, multi_label, view_reduce,
                           label_smoothing)
        if not isinstance(backbone, dict):
            raise TypeError('backbone must be a config dict, got '
                            f'{type(backbone).__name__}')
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) \
                or in_channels < 1:
            raise ValueError(f'in_channels must be a positive int, got '
                             f'{in_channels!r}')
        if clip_chunk_size is not None and (
                not isinstance(clip_chunk_size, int) or clip_chunk_size < 1):
            raise ValueError('clip_chunk_size must be None or a positive int, '
                             f'got {clip_chunk_size!r}')
        self.cnn = MODELS.build(backbone)
        self.in_channels = in_channels
        self.clip_chunk_size = clip_chunk_size
        head = dict(type='MLPClsHead', num_layers=0, dropout=0.5) \
            if head is None else head
        self.head = _build_head(head, in_channels, self.num_classes)
        self.pretrained = pretrained
        self.pretrained_prefix = pretrained_prefix
        self.strict_pretrained = strict_pretrained

    def load_pretrained(self, filename: str,
                        strict: Optional[bool] = None) -> LoadReport:
        """Load the visual CNN of an AVBERT checkpoint."""
        return load_encoder_checkpoint(
            self, filename, {self.pretrained_prefix: 'cnn.'},
            strict=self.strict_pretrained if strict is None else strict)

    def init_weights(self) -> None:
        """Random initialisation, then the ``pretrained`` CNN if set."""
        super().init_weights()
        if self.pretrained:
            self.load_pretrained(self.pretrained)
        elif not self.init_cfg:
            print_log('VisualClassifier: no pretrained checkpoint; the CNN '
                      'starts from random weights', logger='current')

    def _clip_features(self, clips: Tensor) -> Tensor:
        """(N, C, F, H, W) -> (N, in_channels)."""
        size = self.clip_chunk_size or clips.shape[0]
        feats = [global_average_pool(self.cnn(chunk), chunk.shape[0])
                 for chunk in clips.split(size)]
        feats = torch.cat(feats)
        if feats.shape[1] != self.in_channels:
            raise ValueError(f'the CNN gives {feats.shape[1]} channels after '
                             f'pooling, but in_channels is {self.in_channels}')
        return feats

    def _logits(self, inputs: Dict[str, Tensor]) -> Tuple[Tensor, int]:
        if not isinstance(inputs, dict) or set(inputs) != {'video'}:
            got = sorted(inputs) if isinstance(inputs, dict) else \
                type(inputs).__name__
            raise ValueError('VisualClassifier reads inputs["video"] only, '
                             f'got {got}; decode video alone '
                             "(AVInit(modalities=('video',)))")
        video, _ = _flatten_views('video', inputs['video'], 6)
        batch = inputs['video'].shape[0]
        clips = video.flatten(0, 1)                      # (B*V*T, C, F, H, W)
        return self.head(self._clip_features(clips)), batch

    def forward(self, inputs: Dict[str, Tensor], data_samples=None,
                mode: str = 'tensor'):
        """``'tensor'``: (B*V*T, num_classes) logits; ``'loss'``,
        ``'predict'``: as :class:`AVClassifier`."""
        if mode == 'tensor':
            return self._logits(inputs)[0]
        if mode == 'loss':
            logits, batch = self._logits(inputs)
            targets = self._targets(data_samples, logits.device)
            return self._classification_loss(logits, targets,
                                             logits.shape[0] // batch)
        if mode == 'predict':
            logits, batch = self._logits(inputs)
            return self._pack(self._scores(logits, batch), data_samples)
        raise ValueError(f'invalid mode {mode!r}; expected "tensor", "loss" '
                         'or "predict"')
