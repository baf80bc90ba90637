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

    Log-mel on the device: with ``audio_features`` set, the pipeline ships
    the mono waveform of each clip instead (``inputs['audio']`` (T, N) per
    sample: ``AVDecode`` then ``PackAVInputs``, without
    ``LogMelSpectrogram`` / ``AudioNormalize``), and the log-mel
    spectrograms are computed here, batched over the B*T clips, with the
    same code as ``LogMelSpectrogram``
    (:class:`avtoolkit.utils.audio_features.LogMel`): (B, T, N) ->
    (B, T, 1, n_mels, frames), then normalised with ``audio_mean`` /
    ``audio_std``.  This moves the STFT and the mel projection off the
    data workers' CPUs.

    Args:
        video_mean, video_std: per-channel statistics (C values), applied on
            the channel axis (``-4`` of ``(..., C, F, H, W)``).
        audio_mean, audio_std: scalars for the log-mel values.
        audio_features: arguments of ``LogMelSpectrogram`` (``sample_rate``,
            ``n_mels``, ``n_fft``, ``win_length``, ``hop_length``, ...,
            ``num_frames``) to compute the log-mel here from waveforms;
            ``None`` (default): the pipeline computed it.
    """

    def __init__(self,
                 video_mean: Optional[Sequence[float]] = None,
                 video_std: Optional[Sequence[float]] = None,
                 audio_mean: Optional[float] = None,
                 audio_std: Optional[float] = None,
                 audio_features: Optional[dict] = None,
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
        self.log_mel, self.num_frames = None, None
        if audio_features is not None:
            from avtoolkit.utils.audio_features import LogMel
            args = dict(audio_features)
            args.pop('type', None)
            self.num_frames = args.pop('num_frames', None)
            self.log_mel = LogMel(**args)

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
            if name == 'audio':
                value = self._audio_features(value)
            if name == 'video' and self._video_norm:
                value = (value - self.video_mean) / self.video_std
            elif name == 'audio' and self.audio_mean is not None:
                value = (value - self.audio_mean) / self.audio_std
            out[name] = value
        return dict(inputs=out, data_samples=data.get('data_samples'))

    def _audio_features(self, audio: Tensor) -> Tensor:
        """(B, T, N) waveforms -> (B, T, 1, n_mels, frames) log-mel when
        ``audio_features`` is set; log-mel input passes through."""
        waveform = audio.ndim == 3
        if self.log_mel is None:
            if waveform:
                shape = tuple(audio.shape)
                raise ValueError(
                    f'inputs["audio"] is a batch of waveforms {shape} '
                    "(B, T, N): set the data preprocessor's "
                    'audio_features (the LogMelSpectrogram arguments) to '
                    'compute the log-mel on the device, or add '
                    'LogMelSpectrogram to the pipeline')
            return audio
        if not waveform:
            raise ValueError(
                f'inputs["audio"] has shape {tuple(audio.shape)}, but '
                'AVDataPreprocessor.audio_features computes the log-mel from '
                '(B, T, N) waveforms: remove LogMelSpectrogram and '
                'AudioNormalize from the pipeline, or audio_features from '
                'the data preprocessor')
        feats = self.log_mel(audio).unsqueeze(2)
        if self.num_frames is not None and feats.shape[-1] != self.num_frames:
            raise ValueError(
                f'{audio.shape[-1]} samples give {feats.shape[-1]} log-mel '
                f'frames, audio_features.num_frames is {self.num_frames}: '
                'see LogMelSpectrogram for the samples to decode')
        return feats
