"""The log-mel spectrogram as a torch module, shared by the data pipeline
(:class:`~avtoolkit.datasets.transforms.LogMelSpectrogram`, on the CPU of a
data worker) and :class:`~avtoolkit.models.data_preprocessors.
AVDataPreprocessor` (batched, on the model's device), so that both give the
same values.
"""
from typing import Optional

import torch
import torchaudio
from torch import Tensor, nn


class LogMel(nn.Module):
    """``(..., N)`` float waveform -> ``(..., n_mels, frames)``
    ``log(mel_power + eps)``.

    The complex STFT (reflect padding when ``center``) and the mel
    filterbank are torchaudio's; the power is taken as ``re^2 + im^2``, 3-4x
    faster on the CPU than the ``|z|^2`` torchaudio computes (a square root,
    then a square).  The window and the filterbank are buffers: they move
    with ``.to(device)`` and are not saved in state dicts.  Arguments as in
    :class:`~avtoolkit.datasets.transforms.LogMelSpectrogram`.
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 128,
                 n_fft: int = 1024, win_length: int = 400,
                 hop_length: int = 73, f_min: float = 0.0,
                 f_max: Optional[float] = None, power: float = 2.0,
                 center: bool = True, mel_scale: str = 'htk',
                 norm: Optional[str] = None, eps: float = 1e-6):
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f'win_length {win_length} > n_fft {n_fft}')
        if eps <= 0:
            raise ValueError(f'eps must be > 0, got {eps}')
        if power is None or float(power) <= 0:
            raise ValueError(f'power must be > 0, got {power}')
        self.sample_rate, self.n_mels = int(sample_rate), int(n_mels)
        self.n_fft, self.win_length = int(n_fft), int(win_length)
        self.hop_length, self.center = int(hop_length), bool(center)
        self.f_min, self.f_max = f_min, f_max
        self.power, self.eps = float(power), float(eps)
        self.stft = torchaudio.transforms.Spectrogram(
            n_fft=self.n_fft, win_length=self.win_length,
            hop_length=self.hop_length, power=None, center=self.center,
            pad_mode='reflect')
        self.mel_scale = torchaudio.transforms.MelScale(
            n_mels=self.n_mels, sample_rate=self.sample_rate, f_min=f_min,
            f_max=f_max, n_stft=self.n_fft // 2 + 1, norm=norm,
            mel_scale=mel_scale)
        # The window and the filterbank follow from the arguments: they move
        # with the module but stay out of checkpoints, so that a model
        # computing its log-mel on the device has the state dict of one
        # that gets it from the pipeline.
        for module in (self.stft, self.mel_scale):
            for name, buf in list(module.named_buffers(recurse=False)):
                module.register_buffer(name, buf, persistent=False)

    def _power(self, spec: Tensor) -> Tensor:
        if self.power == 2.0:
            return spec.real.square() + spec.imag.square()
        if self.power == 1.0:
            return spec.abs()
        return spec.abs().pow(self.power)

    def forward(self, wave: Tensor) -> Tensor:
        lead = wave.shape[:-1]
        flat = wave.reshape(-1, wave.shape[-1]).float()
        mel = self.mel_scale(self._power(self.stft(flat)))
        return torch.log(mel + self.eps).reshape(*lead, self.n_mels, -1)
