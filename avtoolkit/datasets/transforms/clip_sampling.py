"""Choosing which clips of a video a sample reads (``AVSampleClips``).

Only times are chosen here; :mod:`.av_decoding` opens the file and decodes
them.
"""
from typing import Dict, Optional

import numpy as np
from mmcv.transforms import BaseTransform

from avtoolkit.registry import TRANSFORMS
from ..bad_input import (META_KEY, BadInputError, adjustment_record,
                         input_name)


@TRANSFORMS.register_module()
class AVSampleClips(BaseTransform):
    """Choose the start times of ``num_clips`` clips of ``clip_duration``.

    Modes:

    * ``'random'``: a sequence of clips ``stride`` seconds apart placed at a
      uniformly random position (pretraining);
    * ``'center'``: the same sequence centred in the video (deterministic
      evaluation of sequence models);
    * ``'uniform'``: clips evenly spaced from the start to the end of the
      video, whatever its length (the 10-clip test protocol of UCF101 and
      ESC-50).

    ``jitter`` (seconds) moves every clip start independently by
    ``U(-jitter, jitter)`` (kept inside the video); audio and video of a clip
    move together (synchronised audio-visual temporal jitter).

    A video shorter than what the clips need is handled by ``short_policy``:
    ``'error'`` raises :class:`BadInputError` (``too_short``; the dataset's
    bad-input policy then skips or raises), ``'loop'`` repeats the video
    (clip times wrap around; ``looped=True`` is recorded, and a ``looped``
    record joins ``results['bad_inputs']``, so that the bad-input report of
    training and evaluation counts the video, see
    :mod:`avtoolkit.datasets.bad_input`).

    Required keys: ``duration``, ``usable_start`` (from :class:`AVInit`).
    Added keys: ``clip_starts`` (T,) float64 seconds, ``clip_duration``,
    ``num_clips`` (T), ``clip_len`` (F, frames per clip; the key mmaction's
    ``FormatShape`` reads), ``frame_times`` (T, F) seconds (the centres of F
    equal slices of each clip), ``loop_period`` (None or the wrap length).

    Args:
        num_clips: T.
        clip_duration: seconds per clip.
        frames_per_clip: F (0 for audio-only pipelines).
        mode: ``'random'``, ``'center'`` or ``'uniform'``.
        stride: seconds between consecutive clip starts in the random and
            centre modes (default: ``clip_duration``, back-to-back clips).
        jitter: seconds of synchronised per-clip jitter.
        short_policy: ``'error'`` or ``'loop'``.
    """

    MODES = ('random', 'center', 'uniform')

    def __init__(self, num_clips: int = 30, clip_duration: float = 1.0,
                 frames_per_clip: int = 32, mode: str = 'random',
                 stride: Optional[float] = None, jitter: float = 0.0,
                 short_policy: str = 'error'):
        if mode not in self.MODES:
            raise ValueError(f'mode must be one of {self.MODES}, got {mode!r}')
        if short_policy not in ('error', 'loop'):
            raise ValueError("short_policy must be 'error' or 'loop', got "
                             f'{short_policy!r}')
        if num_clips < 1 or clip_duration <= 0 or frames_per_clip < 0:
            raise ValueError('need num_clips >= 1, clip_duration > 0 and '
                             'frames_per_clip >= 0')
        self.num_clips = int(num_clips)
        self.clip_duration = float(clip_duration)
        self.frames_per_clip = int(frames_per_clip)
        self.mode = mode
        self.stride = float(stride) if stride is not None \
            else self.clip_duration
        if self.stride <= 0:
            raise ValueError(f'stride must be > 0, got {stride}')
        self.jitter = float(jitter)
        self.short_policy = short_policy

    @property
    def span(self) -> float:
        """Seconds covered by the clip sequence (random and centre modes)."""
        return (self.num_clips - 1) * self.stride + self.clip_duration

    def transform(self, results: Dict) -> Dict:
        avail = float(results['duration'])
        lo = float(results.get('usable_start', 0.0))
        L, T = self.clip_duration, self.num_clips
        need = L if self.mode == 'uniform' else self.span
        loop_period = None
        if avail + 1e-9 < need:
            if self.short_policy == 'error':
                raise BadInputError(
                    'too_short', input_name(results),
                    f'{avail:.2f}s usable, {need:.2f}s needed for {T} clips '
                    f'of {L:g}s ({self.mode})')
            loop_period = avail
            virtual = need  # place clips on a virtual, repeated time line
            results.setdefault(META_KEY, []).append(adjustment_record(
                'looped', input_name(results),
                f'{avail:.2f}s usable, {need:.2f}s needed for {T} clips '
                f'of {L:g}s ({self.mode}); repeated'))
        else:
            virtual = avail

        if self.mode == 'uniform':
            starts = np.linspace(0.0, virtual - L, T) if T > 1 \
                else np.array([(virtual - L) / 2])
        else:
            free = max(0.0, virtual - self.span)
            offset = np.random.uniform(0.0, free) if self.mode == 'random' \
                else free / 2
            starts = offset + self.stride * np.arange(T)
        if self.jitter > 0:
            starts = starts + np.random.uniform(-self.jitter, self.jitter, T)
            starts = np.clip(starts, 0.0, max(0.0, virtual - L))
        starts = lo + starts

        results['clip_starts'] = starts.astype(np.float64)
        results['clip_duration'] = L
        results['num_clips'] = T
        results['clip_len'] = self.frames_per_clip
        if self.frames_per_clip:
            offsets = (np.arange(self.frames_per_clip) + 0.5) * (
                L / self.frames_per_clip)
            results['frame_times'] = starts[:, None] + offsets[None, :]
        results['loop_period'] = loop_period
        results['looped'] = loop_period is not None
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(num_clips={self.num_clips}, '
                f'clip_duration={self.clip_duration}, '
                f'frames_per_clip={self.frames_per_clip}, mode={self.mode}, '
                f'stride={self.stride}, jitter={self.jitter}, '
                f'short_policy={self.short_policy})')
