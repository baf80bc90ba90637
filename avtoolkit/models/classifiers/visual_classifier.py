"""The visual CNN alone with a linear classifier, fine-tuned end to end
(the UCF101 protocol, paper Table 2(a))."""
from typing import Dict, Optional, Tuple

import torch
from mmengine.model import BaseModel
from torch import Tensor

from avtoolkit.models.backbones.clip_sequence_encoder import \
    global_average_pool
from avtoolkit.registry import MODELS

from .base import ClassifierMixin, build_head, flatten_views


@MODELS.register_module()
class VisualClassifier(ClassifierMixin, BaseModel):
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
        self.head = build_head(head, in_channels, self.num_classes)
        self.pretrained = pretrained
        self.pretrained_prefix = pretrained_prefix
        self.strict_pretrained = strict_pretrained

    pretrained_part = 'CNN'

    def pretrained_prefix_map(self) -> Dict[str, str]:
        """The visual CNN of an AVBERT checkpoint."""
        return {self.pretrained_prefix: 'cnn.'}

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
        video, _ = flatten_views('video', inputs['video'], 6)
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
