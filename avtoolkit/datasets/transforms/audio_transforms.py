"""Log-mel spectrograms, normalisation and SpecAugment-style masking.

Downmixing and resampling happen while decoding (:class:`AVDecode` asks
swresample for mono audio at the configured rate), so these transforms start
from ``results['audio']``: a (T, N) float32 waveform, one row per clip.

Frame count of the spectrogram
------------------------------
With ``center=True`` torch's STFT gives ``1 + N // hop_length`` frames for N
samples.  At 16 kHz a 1-s clip (N = 16000) with ``hop_length=73`` gives
``1 + 219 = 220`` frames, the paper's T_a.  A 2-s clip gives 439 with the same
hop; T_a = 440 needs N in [32047, 32119], which ``AVDecode(audio_samples=
32047)`` provides (a window 2.9 ms longer than the clip, centred on it).
:func:`frames_for_samples` and :func:`samples_for_frames` do this arithmetic
and :class:`LogMelSpectrogram` checks the result against ``num_frames``.
"""
from typing import Dict, Optional

import numpy as np
import torch
import torchaudio
from mmcv.transforms import BaseTransform

from avtoolkit.registry import TRANSFORMS
from avtoolkit.utils.audio_features import LogMel


def frames_for_samples(num_samples: int, hop_length: int, n_fft: int,
                       center: bool = True) -> int:
    """STFT frames torch gives for ``num_samples`` samples."""
    if center:
        return 1 + num_samples // hop_length
    if num_samples < n_fft:
        return 0
    return 1 + (num_samples - n_fft) // hop_length


def samples_for_frames(num_frames: int, hop_length: int, n_fft: int,
                       center: bool = True) -> int:
    """The smallest sample count that gives ``num_frames`` STFT frames."""
    if center:
        return (num_frames - 1) * hop_length
    return n_fft + (num_frames - 1) * hop_length


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    return torch.from_numpy(np.ascontiguousarray(x))


@TRANSFORMS.register_module()
class LogMelSpectrogram(BaseTransform):
    """``results['audio']``: (T, N) waveform -> (T, 1, n_mels, frames)
    float32 tensor of ``log(mel_power + eps)``.

    The computation is :class:`avtoolkit.utils.audio_features.LogMel`, also
    used by ``AVDataPreprocessor(audio_features=...)`` to compute the same
    features batched on the model's device; the mel filterbank and window
    are built once per instance.

    Args:
        sample_rate: rate of the input waveform; checked against
            ``results['sample_rate']`` when present.
        n_mels: mel bins (128 in the paper).
        n_fft, win_length, hop_length: STFT parameters in samples.  The
            default window is 25 ms at 16 kHz, zero-padded to 1024 points so
            that none of 128 HTK mel filters falls between two FFT bins (with
            512 points the lowest filter would be empty).
        f_min, f_max: mel band edges in Hz (``f_max=None``: Nyquist).
        power: 2.0 for power, 1.0 for magnitude.
        center: pad the signal by ``n_fft // 2`` on both sides (reflect).
        mel_scale, norm: as in ``torchaudio.functional.melscale_fbanks``.
        eps: floor added before the log.
        num_frames: expected frame count per clip (220 for 1 s at 16 kHz
            with hop 73); a waveform giving another count raises
            ``ValueError`` naming the number of samples that would fit.
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 128,
                 n_fft: int = 1024, win_length: int = 400,
                 hop_length: int = 73, f_min: float = 0.0,
                 f_max: Optional[float] = None, power: float = 2.0,
                 center: bool = True, mel_scale: str = 'htk',
                 norm: Optional[str] = None, eps: float = 1e-6,
                 num_frames: Optional[int] = 220):
        self.log_mel = LogMel(sample_rate=sample_rate, n_mels=n_mels,
                              n_fft=n_fft, win_length=win_length,
                              hop_length=hop_length, f_min=f_min,
                              f_max=f_max, power=power, center=center,
                              mel_scale=mel_scale, norm=norm, eps=eps)
        self.sample_rate = self.log_mel.sample_rate
        self.n_mels = self.log_mel.n_mels
        self.n_fft, self.win_length = n_fft, win_length
        self.hop_length = self.log_mel.hop_length
        self.center = center
        self.eps = self.log_mel.eps
        self.num_frames = int(num_frames) if num_frames else None
        self.f_min, self.f_max, self.power = f_min, f_max, self.log_mel.power

    def expected_frames(self, num_samples: int) -> int:
        return frames_for_samples(num_samples, self.hop_length, self.n_fft,
                                  self.center)

    def transform(self, results: Dict) -> Dict:
        rate = results.get('sample_rate')
        if rate is not None and int(rate) != self.sample_rate:
            raise ValueError(f'waveform at {rate} Hz, LogMelSpectrogram '
                             f'configured for {self.sample_rate} Hz')
        wave = _as_tensor(results['audio']).to(torch.float32)
        if wave.ndim != 2:
            raise ValueError('audio must be (num_clips, samples), got shape '
                             f'{tuple(wave.shape)}')
        frames = self.expected_frames(wave.shape[-1])
        if self.num_frames is not None and frames != self.num_frames:
            need = samples_for_frames(self.num_frames, self.hop_length,
                                      self.n_fft, self.center)
            raise ValueError(
                f'{wave.shape[-1]} samples give {frames} frames with hop '
                f'{self.hop_length}, expected {self.num_frames}; decode '
                f'{need} samples per clip (AVDecode(audio_samples={need})) '
                'or change hop_length')
        with torch.no_grad():
            spec = self.log_mel(wave)  # (T, n_mels, frames)
        results['audio'] = spec.unsqueeze(1).contiguous()
        results['audio_shape'] = tuple(results['audio'].shape)
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(sample_rate={self.sample_rate}, '
                f'n_mels={self.n_mels}, n_fft={self.n_fft}, '
                f'win_length={self.win_length}, hop_length={self.hop_length}, '
                f'f_min={self.f_min}, f_max={self.f_max}, power={self.power}, '
                f'center={self.center}, eps={self.eps}, '
                f'num_frames={self.num_frames})')


@TRANSFORMS.register_module()
class AudioNormalize(BaseTransform):
    """``(audio - mean) / std`` on ``results['audio']`` (any shape).

    Args:
        mean, std: scalars (statistics of the log-mel values over a
            training set).  ``mode='per_sample'`` ignores them and uses the
            sample's own mean and standard deviation instead.
        mode: ``'fixed'`` or ``'per_sample'``.
    """

    def __init__(self, mean: float = 0.0, std: float = 1.0,
                 mode: str = 'fixed'):
        if mode not in ('fixed', 'per_sample'):
            raise ValueError(f"mode must be 'fixed' or 'per_sample', got "
                             f'{mode!r}')
        if mode == 'fixed' and std <= 0:
            raise ValueError(f'std must be > 0, got {std}')
        self.mean, self.std, self.mode = float(mean), float(std), mode

    def transform(self, results: Dict) -> Dict:
        x = _as_tensor(results['audio']).to(torch.float32)
        if self.mode == 'fixed':
            x = (x - self.mean) / self.std
        else:
            x = (x - x.mean()) / x.std().clamp_min(1e-5)
        results['audio'] = x
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(mean={self.mean}, std={self.std}, '
                f'mode={self.mode})')


@TRANSFORMS.register_module()
class AudioMask(BaseTransform):
    """SpecAugment-style frequency and time masks on (T, 1, F, N) log-mels.

    Every clip gets its own masks (torchaudio's masking with
    ``iid_masks=True``).  Masked values are set to ``mask_value`` (0 is the
    mean after :class:`AudioNormalize`, so put this transform after it).

    Args:
        freq_mask_param: maximum width of a frequency mask (bins).
        time_mask_param: maximum width of a time mask (frames).
        num_freq_masks, num_time_masks: masks of each kind per clip.
        prob: probability that a sample is masked at all.
        mask_value: value written into the masks.
    """

    def __init__(self, freq_mask_param: int = 24, time_mask_param: int = 40,
                 num_freq_masks: int = 2, num_time_masks: int = 2,
                 prob: float = 1.0, mask_value: float = 0.0):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.freq = torchaudio.transforms.FrequencyMasking(
            freq_mask_param, iid_masks=True)
        self.time = torchaudio.transforms.TimeMasking(
            time_mask_param, iid_masks=True)
        self.freq_mask_param, self.time_mask_param = freq_mask_param, \
            time_mask_param
        self.num_freq_masks = int(num_freq_masks)
        self.num_time_masks = int(num_time_masks)
        self.prob = float(prob)
        self.mask_value = float(mask_value)

    def transform(self, results: Dict) -> Dict:
        x = _as_tensor(results['audio'])
        if x.ndim != 4:
            raise ValueError('AudioMask expects (T, 1, n_mels, frames), got '
                             f'{tuple(x.shape)}')
        masked = False
        if self.prob > 0 and np.random.rand() < self.prob:
            for _ in range(self.num_freq_masks):
                x = self.freq(x, self.mask_value)
            for _ in range(self.num_time_masks):
                x = self.time(x, self.mask_value)
            masked = True
        results['audio'] = x
        results['audio_masked'] = masked
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}('
                f'freq_mask_param={self.freq_mask_param}, '
                f'time_mask_param={self.time_mask_param}, '
                f'num_freq_masks={self.num_freq_masks}, '
                f'num_time_masks={self.num_time_masks}, prob={self.prob})')
