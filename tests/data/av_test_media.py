"""Small media files with audio-visual markers, written with PyAV for tests.

A marker video is dark grey except for single white "flash" frames at given
event times; its audio is quiet noise except for a loud 1 kHz burst that
starts at each event time and lasts one frame period.  Decoding a clip and
finding the flash frame and the burst onset tells whether the two streams
were cut from the same time span.
"""
import os.path as osp
from fractions import Fraction
from typing import Optional, Sequence, Tuple

import av
import numpy as np

DARK, BRIGHT = 40, 230


def write_marker_video(path: str,
                       duration: float = 6.0,
                       fps=16,
                       size=(96, 64),
                       sample_rate: Optional[int] = 16000,
                       channels: int = 1,
                       events: Sequence[float] = (0.5, 1.8, 3.1, 4.4),
                       container: Optional[str] = None,
                       vcodec: str = 'libx264',
                       acodec: str = 'aac',
                       vfr: bool = False,
                       video_start: float = 0.0,
                       audio_span: Optional[Tuple[float, float]] = None,
                       audio_holes: Sequence[Tuple[float, float]] = (),
                       seed: int = 0) -> dict:
    """Write a marker video; returns its parameters (event times snapped to
    frame starts, as ``events``).

    Args:
        duration: seconds.
        fps: frame rate (int or Fraction, e.g. Fraction(30000, 1001)).
        size: (width, height), even.
        sample_rate: audio rate, or None for a file without audio.
        channels: 1, 2 (the right channel is the left one at half level
            plus a little independent noise) or 6 (5.1: the burst in the
            front left and centre channels, noise everywhere).
        vfr: variable frame rate: frame durations alternate between
            ``1/fps`` and ``2/fps`` (millisecond timestamps).
        events: flash / burst times in seconds (absolute: the same instant
            in both streams whatever their start times); events outside the
            video are only heard.
        video_start: time of the first video frame; the video lasts
            ``duration`` from there.
        audio_span: (start, end) of the audio stream (default: the video's
            span).  Audio starting before the video is common in real
            files.
        audio_holes: (time, length) pairs: the audio packets stop at about
            ``time`` (moved to the encoder's frame boundary at or before
            it) and resume ``length`` seconds later, their timestamps
            jumping over the hole; the signal keeps following absolute time,
            as in a recording that dropped packets.  AAC only.  The actual
            hole starts are returned as ``holes``.
        container: format name (default from the extension).
        vcodec, acodec: encoders ('libx264'/'aac' for mp4, 'mpeg4'/
            'libmp3lame' for avi).
    """
    rng = np.random.default_rng(seed)
    fps = Fraction(fps).limit_denominator(1001)
    width, height = size
    if vfr:  # frame k starts at starts[k] (ms grid), durations 1 and 2 periods
        steps = np.tile([1, 2], int(duration * fps))
        starts = np.concatenate([[0], np.cumsum(steps)]) / float(fps)
        starts = np.round(starts[starts < duration] * 1000) / 1000
        time_base = Fraction(1, 1000)
    else:
        starts = np.arange(int(round(duration * fps))) / float(fps)
        time_base = 1 / fps
    starts = starts + video_start
    a_lo, a_hi = audio_span if audio_span is not None else (
        video_start, video_start + duration)
    n_frames = len(starts)
    # An event during the video flashes the frame on screen then, and its
    # time moves to that frame's start; one before or after the video is
    # only heard.
    v_end = starts[-1] + 1 / float(fps)
    flash = {int(np.searchsorted(starts, e, side='right') - 1)
             for e in events if starts[0] <= e < v_end}
    events = sorted([float(starts[f]) for f in flash] +
                    [float(e) for e in events
                     if not starts[0] <= e < v_end])
    out = av.open(path, 'w', format=container)
    vs = out.add_stream(vcodec, rate=fps)
    if vfr:
        vs.time_base = time_base
    vs.width, vs.height, vs.pix_fmt = width, height, 'yuv420p'
    if vcodec == 'libx264':
        vs.options = {'preset': 'ultrafast', 'g': str(int(fps)),
                      'threads': '1'}
    aus = None
    audio = None
    if sample_rate:
        aus = out.add_stream(acodec, rate=sample_rate)
        layout = {1: 'mono', 2: 'stereo', 6: '5.1'}[channels]
        aus.layout = layout
        if acodec == 'aac':
            aus.options = {'aac_coder': 'fast'}
        n = int(round(a_hi * sample_rate))
        t = np.arange(n) / sample_rate
        mono = 0.01 * rng.standard_normal(n)
        for e in events:
            on = (t >= e) & (t < e + float(1 / fps))
            mono[on] += 0.6 * np.sin(2 * np.pi * 1000 * t[on])
        if channels == 2:
            right = 0.5 * mono + 0.005 * rng.standard_normal(n)
            audio = np.stack([mono, right]).astype(np.float32)
        elif channels == 6:  # FL FR FC LFE BL BR
            quiet = [0.005 * rng.standard_normal(n) for _ in range(4)]
            audio = np.stack([mono, quiet[0], mono, quiet[1], quiet[2],
                              quiet[3]]).astype(np.float32)
        else:
            audio = mono[None].astype(np.float32)
    # Audio is encoded without its holes, in frames of the encoder's size,
    # starting at a_lo; the packets after a hole get their timestamps moved
    # by its length (``shifts``: encoder position -> added samples).
    first = int(round(a_lo * sample_rate)) if sample_rate else 0
    chunk = 1152
    shifts, holes = [], []
    if audio is not None:
        chunk = aus.codec_context.frame_size or 1024
        if audio_holes and acodec != 'aac':
            raise ValueError('audio_holes needs acodec="aac"')
        kept = np.ones(audio.shape[1], bool)
        kept[:first] = False
        removed = 0
        for at, length in sorted(audio_holes):
            # ``at`` in encoder positions (the earlier holes removed)
            cut = first + (int(at * sample_rate) - removed - first) \
                // chunk * chunk
            gap = int(round(length * sample_rate))
            kept[cut + removed:cut + removed + gap] = False
            shifts.append((cut, removed + gap))
            holes.append(((cut + removed) / sample_rate, gap / sample_rate))
            removed += gap
        audio = audio[:, kept]
    a_pos = first

    def shift_of(pts):
        extra = 0
        for cut, total in shifts:
            if pts >= cut:
                extra = total
        return extra

    def mux_audio(until):
        nonlocal a_pos
        if aus is None:
            return
        limit = min(first + audio.shape[1], int(round(until * sample_rate)))
        while a_pos < limit:
            piece = np.ascontiguousarray(
                audio[:, a_pos - first:a_pos - first + chunk])
            frame = av.AudioFrame.from_ndarray(piece, format='fltp',
                                               layout=layout)
            frame.sample_rate, frame.pts = sample_rate, a_pos
            frame.time_base = Fraction(1, sample_rate)
            for p in aus.encode(frame):
                mux_packet(p)
            a_pos += piece.shape[1]

    def mux_packet(p):
        if shifts and p.pts is not None:
            extra = shift_of(p.pts)
            p.pts += extra
            if p.dts is not None:
                p.dts += extra
        out.mux(p)

    for k in range(n_frames):
        level = BRIGHT if k in flash else DARK
        img = np.full((height, width, 3), level, np.uint8)
        img[:, :4] = (k * 7) % 256  # a strip that changes every frame
        frame = av.VideoFrame.from_ndarray(img, format='rgb24')
        frame.pts = int(round(starts[k] / time_base))
        frame.time_base = time_base
        mux_audio(starts[k] + 2 / float(fps))
        for p in vs.encode(frame):
            out.mux(p)
    for p in vs.encode():
        out.mux(p)
    if aus is not None:
        mux_audio(a_hi + 1)
        for p in aus.encode():
            mux_packet(p)
    out.close()
    return dict(path=path, duration=duration, fps=float(fps),
                max_frame_period=float(np.diff(starts).max()),
                size=size, sample_rate=sample_rate, channels=channels,
                events=[float(e) for e in events], video_start=video_start,
                audio_span=(a_lo, a_hi), holes=holes)


def write_marker_avi(path: str, **kwargs) -> dict:
    """Marker video as MPEG-4 part 2 + MP3 in AVI (like older datasets)."""
    kwargs.setdefault('fps', 25)
    kwargs.setdefault('sample_rate', 44100)
    kwargs.setdefault('channels', 2)
    return write_marker_video(path, container='avi', vcodec='mpeg4',
                              acodec='libmp3lame', **kwargs)


def flash_frames(imgs: np.ndarray) -> np.ndarray:
    """Boolean (N,) flags of the white frames in (N, H, W, 3) uint8."""
    centre = imgs[:, :, 8:].reshape(len(imgs), -1).mean(axis=1)
    return centre > (DARK + BRIGHT) / 2


def burst_onsets(wave: np.ndarray, sample_rate: int) -> list:
    """Onset times (seconds from the window start) of the 1 kHz bursts in a
    mono window: where a 2-ms RMS envelope first rises above half of its
    peak level, once per burst."""
    win = max(1, int(0.002 * sample_rate))
    n = len(wave) // win
    env = np.sqrt((wave[:n * win].reshape(n, win)**2).mean(axis=1))
    if env.max() < 0.1:
        return []
    above = env > 0.2
    onsets = []
    for i in range(n):
        if above[i] and (i == 0 or not above[i - 1]):
            onsets.append(i * win / sample_rate)
    return onsets


def write_list(path: str, lines: Sequence[str]) -> str:
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def here(*parts) -> str:
    return osp.join(osp.dirname(osp.abspath(__file__)), *parts)
