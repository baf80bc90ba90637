"""AVBERT encoder + MLP classifier: the V, A and M settings of the
Kinetics-Sounds and Charades protocols (paper Sec. 3, Table 2(c)).

Pretrained weights come from an AVBERT pretraining checkpoint (keys
``visual_backbone.*``, ``audio_backbone.*``, ``neck.*``; the pretraining heads
are dropped) through the ``pretrained`` argument, loaded by
:meth:`AVClassifier.init_weights` with
:func:`avtoolkit.checkpoint.load_weights` (the Runner calls it
before training; testing loads the fine-tuned checkpoint instead).
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from avtoolkit.models.algorithms.avbert_encoder import AVBERTEncoder
from avtoolkit.models.structures import POOLED_FEATURES, pool_features
from avtoolkit.registry import MODELS

from .base import ClassifierMixin, build_head, flatten_views

MODALITY_SETTINGS = {
    'visual': ('video', ),
    'audio': ('audio', ),
    'multimodal': ('video', 'audio'),
}
# Pooled feature of each setting when ``feature`` is not given: the summary
# (BOS) output of the Transformer(s) the setting uses.  V: BOS of the visual
# Transformer g_V; A: BOS of g_A; M: the two BOS outputs of the multimodal
# Transformer h_AV, concatenated (2D).
SETTING_FEATURES = {
    'visual': 'y_summary',
    'audio': 'y_summary',
    'multimodal': 'z_summary',
}


@MODELS.register_module()
class AVClassifier(ClassifierMixin, AVBERTEncoder):
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
    :data:`avtoolkit.models.structures.POOLED_FEATURES`, concatenated in the
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
            features = (SETTING_FEATURES[modality], )
        elif isinstance(feature, str):
            features = (feature, )
        else:
            features = tuple(feature)
        if not features:
            raise ValueError('feature must name at least one feature')
        unknown = [f for f in features if f not in POOLED_FEATURES]
        if unknown:
            raise ValueError(f'unknown features {unknown}; choose from '
                             f'{POOLED_FEATURES}')
        fusion = self.neck.fusion
        if fusion == 'early' and modality != 'multimodal':
            raise ValueError('an early-fusion neck needs both modalities; '
                             'use modality="multimodal"')
        if fusion == 'early' and any(f.startswith('y_') for f in features):
            raise ValueError('an early-fusion neck has no unimodal '
                             'Transformer outputs (y_*)')
        if fusion == 'late' and any(f.startswith('z_') for f in features):
            raise ValueError('a late-fusion neck has no multimodal '
                             'Transformer output (z_*)')
        self.features = features
        self.feat_dim = self.embed_dim * len(inputs) * len(features)
        head = dict(type='MLPClsHead', hidden_channels=self.embed_dim,
                    num_layers=2, act='gelu', dropout=0.1) if head is None \
            else head
        self.head = build_head(head, self.feat_dim, self.num_classes)

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

    pretrained_part = 'encoder'

    def pretrained_prefix_map(self) -> Dict[str, str]:
        """The encoder of an AVBERT checkpoint (its heads are dropped)."""
        return {self.pretrained_prefix + p: p for p in self.encoder_prefixes}

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
            video, views['video'] = flatten_views('video', inputs['video'], 6)
            batch = inputs['video'].shape[0]
        if 'audio' in self.input_keys:
            audio, views['audio'] = flatten_views('audio', inputs['audio'], 5)
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
        feats = torch.cat([pool_features(out, f) for f in self.features],
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
