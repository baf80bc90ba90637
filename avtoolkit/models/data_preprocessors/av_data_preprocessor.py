"""Batch preparation for audio-visual models."""
from typing import Dict, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from avtoolkit.registry import MODELS


@MODELS.register_module()
class AVDataPreprocessor(BaseDataPreprocessor):
    """Stack, move and normalise the ``inputs`` dict of a batch.

    Accepts what ``pseudo_collate`` (lists of per-sample tensors) or
    ``default_collate`` (stacked tensors) make of ``PackAVInputs`` samples:
    ``inputs = {'video': (T, C, F, H, W) per sample, 'audio': (T, 1, mel,
    frames) per sample}`` (multi-view video: (V, T, C, F, H, W)).  Returns
    ``{'inputs': {'video': (B, ...), 'audio': (B, ...)}, 'data_samples': ...}``
    as float tensors on the model's device.

    Normalising here rather than in the data workers lets the pipeline ship
    uint8 frames (4x less host memory and transfer) and normalise on the
    device.  Leave the statistics ``None`` when the pipeline already
    normalised.

    Args:
        video_mean, video_std: per-channel statistics (C values), applied on
            the channel axis (``-4`` of ``(..., C, F, H, W)``).
        audio_mean, audio_std: scalars for the log-mel values.
    """

    def __init__(self,
                 video_mean: Optional[Sequence[float]] = None,
                 video_std: Optional[Sequence[float]] = None,
                 audio_mean: Optional[float] = None,
                 audio_std: Optional[float] = None,
                 non_blocking: bool = True):
        super().__init__(non_blocking=non_blocking)
        if (video_mean is None) != (video_std is None) or \
                (audio_mean is None) != (audio_std is None):
            raise ValueError('give both mean and std of a modality, or '
                             'neither')
        self._video_norm = video_mean is not None
        if self._video_norm:
            self.register_buffer(
                'video_mean', torch.tensor(video_mean).view(-1, 1, 1, 1),
                persistent=False)
            self.register_buffer(
                'video_std', torch.tensor(video_std).view(-1, 1, 1, 1),
                persistent=False)
        self.audio_mean, self.audio_std = audio_mean, audio_std

    @staticmethod
    def _stack(name: str, value) -> Tensor:
        if isinstance(value, Tensor):
            return value
        if not isinstance(value, (list, tuple)) or not value:
            raise TypeError(f'inputs["{name}"] must be a tensor or a '
                            'non-empty list of tensors')
        shapes = {tuple(v.shape) for v in value}
        if len(shapes) != 1:
            raise ValueError(f'inputs["{name}"] holds samples of different '
                             f'shapes {sorted(shapes)}; a batch needs equal '
                             'clip counts and sizes')
        return torch.stack(list(value))

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        if not isinstance(inputs, dict):
            raise TypeError('AVDataPreprocessor expects inputs to be a dict '
                            "{'video': ..., 'audio': ...}")
        out: Dict[str, Tensor] = {}
        for name, value in inputs.items():
            value = self._stack(name, value)
            if not value.is_floating_point():
                value = value.float()
            if name == 'video' and self._video_norm:
                value = (value - self.video_mean) / self.video_std
            elif name == 'audio' and self.audio_mean is not None:
                value = (value - self.audio_mean) / self.audio_std
            out[name] = value
        return dict(inputs=out, data_samples=data.get('data_samples'))
