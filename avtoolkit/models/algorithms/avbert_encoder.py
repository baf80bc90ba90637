"""CNNs + Transformers of AVBERT, without any training objective.

:class:`AVBERTEncoder` maps a batch of clip sequences to the embeddings of
every stage (:class:`~avtoolkit.models.structures.AVOutputs`):

* ``inputs['video']``: (B, T, C, F, H, W), T clips of F frames each;
* ``inputs['audio']``: (B, T, 1, mel, frames), the T matching log-mel clips.

Each backbone is a registered module that maps (B, T, *clip_shape) to
(B, T, D) (e.g. ``ClipSequenceEncoder``); the neck is a
:class:`~avtoolkit.models.necks.SharedLowRankTransformer`.  Pretraining heads
and losses belong to subclasses, which override :meth:`AVBERTEncoder.loss`;
the fine-tuning classifiers (``avtoolkit.models.classifiers``) add
:meth:`predict`.
"""
from typing import Dict, List, Optional

from mmengine.model import BaseModel
from torch import Tensor

from avtoolkit.models.structures import AVOutputs
from avtoolkit.registry import MODELS

INPUT_KEYS = ('video', 'audio')


@MODELS.register_module()
class AVBERTEncoder(BaseModel):
    """Visual CNN, audio CNN and the AVBERT Transformers.

    Args:
        neck: config of the Transformers (``SharedLowRankTransformer``).
        visual_backbone: config of the module mapping (B, T, C, F, H, W) to
            (B, T, D), or None for a model without a visual stream.
        audio_backbone: config of the module mapping (B, T, 1, mel, frames)
            to (B, T, D), or None for a model without an audio stream.
        data_preprocessor: mmengine data preprocessor config (default
            ``BaseDataPreprocessor``, which only moves data to the device).
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 neck: dict,
                 visual_backbone: Optional[dict] = None,
                 audio_backbone: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if visual_backbone is None and audio_backbone is None:
            raise ValueError('AVBERTEncoder needs at least one of '
                             'visual_backbone and audio_backbone')
        if neck is None:
            raise ValueError('AVBERTEncoder needs a neck config')
        self.visual_backbone = (MODELS.build(visual_backbone)
                                if visual_backbone is not None else None)
        self.audio_backbone = (MODELS.build(audio_backbone)
                               if audio_backbone is not None else None)
        self.neck = MODELS.build(neck)

    @property
    def embed_dim(self) -> int:
        return self.neck.embed_dim

    def _encode(self, name: str, backbone, clips: Tensor) -> Tensor:
        if backbone is None:
            raise ValueError(f'{name} input given but the model has no '
                             f'{name} backbone')
        if not isinstance(clips, Tensor):
            raise TypeError(f'{name} input must be a tensor, got '
                            f'{type(clips).__name__}')
        if clips.dim() < 3:
            raise ValueError(f'{name} input must be (B, T, *clip_shape), got '
                             f'shape {tuple(clips.shape)}')
        feats = backbone(clips)
        expected = (clips.shape[0], clips.shape[1], self.embed_dim)
        if not isinstance(feats, Tensor) or tuple(feats.shape) != expected:
            got = tuple(feats.shape) if isinstance(feats, Tensor) else \
                type(feats).__name__
            raise ValueError(f'the {name} backbone must return (B, T, D) = '
                             f'{expected}, got {got}')
        return feats

    def extract_feat(self,
                     video: Optional[Tensor] = None,
                     audio: Optional[Tensor] = None,
                     mask: Optional[Tensor] = None,
                     padding_mask: Optional[Tensor] = None) -> AVOutputs:
        """Embeddings of every stage.

        Args:
            video: (B, T, C, F, H, W) clips, or None (audio only).
            audio: (B, T, 1, mel, frames) clips, or None (visual only).
            mask: (B, T) bool, True at clips whose CNN embedding is replaced by
                the mask embedding before the Transformers (both modalities).
            padding_mask: (B, T) bool, True at padding clips.

        Returns:
            :class:`AVOutputs`; ``x_v``/``x_a`` are the unmasked CNN
            embeddings (B, T, D).
        """
        if video is None and audio is None:
            raise ValueError('extract_feat needs video, audio or both')
        x_v = self._encode('video', self.visual_backbone, video) \
            if video is not None else None
        x_a = self._encode('audio', self.audio_backbone, audio) \
            if audio is not None else None
        return self.neck(x_v, x_a, mask=mask, padding_mask=padding_mask)

    @staticmethod
    def _check_inputs(inputs) -> Dict[str, Tensor]:
        if not isinstance(inputs, dict):
            raise TypeError('inputs must be a dict with keys among '
                            f'{INPUT_KEYS}, got {type(inputs).__name__}')
        unknown = sorted(set(inputs) - set(INPUT_KEYS))
        if unknown:
            raise ValueError(f'unknown input keys {unknown}; expected keys '
                             f'among {INPUT_KEYS}')
        return inputs

    def forward(self,
                inputs: Dict[str, Tensor],
                data_samples: Optional[List] = None,
                mode: str = 'tensor',
                mask: Optional[Tensor] = None,
                padding_mask: Optional[Tensor] = None):
        """mmengine entry point.

        Args:
            inputs: ``{'video': (B, T, C, F, H, W), 'audio': (B, T, 1, mel,
                frames)}``, either key may be absent.
            data_samples: per-sample annotations (unused by the encoder).
            mode: ``'tensor'`` returns :class:`AVOutputs`; ``'loss'`` and
                ``'predict'`` call :meth:`loss` / :meth:`predict`.
            mask: (B, T) bool, clips to mask (True = masked).
            padding_mask: (B, T) bool, padding clips (True = padding).
        """
        inputs = self._check_inputs(inputs)
        if mode == 'tensor':
            return self.extract_feat(
                inputs.get('video'), inputs.get('audio'), mask=mask,
                padding_mask=padding_mask)
        if mode == 'loss':
            return self.loss(inputs, data_samples, mask=mask,
                             padding_mask=padding_mask)
        if mode == 'predict':
            return self.predict(inputs, data_samples, mask=mask,
                                padding_mask=padding_mask)
        raise ValueError(f'invalid mode {mode!r}; expected "tensor", "loss" '
                         'or "predict"')

    def loss(self, inputs: Dict[str, Tensor], data_samples=None, **kwargs):
        """The encoder has no objective; see the ``AVBERT`` algorithm."""
        raise ValueError(
            'AVBERTEncoder has no training objective, so mode="loss" is not '
            'available; use the AVBERT algorithm (a subclass with the '
            'pretraining heads) or call it with mode="tensor"')

    def predict(self, inputs: Dict[str, Tensor], data_samples=None,
                **kwargs):
        """Pretraining models predict nothing; see the fine-tuning
        classifiers."""
        raise ValueError(
            f'{type(self).__name__} has no prediction head, so '
            'mode="predict" is not available: predictions come from the '
            'fine-tuning classifiers (AVClassifier, VisualClassifier); call '
            'this model with mode="tensor" for its features')
