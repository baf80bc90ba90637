"""Open a media file once and decode only the sampled clips (video and
audio), with :class:`~avtoolkit.datasets.io.MediaReader`.

The transforms run in this order::

    AVInit         open the file (path or bytes) with PyAV, probe the streams
    AVSampleClips  choose T clip start times (:mod:`.clip_sampling`)
    AVDecode       decode the T*F frames and T audio windows of those clips
"""
from typing import Dict, Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from avtoolkit.datasets.io import CV2_INTERPOLATION, MediaReader
from avtoolkit.registry import TRANSFORMS
from ..bad_input import (META_KEY, BadInputError, adjustment_record,
                         input_name)

MODALITIES = ('video', 'audio')


@TRANSFORMS.register_module()
class AVInit(BaseTransform):
    """Open a media file once for every stream the pipeline reads.

    Required keys: ``filename`` (path), or ``video_bytes`` (the file's bytes;
    ``filename`` then only names it in messages).  Optional: ``input_name``,
    how errors name the input (default ``filename``; shard datasets give
    ``SHARD#KEY (source: PATH)``).

    Added keys: ``av_reader`` (:class:`MediaReader`, closed by
    :class:`AVDecode`), ``duration`` / ``usable_start`` (seconds of the span
    that every read stream covers), ``fps``, ``original_shape`` (H, W),
    ``orig_sample_rate``, ``orig_channels``.

    Args:
        modalities: streams to read: ``('video', 'audio')``, ``('video',)``
            or ``('audio',)``.
        num_threads: decoder threads per stream.
        tail_tolerance: see :class:`MediaReader`.
    """

    def __init__(self, modalities: Sequence[str] = MODALITIES,
                 num_threads: int = 1, tail_tolerance: float = 0.1):
        modalities = tuple(modalities)
        if not modalities or any(m not in MODALITIES for m in modalities):
            raise ValueError(f'modalities must be a non-empty subset of '
                             f'{MODALITIES}, got {modalities}')
        self.modalities = modalities
        self.num_threads = num_threads
        self.tail_tolerance = tail_tolerance

    def transform(self, results: Dict) -> Dict:
        source = results.get('video_bytes')
        if source is None:
            if results.get('filename') is None:
                raise KeyError('AVInit needs "filename" or "video_bytes"')
            source = results['filename']
        name = input_name(results)
        reader = MediaReader(source, name=name,
                             need_video='video' in self.modalities,
                             need_audio='audio' in self.modalities,
                             num_threads=self.num_threads,
                             tail_tolerance=self.tail_tolerance)
        results.pop('video_bytes', None)  # not needed any more
        results['av_reader'] = reader
        results['modalities'] = self.modalities
        results['duration'] = reader.duration
        results['usable_start'] = reader.start
        results['fps'] = reader.fps
        if reader.video_stream is not None:
            results['original_shape'] = (reader.height, reader.width)
        if reader.audio_stream is not None:
            results['orig_sample_rate'] = reader.sample_rate
            results['orig_channels'] = reader.channels
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(modalities={self.modalities}, '
                f'num_threads={self.num_threads})')


@TRANSFORMS.register_module()
class AVDecode(BaseTransform):
    """Decode the frames and audio windows of the sampled clips.

    Required keys: ``av_reader``, ``clip_starts``, ``clip_duration``,
    ``frame_times`` (with video), ``loop_period``.

    Added keys:

    * ``imgs``: (T*F, H, W, 3) uint8 RGB, clip-major (the layout mmaction's
      crop/flip transforms and ``FormatShape`` expect), with ``img_shape``
      (H, W) and ``modality='RGB'``;
    * ``audio``: (T, N) float32 mono waveform at ``sample_rate``, window
      ``t`` centred on clip ``t``; ``audio_starts`` (T,) its start times;
      ``sample_rate``.

    Audio samples are placed by their timestamps (see
    :class:`~avtoolkit.datasets.io.MediaReader`): a hole in the audio
    timestamps is silence at its true place.  A sample whose windows hold
    some of that silence gets an ``audio_filled`` record in
    ``results['bad_inputs']``; one with more than ``max_audio_gap`` seconds
    of it in a single window raises ``BadInputError('audio_gap')``.

    With ``loop_period`` set (``AVSampleClips(short_policy='loop')``), the
    usable span ``[usable_start, usable_start + loop_period)`` repeats in
    both streams: frame and audio times wrap at the usable start, never at
    the first decoded audio frame (which may come earlier).

    The reader is closed and removed from ``results``.

    Args:
        short_side: scale frames so that their short side has this many
            pixels while converting them (None: decoded size).
        sample_rate: output audio rate in Hz.
        audio_samples: samples per window (default ``clip_duration *
            sample_rate``); a window longer or shorter than the clip stays
            centred on it, e.g. 32047 samples give exactly 440 log-mel
            frames of hop 73 for a 2-s clip.
        interpolation: ``'BILINEAR'`` (as mmaction's ``Resize``),
            ``'AREA'`` (anti-aliased, slower), ``'BICUBIC'`` or
            ``'NEAREST'``.
        seek_gap: seconds between requested spans above which the decoder
            seeks instead of decoding through.
        max_audio_gap: the most seconds of one audio window that may fall
            in holes of the audio timestamps (filled with silence); more
            skips the sample as ``audio_gap``.  ``None``: no limit.
    """

    def __init__(self, short_side: Optional[int] = None,
                 sample_rate: int = 16000,
                 audio_samples: Optional[int] = None,
                 interpolation: str = 'BILINEAR', seek_gap: float = 2.0,
                 max_audio_gap: Optional[float] = 0.25):
        if short_side is not None and int(short_side) < 1:
            raise ValueError(f'short_side must be positive, got {short_side}')
        self.short_side = int(short_side) if short_side else None
        self.sample_rate = int(sample_rate)
        self.audio_samples = int(audio_samples) if audio_samples else None
        if interpolation not in CV2_INTERPOLATION:
            raise ValueError(f'interpolation must be one of '
                             f'{tuple(CV2_INTERPOLATION)}, got '
                             f'{interpolation!r}')
        self.interpolation = interpolation
        self.seek_gap = float(seek_gap)
        if max_audio_gap is not None and float(max_audio_gap) < 0:
            raise ValueError('max_audio_gap must be >= 0 or None, got '
                             f'{max_audio_gap}')
        self.max_audio_gap = None if max_audio_gap is None \
            else float(max_audio_gap)

    def transform(self, results: Dict) -> Dict:
        reader: MediaReader = results.pop('av_reader')
        try:
            self._decode(reader, results)
        finally:
            reader.close()
        return results

    def _decode(self, reader: MediaReader, results: Dict) -> None:
        starts = np.asarray(results['clip_starts'], dtype=np.float64)
        L = float(results['clip_duration'])
        period = results.get('loop_period')
        lo = reader.start

        def wrap(t):
            return t if period is None else lo + np.mod(t - lo, period)

        if reader.video_stream is not None:
            times = np.asarray(results['frame_times'], dtype=np.float64)
            if times.size == 0:
                raise ValueError('frames_per_clip is 0 but video is read')
            imgs = reader.read_frames(wrap(times.reshape(-1)),
                                      short_side=self.short_side,
                                      interpolation=self.interpolation,
                                      seek_gap=self.seek_gap)
            results['imgs'] = imgs
            results['img_shape'] = imgs.shape[1:3]
            results['modality'] = 'RGB'
        if reader.audio_stream is not None:
            sr = self.sample_rate
            n = self.audio_samples or int(round(L * sr))
            a_starts = starts + L / 2 - n / (2 * sr)
            if period is None:
                audio = reader.read_audio(a_starts, n, sr, self.seek_gap)
            else:
                audio = self._looped_audio(reader, a_starts, n, lo, period)
            self._check_silence(reader, results, a_starts, n / sr, lo,
                                period)
            results['audio'] = audio.astype(np.float32, copy=False)
            results['audio_starts'] = a_starts
            results['sample_rate'] = sr

    def _looped_audio(self, reader: MediaReader, a_starts: np.ndarray,
                      n: int, lo: float, period: float) -> np.ndarray:
        """Windows of a short video repeated with ``period``: the usable
        span is decoded once and indexed cyclically (a window may cross a
        wrap point).  Sample ``j`` of the cycle is the sample at
        ``lo + j / sr``, whatever time the first decoded frame had."""
        sr = self.sample_rate
        buf, t0 = reader.read_audio_span(lo, lo + period, sr)
        cycle = max(1, int(round(period * sr)))
        base = reader.cut_window(buf, t0, lo, cycle, sr)
        first = np.round((a_starts - lo) * sr).astype(np.int64)
        return base[np.mod(first[:, None] + np.arange(n)[None, :], cycle)]

    def _check_silence(self, reader: MediaReader, results: Dict,
                       a_starts: np.ndarray, length: float, lo: float,
                       period: Optional[float]) -> None:
        """Count (or refuse) the audio windows that hold silence filled
        into holes of the audio timestamps."""
        if not reader.audio_gaps:
            return
        silence = []
        for s in a_starts:
            if period is None:
                silence.append(reader.silence_in(s, length))
                continue
            # The window on the repeated time line, cut at the wrap points.
            total, pos, end = 0.0, s, s + length
            while pos < end - 1e-9:
                k = np.floor((pos - lo) / period)
                inner = lo + (pos - lo) - k * period
                step = min(end - pos, lo + period - inner)
                total += reader.silence_in(inner, step)
                pos += step
            silence.append(total)
        worst = int(np.argmax(silence))
        if not silence[worst]:
            return
        holes = ', '.join(f'{g0:.3f}s ({g * 1000:.0f} ms)'
                          for g0, g in reader.audio_gaps[:4])
        if self.max_audio_gap is not None and \
                silence[worst] > self.max_audio_gap + 1e-6:
            raise BadInputError(
                'audio_gap', reader.name,
                f'{silence[worst]:.3f}s of the audio window at '
                f'{a_starts[worst]:.3f}s is missing (holes in the audio '
                f'timestamps at {holes}); AVDecode.max_audio_gap is '
                f'{self.max_audio_gap}s')
        filled = sum(1 for v in silence if v > 0)
        results.setdefault(META_KEY, []).append(adjustment_record(
            'audio_filled', reader.name,
            f'{filled} audio window(s) hold up to {silence[worst]:.3f}s of '
            f'silence filled into holes of the audio timestamps at {holes}'))

    def __repr__(self):
        return (f'{self.__class__.__name__}(short_side={self.short_side}, '
                f'sample_rate={self.sample_rate}, '
                f'audio_samples={self.audio_samples}, '
                f'interpolation={self.interpolation}, '
                f'seek_gap={self.seek_gap}, '
                f'max_audio_gap={self.max_audio_gap})')
