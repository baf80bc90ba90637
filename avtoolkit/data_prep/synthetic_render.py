"""Rendering a synthetic video plan into frames and a waveform, and encoding
them into an ``.mp4`` file (H.264 + AAC) with PyAV."""
import math
from fractions import Fraction
from typing import Iterator, Optional, Sequence

import numpy as np

from .synthetic_spec import (EVENT_AMPLITUDE, TIMBRES, SyntheticAVConfig,
                             _hsv_to_rgb)

def _pulse_envelope(u: np.ndarray, pulses: int) -> np.ndarray:
    """Envelope of ``pulses`` smooth pulses over event time ``u`` in [0, 1].

    Zero outside ``[0, 1]``; float array of the same shape as ``u``.
    """
    inside = (u >= 0) & (u <= 1)
    v = np.clip(u, 0, 1) * pulses
    v = v - np.floor(np.minimum(v, pulses - 1e-9))
    env = np.sin(np.pi * v)**0.7
    return np.where(inside, env, 0.0)


def _event_semitones(event: dict, u: np.ndarray) -> np.ndarray:
    """Pitch offset (semitones) from the event's centre pitch over time."""
    return event['glide'] * (np.clip(u, 0, 1) - 0.5)


def _motion_position(motion: str, event: dict, u: float,
                     speed: float) -> tuple:
    """Object centre in normalised ``(x, y)`` coordinates at event time u."""
    cx, cy = event['centre']
    dx, dy = event['direction']
    w = (u - 0.5) * speed
    if motion == 'horizontal sweep':
        return cx + dx * 0.5 * w, cy
    if motion == 'vertical sweep':
        return cx, cy + dy * 0.5 * w
    if motion == 'orbit':
        angle = event['phase'] + dx * 1.5 * np.pi * u * speed
        return cx + 0.18 * np.cos(angle), cy + 0.18 * np.sin(angle)
    if motion == 'diagonal':
        return cx + dx * 0.35 * w, cy + dy * 0.35 * w
    if motion == 'zigzag':
        return (cx + dx * 0.5 * w,
                cy + 0.1 * np.sin(4 * np.pi * u + event['phase']))
    if motion == 'still':
        return cx, cy
    raise ValueError(f'unknown motion {motion!r}')


def _shape_distance(shape: str, dx: np.ndarray,
                    dy: np.ndarray) -> np.ndarray:
    """Approximate signed distance (in radii) to a unit shape's outline."""
    if shape == 'disc':
        return np.sqrt(dx * dx + dy * dy) - 1.0
    if shape == 'square':
        return np.maximum(np.abs(dx), np.abs(dy)) - 0.85
    if shape == 'triangle':
        x, y = dx / 1.25, dy / 1.25 - 0.15
        return np.maximum(0.866 * np.abs(x) - 0.5 * y, y) - 0.5
    if shape == 'diamond':
        return (np.abs(dx) + np.abs(dy)) - 1.15
    if shape == 'ring':
        return np.abs(np.sqrt(dx * dx + dy * dy) - 0.78) - 0.24
    if shape == 'cross':
        ax, ay = np.abs(dx), np.abs(dy)
        return np.minimum(
            np.maximum(ax - 0.3, ay - 1.0), np.maximum(ax - 1.0, ay - 0.3))
    raise ValueError(f'unknown shape {shape!r}')


def _smooth_texture(seed: int, height: int, width: int) -> np.ndarray:
    """Smooth random texture in [-1, 1] of shape (H, W, 3), float32."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, (6, 6, 3)).astype(np.float32)
    ys = np.linspace(0, 5, height, dtype=np.float32)
    xs = np.linspace(0, 5, width, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), 4)
    x0 = np.minimum(xs.astype(int), 4)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _in_intervals(t: float, intervals: Sequence[Sequence[float]]) -> bool:
    return any(start <= t < end for start, end in intervals)


def iter_frames(plan: dict, config: SyntheticAVConfig,
                num_frames: Optional[int] = None) -> Iterator[np.ndarray]:
    """Render the frames of one video plan.

    Args:
        plan: from :func:`sample_video_plan`.
        config: the dataset parameters (frame size, fps).
        num_frames: how many frames to render (from the start);
            ``seconds * fps`` if None.

    Returns:
        An iterator over RGB frames, uint8 arrays of shape ``(H, W, 3)``;
        frame ``i`` shows time ``i / fps``.
    """
    fps = config.fps
    if num_frames is None:
        num_frames = plan['seconds'] * fps
    if not 0 < num_frames <= plan['seconds'] * fps:
        raise ValueError(f"num_frames must be in [1, {plan['seconds'] * fps}]"
                         f', got {num_frames}')
    return _frame_generator(plan, config, num_frames)


def _frame_generator(plan: dict, config: SyntheticAVConfig,
                     num_frames: int) -> Iterator[np.ndarray]:
    """The body of :func:`iter_frames` (arguments already checked)."""
    height, width, fps = config.height, config.width, config.fps
    size = min(height, width)
    noise_rng = np.random.default_rng([plan['seed'], 1])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    # Sensor noise: one unit field twice the frame size, scaled per scene
    # and cropped at a random offset every frame (cheaper than fresh noise,
    # same statistics).
    unit_noise = noise_rng.standard_normal((2 * height, 2 * width, 3),
                                           dtype=np.float32)
    scenes = plan['scenes']
    layer_index, layer = -1, None  # the current scene's rendered layers

    obj = plan['object']
    obj_colour = _hsv_to_rgb(obj['hue'], obj['saturation'], obj['value'])
    events = plan['events']
    sub = (np.arange(4, dtype=np.float64) + 0.5) / (4 * fps)

    def box(cx, cy, extent):
        """Pixel slices of the square of half-size ``extent`` around c."""
        y0 = max(int(cy - extent) - 1, 0)
        y1 = min(int(cy + extent) + 2, height)
        x0 = max(int(cx - extent) - 1, 0)
        x1 = min(int(cx + extent) + 2, width)
        return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))

    for i in range(num_frames):
        t = i / fps
        scene_index = _scene_index(scenes, t)
        scene = scenes[scene_index]
        bg = scene['background']
        if scene_index != layer_index:
            layer_index = scene_index
            layer = _scene_layers(scene, xx, yy, height, width)
        angle = 2 * math.pi * bg['grating_speed'] * t
        wave = layer['sin_p'] * math.cos(angle) - \
            layer['cos_p'] * math.sin(angle)
        frame = layer['static'] + wave[..., None] * layer['grating_tint']
        frame *= 1 + bg['flicker_amplitude'] * math.sin(
            2 * math.pi * bg['flicker_hz'] * t + bg['flicker_phase'])

        for blob, colour in zip(scene['blobs'], layer['blob_colours']):
            if not _in_intervals(t, blob['visible']):
                continue
            margin = blob['radius'] / size
            span = 1 + 2 * margin
            bx = ((blob['start'][0] + blob['velocity'][0] * t) % span -
                  margin) * width
            by = ((blob['start'][1] + blob['velocity'][1] * t) % span -
                  margin) * height
            sy, sx = box(bx, by, blob['radius'])
            dist = np.sqrt((xx[sy, sx] - bx)**2 + (yy[sy, sx] - by)**2)
            alpha = np.clip(1.0 - dist / blob['radius'], 0, 1)**0.5
            alpha *= blob['opacity']
            patch = frame[sy, sx]
            patch += alpha[..., None] * (colour - patch)

        second = int(t)
        if second < len(events):
            event = events[second]
            u_sub = (t + sub - event['onset']) / event['duration']
            env = float(_pulse_envelope(u_sub, plan['pulses']).mean())
            if env > 0:
                u = float(np.clip((t + 0.5 / fps - event['onset']) /
                                  event['duration'], 0, 1))
                x, y = _motion_position(plan['motion'], event, u,
                                        obj['speed'])
                semitones = float(_event_semitones(event, np.array(u)))
                pitch_rel = math.log2(event['pitch_hz'] /
                                      plan['pitch_centre_hz']) * 12
                radius = obj['radius'] * 2**(-(pitch_rel + semitones) / 8)
                if plan['motion'] == 'still':
                    radius *= 0.85 + 0.3 * env
                x = min(max(x, radius / width), 1 - radius / width) * width
                y = min(max(y, radius / height), 1 - radius / height) * height
                sy, sx = box(x, y, 1.6 * radius)
                dist = _shape_distance(plan['shape'],
                                       (xx[sy, sx] - x) / radius,
                                       (yy[sy, sx] - y) / radius)
                mask = np.clip(0.5 - dist * radius, 0, 1)
                opacity = event['loudness'] * min(1.0, 0.35 + env)
                patch = frame[sy, sx]
                patch += (opacity * mask)[..., None] * (obj_colour - patch)

        oy = int(noise_rng.integers(0, height))
        ox = int(noise_rng.integers(0, width))
        frame += bg['noise_sigma'] * unit_noise[oy:oy + height,
                                                ox:ox + width]
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def _scene_index(scenes: Sequence[dict], t: float) -> int:
    """Index of the scene that shows time ``t`` (the last one past the
    end)."""
    for index, scene in enumerate(scenes):
        if t < scene['end']:
            return index
    return len(scenes) - 1


def _scene_layers(scene: dict, xx: np.ndarray, yy: np.ndarray, height: int,
                  width: int) -> dict:
    """The time-independent layers of a scene's background, and the RGB
    colours of its blobs."""
    bg = scene['background']
    # Static part: two-colour gradient along a random direction + texture.
    ramp = (np.cos(bg['angle']) * (xx / width - 0.5) +
            np.sin(bg['angle']) * (yy / height - 0.5) + 0.5)
    ramp = np.clip(ramp, 0, 1)[..., None]
    c0, c1 = (_hsv_to_rgb(*c) for c in bg['colours'])
    static = c0 * (1 - ramp) + c1 * ramp
    static = static + bg['texture_amplitude'] * _smooth_texture(
        bg['texture_seed'], height, width)
    # Drifting grating (background motion): sin(p - w t) expanded so that
    # each frame costs two multiply-adds.
    k = 2 * np.pi / bg['grating_period']
    grating_phase = k * (np.cos(bg['grating_angle']) * xx +
                         np.sin(bg['grating_angle']) * yy)
    return dict(
        static=static.astype(np.float32),
        sin_p=(bg['grating_amplitude'] *
               np.sin(grating_phase)).astype(np.float32),
        cos_p=(bg['grating_amplitude'] *
               np.cos(grating_phase)).astype(np.float32),
        grating_tint=np.asarray(bg['grating_tint'], np.float32),
        blob_colours=[_hsv_to_rgb(*b['colour']) for b in scene['blobs']])


def render_frames(plan: dict, config: SyntheticAVConfig,
                  num_frames: Optional[int] = None) -> np.ndarray:
    """All frames of a plan as one uint8 array of shape ``(T, H, W, 3)``."""
    return np.stack(list(iter_frames(plan, config, num_frames)))


def _partials_wave(phase: np.ndarray, timbre: str, freq: np.ndarray,
                   v: np.ndarray, sample_rate: int) -> np.ndarray:
    """Sum of a timbre's partials; partials above 0.45 * sr are dropped."""
    out = np.zeros_like(phase)
    total = 0.0
    for ratio, amp, decay in TIMBRES[timbre]:
        if ratio * float(np.max(freq)) >= 0.45 * sample_rate:
            continue
        partial = amp * np.sin(ratio * phase)
        if decay:
            partial *= np.exp(-decay * v)
        out += partial
        total += amp
    return out / max(total, 1e-6)


def render_audio(plan: dict, config: SyntheticAVConfig,
                 num_samples: Optional[int] = None) -> np.ndarray:
    """Synthesise the mono soundtrack of one video plan.

    Returns:
        float32 array of shape ``(N,)`` with values in ``[-0.9, 0.9]``,
        ``N = seconds * sample_rate`` unless ``num_samples`` is given.
    """
    sr = config.sample_rate
    total = plan['seconds'] * sr
    if num_samples is None:
        num_samples = total
    if not 0 < num_samples <= total:
        raise ValueError(f'num_samples must be in [1, {total}], got '
                         f'{num_samples}')
    rng = np.random.default_rng([plan['seed'], 2])
    audio = np.zeros(total, np.float64)

    for event in plan['events']:
        start = int(round(event['onset'] * sr))
        stop = min(total, start + int(round(event['duration'] * sr)))
        u = (np.arange(start, stop) / sr - event['onset']) / event['duration']
        freq = event['pitch_hz'] * 2**(_event_semitones(event, u) / 12)
        phase = 2 * np.pi * np.cumsum(freq) / sr
        v = (np.clip(u, 0, 1) * plan['pulses']) % 1.0
        wave = _partials_wave(phase, plan['timbre'], freq, v, sr)
        env = _pulse_envelope(u, plan['pulses'])
        audio[start:stop] += (EVENT_AMPLITUDE * event['loudness'] * env *
                              wave)

    for tone in plan['distractor_tones']:
        start = int(round(tone['onset'] * sr))
        stop = min(total, start + int(round(tone['duration'] * sr)))
        u = np.linspace(0, 1, stop - start, endpoint=False)
        freq = tone['freq_hz'] * 2**(tone['sweep'] * u / 12)
        phase = 2 * np.pi * np.cumsum(freq) / sr
        wave = _partials_wave(phase, tone['timbre'], freq, u, sr)
        audio[start:stop] += tone['amplitude'] * np.sin(np.pi * u) * wave

    click_len = max(2, int(0.005 * sr))
    click_env = np.exp(-np.arange(click_len) / (0.001 * sr))
    for click in plan['clicks']:
        start = int(click['time'] * sr)
        stop = min(total, start + click_len)
        burst = rng.standard_normal(stop - start) * click_env[:stop - start]
        audio[start:stop] += click['amplitude'] * burst

    # Background noise and hum, drawn afresh for every scene.
    for scene in plan['scenes']:
        noise = scene['noise']
        start = int(round(scene['start'] * sr))
        stop = min(total, int(round(scene['end'] * sr)))
        length = stop - start
        if length < 2:
            continue
        spectrum = np.fft.rfft(rng.standard_normal(length))
        freqs = np.fft.rfftfreq(length, 1 / sr)
        spectrum[1:] /= freqs[1:]**(noise['alpha'] / 2)
        spectrum[0] = 0
        coloured = np.fft.irfft(spectrum, n=length)
        coloured /= max(float(np.std(coloured)), 1e-12)
        t = np.arange(start, stop) / sr
        audio[start:stop] += noise['level'] * coloured + \
            noise['hum_level'] * np.sin(2 * np.pi * noise['hum_hz'] * t)

    peak = float(np.max(np.abs(audio)))
    if peak > 0.9:
        audio *= 0.9 / peak
    return audio[:num_samples].astype(np.float32)


# --------------------------------------------------------------------------
# Encoding.
# --------------------------------------------------------------------------


def _encode_mp4(path: str,
                frames: Iterator[np.ndarray],
                audio: Optional[np.ndarray],
                config: SyntheticAVConfig,
                faststart: bool = False) -> None:
    """Write H.264 frames (``(H, W, 3)`` uint8) and mono AAC audio
    (``(N,)`` float32, or None for a video-only file) to an mp4 file."""
    import av

    options = {'movflags': '+faststart'} if faststart else {}
    with av.open(path, 'w', format='mp4', options=options) as container:
        vstream = container.add_stream('libx264', rate=config.fps)
        vstream.width = config.width
        vstream.height = config.height
        vstream.pix_fmt = 'yuv420p'
        vstream.codec_context.thread_count = 1
        vstream.codec_context.gop_size = config.fps
        vstream.options = {'preset': 'veryfast', 'crf': '23'}
        astream = None
        if audio is not None:
            astream = container.add_stream(
                'aac', rate=config.sample_rate, layout='mono')
            astream.codec_context.thread_count = 1
            astream.bit_rate = 48000
            astream.options = {'aac_coder': 'fast'}
        time_base = Fraction(1, config.fps)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format='rgb24')
            frame.pts = i
            frame.time_base = time_base
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode())
        if astream is not None:
            chunk = 1024
            audio_tb = Fraction(1, config.sample_rate)
            for start in range(0, len(audio), chunk):
                piece = np.ascontiguousarray(
                    audio[start:start + chunk], np.float32)[None]
                frame = av.AudioFrame.from_ndarray(
                    piece, format='fltp', layout='mono')
                frame.sample_rate = config.sample_rate
                frame.pts = start
                frame.time_base = audio_tb
                container.mux(astream.encode(frame))
            container.mux(astream.encode())
