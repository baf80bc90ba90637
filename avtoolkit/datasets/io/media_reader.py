"""PyAV reading of one media file: both streams opened once, frames located
by their timestamps and converted to RGB only where requested, audio decoded
over the same spans and resampled on the fly.

Times are seconds relative to the *origin* of the file: the start of the
video stream (the audio stream when only audio is read).  The frame used for
time ``t`` is the one on screen at ``t``; audio sample ``j`` of a window that
starts at ``s`` is the sample at time ``s + j / sample_rate``.  Audio
samples are placed by the timestamps of their frames: a hole in the audio
timestamps is filled with silence (and remembered in
:attr:`MediaReader.audio_gaps`), overlapping frames are trimmed, so a late
window is never shifted by a hole before it.
docs/data_preparation.md explains the time line, the decoding cost and why
PyAV rather than decord.
"""
import io
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import av
import numpy as np

from avtoolkit.datasets.bad_input import BadInputError

from .frame_conversion import RowSink, frame_to_rgb


# numpy dtype of each FFmpeg sample format (planar or packed) and the value
# of silence in it.
_SAMPLE_DTYPES = {'u8': (np.uint8, 128), 's16': (np.int16, 0),
                  's32': (np.int32, 0), 's64': (np.int64, 0),
                  'flt': (np.float32, 0), 'dbl': (np.float64, 0)}


def _audio_like(frame: 'av.AudioFrame', array: np.ndarray) -> 'av.AudioFrame':
    new = av.AudioFrame.from_ndarray(np.ascontiguousarray(array),
                                     format=frame.format.name,
                                     layout=frame.layout.name)
    new.sample_rate = frame.sample_rate
    return new


def _silence_like(frame: 'av.AudioFrame', samples: int) -> 'av.AudioFrame':
    """``samples`` of silence in the format and layout of ``frame``."""
    fmt = frame.format
    dtype, zero = _SAMPLE_DTYPES[fmt.name.rstrip('p')]
    channels = len(frame.layout.channels)
    shape = (channels, samples) if fmt.is_planar else \
        (1, samples * channels)
    return _audio_like(frame, np.full(shape, zero, dtype))


def _drop_front(frame: 'av.AudioFrame', samples: int) -> 'av.AudioFrame':
    """``frame`` without its first ``samples`` samples."""
    arr = frame.to_ndarray()
    step = 1 if frame.format.is_planar else len(frame.layout.channels)
    return _audio_like(frame, arr[:, samples * step:])


def _seconds(value, time_base) -> Optional[float]:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


class TimestampGuesser:
    """Best-effort frame time from (pts, dts), as FFmpeg's
    ``guess_correct_pts``: use pts unless pts went backwards more often than
    dts.

    With ``prefer_dts`` the dts is used whenever the frame has one.  This is
    the rule for AVI: the container stores one packet per frame slot in
    display order, and in files with packed B-frames (Xvid/DivX) the
    decoder hands out pts that run backwards.  Counting faults alone would
    mistime the first frames after every seek (before the first backward
    pts is seen), so that the slot right after a seek showed the previous
    frame.
    """

    def __init__(self, prefer_dts: bool = False):
        self.prefer_dts = bool(prefer_dts)
        self.faulty_pts = self.faulty_dts = 0
        self.last_pts = self.last_dts = None

    def __call__(self, pts, dts):
        if self.prefer_dts and dts is not None:
            return dts
        if dts is not None:
            if self.last_dts is not None and dts <= self.last_dts:
                self.faulty_dts += 1
            self.last_dts = dts
        if pts is not None:
            if self.last_pts is not None and pts <= self.last_pts:
                self.faulty_pts += 1
            self.last_pts = pts
        if pts is not None and (self.faulty_pts <= self.faulty_dts
                                or dts is None):
            return pts
        return dts


class MediaReader:
    """One opened media file (a path or its bytes) and its probed layout.

    Args:
        source: a file path, or the file's bytes.
        name: how to name the input in error messages (default: the path).
        need_video, need_audio: which streams the caller will read; a missing
            one raises :class:`BadInputError` (``no_video`` / ``no_audio``).
        num_threads: decoder threads (1 inside DataLoader workers).
        tail_tolerance: seconds by which the decoded streams may fall short
            of the requested times at the very end of a file (the last frame
            is held, the audio end is reflected) before the file counts as
            ``truncated``.

    Attributes (seconds, relative to the origin):
        origin: absolute start time of the reference stream.
        audio_gaps: ``(time, seconds)`` of every hole in the audio
            timestamps met so far while decoding, in time order; the reader
            filled each with silence (see :meth:`silence_in`).  Differences
            up to ``timestamp_jitter`` are rounding, not holes.
        start, end: the span covered by every stream that is read.
        duration: ``end - start``.
        fps: average frame rate (``None`` if unknown or no video).
        width, height: frame size (``None`` without video).
        sample_rate, channels: of the audio stream (``None`` without audio).
    """

    #: Audio is converted and resampled in batches of about this many
    #: seconds of decoded frames (bounds the memory of long spans).
    audio_batch_seconds = 8.0

    #: Seconds by which an audio frame's timestamp may differ from the end
    #: of the samples before it without counting as a hole or an overlap
    #: (timestamps rounded to a millisecond time base); at least two ticks
    #: of the stream's time base.
    timestamp_jitter = 0.002

    def __init__(self, source, name: Optional[str] = None,
                 need_video: bool = True, need_audio: bool = True,
                 num_threads: int = 1, tail_tolerance: float = 0.1):
        if not (need_video or need_audio):
            raise ValueError('need_video and need_audio cannot both be False')
        is_bytes = isinstance(source, (bytes, bytearray, memoryview))
        self.name = name or ('<bytes>' if is_bytes else str(source))
        self.tail_tolerance = float(tail_tolerance)
        self.audio_gaps: List[Tuple[float, float]] = []
        self.container = None
        try:
            if is_bytes:
                if len(source) == 0:
                    raise BadInputError('unreadable', self.name, 'empty input')
                self.container = av.open(io.BytesIO(bytes(source)), 'r')
            else:
                if osp.isfile(source) and osp.getsize(source) == 0:
                    raise BadInputError('unreadable', self.name, 'empty file')
                self.container = av.open(source, 'r')
        except BadInputError:
            raise
        except Exception as e:  # FFmpeg, OS and format errors alike
            raise BadInputError('unreadable', self.name,
                                f'{type(e).__name__}: {e}') from e
        try:
            self._probe(need_video, need_audio, num_threads)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------- probing
    def _probe(self, need_video, need_audio, num_threads):
        c = self.container
        vs = c.streams.video[0] if c.streams.video else None
        aus = c.streams.audio[0] if c.streams.audio else None
        if need_video and vs is None:
            raise BadInputError('no_video', self.name, 'no video stream')
        if need_audio and aus is None:
            raise BadInputError('no_audio', self.name, 'no audio stream')
        # AVI frames are timed by their dts (see TimestampGuesser).
        self.prefer_dts = 'avi' in c.format.name.split(',')
        self.video_stream = vs if need_video else None
        self.audio_stream = aus if need_audio else None
        for s in (self.video_stream, self.audio_stream):
            if s is None:
                continue
            s.codec_context.thread_count = max(1, int(num_threads))
            s.codec_context.thread_type = 'AUTO' if num_threads != 1 \
                else 'SLICE'

        c_start = c.start_time / av.time_base if c.start_time is not None \
            else None
        c_dur = c.duration / av.time_base if c.duration is not None else None

        def span(stream, frames_per_second=None):
            start = _seconds(stream.start_time, stream.time_base)
            dur = _seconds(stream.duration, stream.time_base)
            if start is None:
                start = c_start if c_start is not None else 0.0
            if dur is None and frames_per_second and stream.frames:
                dur = stream.frames / frames_per_second
            if dur is None and c_dur is not None:
                dur = (c_start or 0.0) + c_dur - start
            if dur is None or not math.isfinite(dur) or dur <= 0:
                raise BadInputError('unknown_duration', self.name,
                                    f'{stream.type} stream declares no '
                                    'length')
            return start, start + dur

        self.fps = self.width = self.height = None
        self.sample_rate = self.channels = None
        spans = []
        if self.video_stream is not None:
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            self.fps = float(rate) if rate else None
            self.width, self.height = vs.codec_context.width, \
                vs.codec_context.height
            if not (self.width and self.height):
                raise BadInputError('unreadable', self.name,
                                    'video stream without a frame size')
            spans.append(span(vs, self.fps))
        if self.audio_stream is not None:
            self.sample_rate = aus.codec_context.sample_rate
            self.channels = aus.codec_context.channels
            if not self.sample_rate:
                raise BadInputError('unreadable', self.name,
                                    'audio stream without a sample rate')
            spans.append(span(aus))
        self.origin = spans[0][0]
        self.start = max(s for s, _ in spans) - self.origin
        self.end = min(e for _, e in spans) - self.origin
        self.duration = self.end - self.start
        if self.duration <= 0:
            raise BadInputError('too_short', self.name,
                                'the streams do not overlap in time')

    def info(self) -> Dict:
        """The probed layout as a plain dict."""
        return dict(duration=self.duration, start=self.start, end=self.end,
                    fps=self.fps, width=self.width, height=self.height,
                    sample_rate=self.sample_rate, channels=self.channels,
                    has_video=self.video_stream is not None,
                    has_audio=self.audio_stream is not None)

    def close(self):
        if self.container is not None:
            try:
                self.container.close()
            finally:
                self.container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------- helpers
    def _seek(self, stream, t_rel: float) -> bool:
        """Seek ``stream`` to the key frame at or before ``t_rel``; returns
        whether the target is at (or before) the start of the stream."""
        t_abs = self.origin + t_rel
        stream_start = _seconds(stream.start_time, stream.time_base)
        at_start = stream_start is None or t_abs <= stream_start + 1e-6
        ts = int(math.floor(t_abs / float(stream.time_base)))
        if at_start:  # some demuxers refuse targets before the stream start
            ts = stream.start_time if stream.start_time is not None else 0
        try:
            self.container.seek(ts, stream=stream, backward=True,
                                any_frame=False)
        except Exception as e:
            raise BadInputError('decode_error', self.name,
                                f'seek to {t_rel:.3f}s failed: {e}') from e
        return at_start

    @staticmethod
    def _runs(starts: np.ndarray, ends: np.ndarray,
              gap: float) -> List[Tuple[int, int]]:
        """Index ranges of sorted windows, split where the next window begins
        more than ``gap`` seconds after the previous one ends."""
        runs, first = [], 0
        for i in range(1, len(starts)):
            if starts[i] - ends[i - 1] > gap:
                runs.append((first, i))
                first = i
        runs.append((first, len(starts)))
        return runs

    def output_size(self, short_side: Optional[int]) -> Tuple[int, int]:
        """(width, height) of the frames for a given short side."""
        if self.width is None:
            raise ValueError('no video stream')
        w, h = self.width, self.height
        if not short_side:
            return w, h
        # The long side is rounded to an even number (4:2:0 planes).
        if h <= w:
            return max(2, 2 * int(round(w * short_side / h / 2))), \
                int(short_side)
        return int(short_side), max(2, 2 * int(round(h * short_side / w /
                                                      2)))

    # --------------------------------------------------------------- video
    def read_frames(self, times: Sequence[float],
                    short_side: Optional[int] = None,
                    interpolation: str = 'BILINEAR',
                    seek_gap: float = 2.0) -> np.ndarray:
        """The frames on screen at ``times``.

        Args:
            times: (K,) seconds relative to the origin, any order.
            short_side: scale frames so that their short side has this many
                pixels (None: keep the decoded size).
            interpolation: ``'BILINEAR'`` (as mmaction's ``Resize``),
                ``'AREA'``, ``'BICUBIC'`` or ``'NEAREST'``.
            seek_gap: times further apart than this are reached by seeking
                instead of decoding through.

        Returns:
            (K, H, W, 3) uint8 RGB, in the order of ``times``; a frame
            shown at several times is copied into each of their rows.
        """
        if self.video_stream is None:
            raise ValueError(f'{self.name}: opened without video')
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if times.size == 0:
            raise ValueError('no frame times requested')
        uniq, inverse = np.unique(times, return_inverse=True)
        width, height = self.output_size(short_side)
        frames = np.empty((len(times), height, width, 3), np.uint8)
        sink = RowSink(frames, inverse.reshape(-1), len(uniq))
        for lo, hi in self._runs(uniq, uniq, seek_gap):
            self._decode_video_run(uniq[lo:hi], sink, lo, width, height,
                                   interpolation)
        return frames

    def _decode_video_run(self, targets, out, offset, width, height, interp):
        back = 0.0
        for _ in range(6):
            at_start = self._seek(self.video_stream, targets[0] - back)
            if self._scan_video(targets, out, offset, width, height, interp,
                                at_start):
                return
            back = 2.0 * back + 1.0  # landed after the target: go further
        raise BadInputError('decode_error', self.name,
                            f'cannot reach {targets[0]:.3f}s by seeking')

    def _scan_video(self, targets, out, offset, width, height, interp,
                    at_start) -> bool:
        stream = self.video_stream
        tb = float(stream.time_base)
        tol = self.tail_tolerance
        period = 1.0 / self.fps if self.fps else 0.04
        guess = TimestampGuesser(self.prefer_dts)
        n, i = len(targets), 0
        prev = prev_t = prev_img = None
        cache_frame = cache_img = None

        def image(frame):
            nonlocal cache_frame, cache_img
            if frame is not cache_frame:
                cache_img = frame_to_rgb(frame, width, height, interp)
                cache_frame = frame
            return cache_img

        try:
            for frame in self.container.decode(stream):
                ts = guess(frame.pts, getattr(frame, 'dts', None))
                if ts is None:
                    if prev_t is None:
                        raise BadInputError('bad_timestamps', self.name,
                                            'frames carry no timestamps')
                    t = prev_t + period
                else:
                    t = ts * tb - self.origin
                if prev is None:
                    if targets[0] < t - 1e-6:
                        if not at_start:
                            return False
                        if targets[0] < t - max(tol, period):
                            raise BadInputError(
                                'bad_timestamps', self.name,
                                f'first frame at {t:.3f}s, the video stream '
                                'declares an earlier start')
                        # Before the first frame of the file (within a frame
                        # period): the first frame is the one shown.
                        while i < n and targets[i] < t:
                            out[offset + i] = image(frame)
                            i += 1
                else:
                    t = max(t, prev_t)
                    while i < n and targets[i] < t:
                        out[offset + i] = image(prev)
                        i += 1
                if i >= n:
                    return True
                prev, prev_t = frame, t
        except BadInputError:
            raise
        except Exception as e:
            if prev is None or i < n and targets[-1] > prev_t + period + tol:
                raise BadInputError('decode_error', self.name,
                                    f'{type(e).__name__}: {e}') from e
        if prev is None:
            raise BadInputError('truncated', self.name,
                                f'no frame decoded after {targets[0]:.3f}s')
        duration = _seconds(prev.duration, stream.time_base) or period
        if targets[-1] >= prev_t + duration + tol:
            raise BadInputError(
                'truncated', self.name,
                f'video ends at {prev_t + duration:.3f}s, a clip needs '
                f'{targets[-1]:.3f}s')
        while i < n:
            out[offset + i] = image(prev)
            i += 1
        return True

    def iter_video_frames(self, start: float = 0.0):
        """Yield ``(time, av.VideoFrame)`` from the key frame before
        ``start`` to the end of the stream, times in seconds from the origin
        (non-decreasing).  Decoding errors after the first frame end the
        iteration early (check the last time against :attr:`end`)."""
        if self.video_stream is None:
            raise ValueError(f'{self.name}: opened without video')
        stream = self.video_stream
        tb = float(stream.time_base)
        period = 1.0 / self.fps if self.fps else 0.04
        self._seek(stream, start)
        guess = TimestampGuesser(self.prefer_dts)
        prev_t = None
        try:
            for frame in self.container.decode(stream):
                ts = guess(frame.pts, getattr(frame, 'dts', None))
                if ts is None:
                    if prev_t is None:
                        raise BadInputError('bad_timestamps', self.name,
                                            'frames carry no timestamps')
                    t = prev_t + period
                else:
                    t = ts * tb - self.origin
                t = t if prev_t is None else max(t, prev_t)
                prev_t = t
                yield t, frame
        except BadInputError:
            raise
        except Exception as e:
            if prev_t is None:
                raise BadInputError('decode_error', self.name,
                                    f'{type(e).__name__}: {e}') from e

    # --------------------------------------------------------------- audio
    def read_audio(self, starts: Sequence[float], num_samples: int,
                   sample_rate: int, seek_gap: float = 2.0) -> np.ndarray:
        """Mono audio windows at ``sample_rate``.

        Args:
            starts: (K,) window start times (seconds from the origin).
            num_samples: samples per window.
            sample_rate: output rate; the stream is resampled by swresample
                while decoding and downmixed to mono (stereo: the mean of
                the two channels; more channels: FFmpeg's standard matrix
                to stereo, then the mean).
            seek_gap: windows further apart than this are reached by seeking.

        Returns:
            (K, num_samples) float32 in the order of ``starts``.
        """
        if self.audio_stream is None:
            raise ValueError(f'{self.name}: opened without audio')
        starts = np.asarray(starts, dtype=np.float64).reshape(-1)
        order = np.argsort(starts, kind='stable')
        s_sorted = starts[order]
        length = num_samples / sample_rate
        out = np.empty((len(starts), num_samples), dtype=np.float32)
        for lo, hi in self._runs(s_sorted, s_sorted + length, seek_gap):
            a, b = s_sorted[lo], s_sorted[hi - 1] + length
            buf, t0 = self.read_audio_span(a, b, sample_rate)
            for k in range(lo, hi):
                out[order[k]] = self.cut_window(buf, t0, s_sorted[k],
                                                num_samples, sample_rate)
        return out

    def cut_window(self, buf: np.ndarray, t0: float, start: float, n: int,
                   sr: int) -> np.ndarray:
        """The ``n`` samples from time ``start`` of ``buf`` (audio at
        ``sr`` whose first sample is at ``t0``), as
        :meth:`read_audio_span` returns it.  Up to ``tail_tolerance``
        seconds missing at either end are mirrored; more raises
        ``BadInputError('truncated')``."""
        first = int(round((start - t0) * sr))
        tol = int(round(self.tail_tolerance * sr))
        pad_front = max(0, -first)
        pad_back = max(0, first + n - len(buf))
        if pad_front > tol or pad_back > tol or len(buf) < 2:
            raise BadInputError(
                'truncated', self.name,
                f'audio covers {t0:.3f}-{t0 + len(buf) / sr:.3f}s, a clip '
                f'needs {start:.3f}-{start + n / sr:.3f}s')
        piece = buf[max(0, first):max(0, first) + n - pad_front]
        if pad_front or pad_back:
            # At most tail_tolerance seconds at a file edge: mirror the
            # nearby signal rather than inventing silence.
            piece = np.pad(piece, (pad_front, n - pad_front - len(piece)),
                           mode='reflect')
        return piece

    def _note_gap(self, start: float, seconds: float) -> None:
        for k, (s0, length) in enumerate(self.audio_gaps):
            if abs(s0 - start) < 1e-4:  # met again by another decoding run
                self.audio_gaps[k] = (s0, max(length, seconds))
                return
        self.audio_gaps.append((start, seconds))
        self.audio_gaps.sort()

    def silence_in(self, start: float, seconds: float) -> float:
        """Seconds of ``[start, start + seconds)`` that lie in holes of the
        audio timestamps (filled with silence), among the holes met so
        far."""
        end = start + seconds
        return sum(max(0.0, min(end, g0 + g) - max(start, g0))
                   for g0, g in self.audio_gaps)

    def read_audio_span(self, a: float, b: float,
                        sample_rate: int) -> Tuple[np.ndarray, float]:
        """Decode mono audio covering ``[a, b)`` (seconds from the origin).

        Returns:
            ((N,) float32 at ``sample_rate``, time of its first sample).
        """
        back = 0.2
        for _ in range(6):
            at_start = self._seek(self.audio_stream, a - back)
            got = self._scan_audio(a, b, sample_rate, at_start)
            if got is not None:
                return got
            back = 2.0 * back + 1.0
        raise BadInputError('decode_error', self.name,
                            f'cannot reach audio at {a:.3f}s by seeking')

    def _scan_audio(self, a, b, sr, at_start):
        stream = self.audio_stream
        tol = self.tail_tolerance
        # Decoded frames are gathered in a FIFO and converted in batches of
        # about ``audio_batch_seconds``: to planar float at the native rate
        # (more than two channels to stereo with FFmpeg's standard matrix),
        # the two channels averaged to mono, then one swresample call to
        # ``sr`` for the whole batch.  Resampling after the (linear) downmix
        # halves its work, and batching removes per-frame call overheads:
        # 2.3x less CPU time than converting frame by frame for 30 s of
        # 44.1 kHz stereo AAC, with the same samples to within 1e-7.
        layout = 'mono' if (self.channels or 1) == 1 else 'stereo'
        to_planar = av.AudioResampler(format='fltp', layout=layout)
        to_rate = av.AudioResampler(format='fltp', layout='mono', rate=sr)
        fifo = av.AudioFifo()
        batch_s = self.audio_batch_seconds
        chunks, n_out = [], 0
        t0 = None
        margin = 0.05  # decode a little past b so swresample's delay is out

        def convert(final: bool):
            nonlocal n_out
            batch = fifo.read() if fifo.samples else None
            planes = [] if batch is None else to_planar.resample(batch)
            if final:
                planes += to_planar.resample(None)
            mono_frames = []
            for p in planes:
                arr = p.to_ndarray()  # (channels, samples)
                arr = arr if arr.shape[0] == 1 else \
                    arr.mean(axis=0, keepdims=True)
                mono = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(arr, dtype=np.float32),
                    format='fltp', layout='mono')
                mono.sample_rate = p.sample_rate
                mono_frames += to_rate.resample(mono)
            if final:
                mono_frames += to_rate.resample(None)
            for o in mono_frames:
                arr = o.to_ndarray()[0]
                chunks.append(arr)
                n_out += arr.size

        error = None
        ended = False
        rate = written = None  # native rate; samples in the FIFO so far
        jitter = max(self.timestamp_jitter, 2.0 * float(stream.time_base))
        try:
            for frame in self.container.decode(stream):
                t = frame.time
                if t0 is None:
                    if t is None:
                        raise BadInputError('bad_timestamps', self.name,
                                            'audio frames carry no '
                                            'timestamps')
                    t = t - self.origin
                    if t > a + 1e-6 and not at_start:
                        return None  # landed after the start: seek earlier
                    t0, rate, written = t, frame.sample_rate, 0
                else:
                    # Place the frame by its timestamp: fill a hole with
                    # silence, trim an overlap.
                    expected = t0 + written / rate
                    t = (t - self.origin) if t is not None else expected
                    if t - expected > jitter:
                        fill = min(t, b + margin) - expected
                        n_fill = max(0, int(round(fill * rate)))
                        if n_fill:
                            fifo.write(_silence_like(frame, n_fill))
                            written += n_fill
                            self._note_gap(expected, n_fill / rate)
                        if t > b + margin:
                            break  # the hole runs past what was asked
                    elif expected - t > jitter:
                        drop = int(round((expected - t) * rate))
                        if drop >= frame.samples:
                            continue
                        frame = _drop_front(frame, drop)
                frame.pts = None  # placed above, not by the FIFO
                fifo.write(frame)
                written += frame.samples
                if t0 + written / rate >= b + margin:
                    break
                if fifo.samples >= batch_s * rate:
                    convert(final=False)
            else:
                ended = True
        except BadInputError:
            raise
        except Exception as e:
            error = e
        try:
            convert(final=ended)
        except Exception as e:
            error = error or e
        if error is not None and (t0 is None or t0 + n_out / sr < b - tol):
            raise BadInputError('decode_error', self.name,
                                f'{type(error).__name__}: {error}') from error
        if t0 is None:
            raise BadInputError('truncated', self.name,
                                f'no audio decoded after {a:.3f}s')
        buf = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return buf.astype(np.float32, copy=False), t0
