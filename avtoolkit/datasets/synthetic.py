"""Synthetic audio-visual demo data with a learnable audio-visual structure.

The generator writes real ``.mp4`` files (H.264 video, AAC audio) with PyAV,
so that every loader, transform and model of the toolkit can be exercised end
to end without downloading a dataset.  The content is built so that
self-supervised audio-visual pretraining has something to discover and a
linear probe has something to measure.

Design
------
Every video has one latent **class** ``c`` (its label).  A class fixes one
visual recipe and one sound recipe (see :func:`class_specs`):

* visual: object colour (hue, evenly spaced around the colour wheel), object
  shape (disc, square, triangle, diamond, ring, cross) and motion pattern
  (horizontal sweep, vertical sweep, orbit, diagonal, zigzag, still);
* audio: base pitch (log-spaced over three octaves, 220-1760 Hz, assigned in
  a fixed scrambled order so that classes with neighbouring hues seldom have
  neighbouring pitches), timbre (pure, hollow/odd harmonics, bright/all
  harmonics, bell/inharmonic partials) and rhythm (1, 2 or 3 pulses per
  event).

Each whole second ``s`` of a video holds one **event** that both modalities
share.  The event has its own random onset (0.02-0.38 s into the second),
duration (0.42-0.58 s), loudness, pitch glide (+-1 semitone over the event),
vertical start position and motion direction.  Its pitch offset and its
horizontal start position follow the class's **motif**: a cycle of four steps
(one of the six cyclic orders of -3, -1, +1, +3 semitones; left to right
across the frame) entered at a random phase per video, with +-0.5 semitone of
jitter.  A masked
second can therefore be predicted from its neighbours only by a model that
knows the motif, i.e. the class: the long-range structure the Transformers
are meant to capture.
The object is only visible while the sound plays, its opacity follows the
pulse envelope of the sound (it flashes with the rhythm) and its size follows
the instantaneous pitch (higher pitch, smaller object).  The correspondence
is therefore per second and even per frame, not only per video: a second of
audio matches its own second of video better than any other second of the
same video.

Nuisance variation keeps the task from being trivial:

* per video: hue jitter (+-9 degrees), saturation/brightness, object size,
  pitch offset (+-0.5 semitone), motion speed;
* visual distractors: a dull random two-colour gradient with a smooth static
  texture, a drifting low-contrast grating (background motion), one to three
  semi-transparent distractor blobs of random colour that wander on their own
  schedule, a slow global brightness flicker and sensor noise;
* audio distractors: coloured (1/f^alpha) background noise, a faint mains-like
  hum, short distractor tones and chirps at random pitches and random times,
  and clicks.  None of them is aligned with anything in the picture.

**Scenes.**  The video is cut into scenes of ``scene_seconds`` (default 1):
the background layers, the distractor blobs and the audio background (noise
colour and level, hum) are drawn afresh for every scene, as after a cut to
another shot.  What stays the same across the seconds of a video is then the
class's object and sound (plus their small per-video jitter), not the
backdrop.  With one scene per video (``scene_seconds=0``, the behaviour of
format version 2) the large, static, per-video backdrop is the easiest way to
tell one video from another, and contrastive pretraining on such data learns
to recognise backdrops instead of classes: on the demo, pretrained linear
probes fell below those of random weights.

Because the per-second pitch range of a class overlaps the ranges of its
pitch neighbours and the object covers only a small part of the frame, no
single global statistic (mean colour, dominant frequency) identifies the
class perfectly; combining shape, motion, colour, timbre, rhythm and pitch
does.

Determinism
-----------
Video ``i`` is drawn from ``numpy.random.SeedSequence(seed, spawn_key=(i,))``
only, so its decoded content does not depend on the number of worker
processes, on the order of generation or on the other videos.  The encoders
run single-threaded, which makes the encoded bytes reproducible as well.
Labels are balanced over classes and shuffled with a generator derived from
``seed``; the train/val split is stratified by class.

Output layout::

    OUT_DIR/videos/synth_00000.mp4 ...
    OUT_DIR/train_list.txt        # "videos/<name>.mp4 <label>" per line
    OUT_DIR/val_list.txt
    OUT_DIR/classes.txt           # class descriptions, line i = label i
    OUT_DIR/summary.json          # parameters, counts, per-video events
    OUT_DIR/.synthetic_av.json    # ownership marker with the parameters
    OUT_DIR/broken/*.mp4          # only with ``broken=True``
"""
import dataclasses
import json
import math
import multiprocessing
import os
import os.path as osp
import sys
import time
from fractions import Fraction
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

GENERATOR_NAME = 'avtoolkit.datasets.synthetic'
FORMAT_VERSION = 3
MARKER_FILE = '.synthetic_av.json'
SUMMARY_FILE = 'summary.json'
VIDEO_DIR = 'videos'
BROKEN_DIR = 'broken'
VIDEO_PREFIX = 'synth_'

# Sample rates the AAC encoder accepts.
AAC_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100,
                    48000, 64000, 88200, 96000)

SHAPES = ('disc', 'square', 'triangle', 'diamond', 'ring', 'cross')
MOTIONS = ('horizontal sweep', 'vertical sweep', 'orbit', 'diagonal',
           'zigzag', 'still')
# (frequency ratio, amplitude, extra decay rate per pulse); the fundamental
# is the strongest partial of every timbre.
TIMBRES = {
    'pure': ((1.0, 1.0, 0.0), ),
    'hollow': ((1.0, 1.0, 0.0), (3.0, 0.45, 0.0), (5.0, 0.25, 0.0),
               (7.0, 0.12, 0.0)),
    'bright': ((1.0, 1.0, 0.0), (2.0, 0.5, 0.0), (3.0, 0.33, 0.0),
               (4.0, 0.25, 0.0), (5.0, 0.2, 0.0), (6.0, 0.16, 0.0)),
    'bell': ((1.0, 1.0, 1.5), (2.76, 0.55, 3.0), (5.40, 0.3, 4.5),
             (8.93, 0.15, 6.0)),
}
TIMBRE_NAMES = tuple(TIMBRES)
RHYTHMS = (1, 2, 3)
MOTIF_STEPS = (-3.0, -1.0, 1.0, 3.0)  # semitones
COLOUR_NAMES = ('red', 'orange', 'yellow', 'chartreuse', 'green',
                'spring green', 'cyan', 'azure', 'blue', 'violet', 'magenta',
                'rose')
PITCH_MIN_HZ = 220.0
PITCH_MAX_HZ = 1760.0
MAX_CLASSES = 30
EVENT_AMPLITUDE = 0.35


@dataclasses.dataclass(frozen=True)
class SyntheticAVConfig:
    """Parameters that fully determine a generated dataset.

    Args:
        num_videos: number of videos (>= 1).
        seconds: duration of every video in whole seconds (>= 1); one
            audio-visual event per second.
        num_classes: number of latent classes (2 to 30).
        seed: master seed.
        height, width: frame size in pixels (even, >= 32).
        fps: frames per second (integer, >= 4).
        sample_rate: audio sample rate in Hz (one of the AAC rates).
        val_fraction: fraction of each class that goes to the val list,
            in ``[0, 1)``.
        scene_seconds: length in whole seconds of a **scene**: the visual
            background (gradient, texture, grating, flicker, sensor noise),
            the distractor blobs and the audio background (coloured noise,
            hum) are drawn afresh for every scene, so that only the class's
            object and sound stay the same across a video.  0 keeps one
            scene for the whole video.  Default 1: a new scene every second.
    """
    num_videos: int = 100
    seconds: int = 8
    num_classes: int = 10
    seed: int = 0
    height: int = 128
    width: int = 128
    fps: int = 16
    sample_rate: int = 16000
    val_fraction: float = 0.2
    scene_seconds: int = 1

    def __post_init__(self):
        def check_int(name, low, high=None):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(
                    value, (int, np.integer)):
                raise TypeError(f'{name} must be an integer, got '
                                f'{type(value).__name__} {value!r}')
            if value < low or (high is not None and value > high):
                bound = f'>= {low}' if high is None else f'in [{low}, {high}]'
                raise ValueError(f'{name} must be {bound}, got {value}')

        check_int('num_videos', 1)
        check_int('seconds', 1, 3600)
        check_int('num_classes', 2, MAX_CLASSES)
        check_int('seed', 0, 2**63 - 1)
        check_int('height', 32, 4096)
        check_int('width', 32, 4096)
        check_int('fps', 4, 120)
        check_int('sample_rate', 1)
        check_int('scene_seconds', 0, 3600)
        for name in ('height', 'width'):
            if getattr(self, name) % 2:
                raise ValueError(f'{name} must be even for yuv420p H.264, '
                                 f'got {getattr(self, name)}')
        if self.sample_rate not in AAC_SAMPLE_RATES:
            raise ValueError(f'sample_rate must be one of {AAC_SAMPLE_RATES} '
                             f'(AAC), got {self.sample_rate}')
        if isinstance(self.val_fraction, bool) or not isinstance(
                self.val_fraction, (int, float)) or not (
                    0.0 <= self.val_fraction < 1.0):
            raise ValueError('val_fraction must be a number in [0, 1), got '
                             f'{self.val_fraction!r}')

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        return {k: (float(v) if k == 'val_fraction' else int(v))
                for k, v in out.items()}


@dataclasses.dataclass(frozen=True)
class ClassSpec:
    """The audio and visual recipe of one latent class."""
    label: int
    hue: float  # in [0, 1)
    colour: str
    shape: str
    motion: str
    pitch_hz: float
    timbre: str
    pulses: int

    @property
    def motif(self) -> tuple:
        """The class's four-step pitch motif in semitones."""
        return class_motif(self.label)

    def describe(self) -> str:
        plural = 'pulse' if self.pulses == 1 else 'pulses'
        motif = ' '.join(f'{m:+.0f}' for m in self.motif)
        return (f'{self.colour} {self.shape}, {self.motion} '
                f'(hue {self.hue * 360:.0f} deg); '
                f'{self.pitch_hz:.0f} Hz {self.timbre} tone, '
                f'{self.pulses} {plural} per event; motif {motif}')


def _pitch_ranks(n: int) -> List[int]:
    """A fixed scrambled order of ``n`` pitch ranks.

    Class ``c`` gets the rank of ``frac(c * golden ratio)`` among all
    classes, so classes with neighbouring hues rarely get neighbouring
    pitches and colour order says little about pitch order.
    """
    keys = [(c * 0.6180339887498949) % 1.0 for c in range(n)]
    order = sorted(range(n), key=lambda c: keys[c])
    ranks = [0] * n
    for rank, c in enumerate(order):
        ranks[c] = rank
    return ranks


def class_motif(label: int) -> tuple:
    """The four-step pitch motif (semitones) of class ``label``.

    Videos enter the cycle at a random phase, so only the cyclic order of
    :data:`MOTIF_STEPS` matters: there are six, written here starting at
    the lowest step.  Classes ``c`` and ``c + 6`` (which share a shape) get
    different cycles.
    """
    import itertools
    low, *rest = MOTIF_STEPS
    cycles = [(low, ) + p for p in itertools.permutations(rest)]
    return cycles[(int(label) + int(label) // len(cycles)) % len(cycles)]


def class_specs(num_classes: int) -> List[ClassSpec]:
    """The recipes of all classes; depends on ``num_classes`` only."""
    if isinstance(num_classes, bool) or not isinstance(
            num_classes, (int, np.integer)) or not (
                2 <= num_classes <= MAX_CLASSES):
        raise ValueError(f'num_classes must be an integer in [2, '
                         f'{MAX_CLASSES}], got {num_classes!r}')
    ranks = _pitch_ranks(num_classes)
    specs = []
    for c in range(num_classes):
        hue = c / num_classes
        colour = COLOUR_NAMES[int(round(hue * 12)) % 12]
        pitch_rank = ranks[c]
        pitch = PITCH_MIN_HZ * (PITCH_MAX_HZ / PITCH_MIN_HZ)**(
            pitch_rank / (num_classes - 1))
        specs.append(
            ClassSpec(
                label=c,
                hue=hue,
                colour=colour,
                shape=SHAPES[c % len(SHAPES)],
                motion=MOTIONS[(c + c // len(SHAPES)) % len(MOTIONS)],
                pitch_hz=float(pitch),
                timbre=TIMBRE_NAMES[(c + 1) % len(TIMBRE_NAMES)],
                pulses=RHYTHMS[(c + c // len(RHYTHMS)) % len(RHYTHMS)]))
    return specs


def video_seed(seed: int, index: int) -> int:
    """The 63-bit seed of video ``index``, independent of all other videos."""
    state = np.random.SeedSequence(seed, spawn_key=(index, )).generate_state(
        2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


# --------------------------------------------------------------------------
# Plans: every random choice of one video, drawn before any rendering.
# --------------------------------------------------------------------------


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (all in [0, 1]) -> RGB float array in [0, 255]."""
    h = (h % 1.0) * 6.0
    i = int(h) % 6
    f = h - int(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v),
           (v, p, q)][i]
    return np.array(rgb, dtype=np.float32) * 255.0


def _on_off_intervals(rng: np.random.Generator, duration: float,
                      mean_on: float, mean_off: float) -> List[list]:
    """Random visibility intervals ``[start, end)`` covering ``duration``."""
    intervals = []
    t = float(rng.uniform(-mean_on, mean_off))
    while t < duration:
        on = float(rng.exponential(mean_on)) + 0.1
        if t + on > 0:
            intervals.append([max(t, 0.0), min(t + on, float(duration))])
        t += on + float(rng.exponential(mean_off)) + 0.1
    return intervals


def sample_video_plan(config: SyntheticAVConfig, index: int,
                      label: int) -> dict:
    """Draw every random choice of video ``index`` (cheap, no rendering).

    Returns:
        A JSON-serialisable dict: the class recipe with its per-video
        jitter, ``events`` (one per second, with absolute ``onset`` and
        ``duration`` in seconds, ``pitch_hz`` at the event centre,
        ``glide`` in semitones, ``loudness``, motion parameters) and the
        parameters of every distractor.
    """
    if not 0 <= label < config.num_classes:
        raise ValueError(f'label must be in [0, {config.num_classes}), got '
                         f'{label}')
    if index < 0:
        raise ValueError(f'index must be >= 0, got {index}')
    spec = class_specs(config.num_classes)[label]
    seed = video_seed(config.seed, index)
    rng = np.random.default_rng([seed, 0])
    size = min(config.height, config.width)

    obj = dict(
        hue=float((spec.hue + rng.uniform(-0.025, 0.025)) % 1.0),
        saturation=float(rng.uniform(0.75, 1.0)),
        value=float(rng.uniform(0.85, 1.0)),
        radius=float(rng.uniform(0.13, 0.18) * size),
        speed=float(rng.uniform(0.8, 1.2)),
        pitch_offset=float(rng.uniform(-1.0, 1.0)),
    )
    motif = class_motif(label)
    phase = int(rng.integers(len(motif)))
    events = []
    for s in range(config.seconds):
        onset = s + float(rng.uniform(0.02, 0.38))
        duration = float(rng.uniform(0.42, 0.58))
        step = motif[(phase + s) % len(motif)]
        semitones = obj['pitch_offset'] + step + float(rng.uniform(-0.5, 0.5))
        # left to right with the motif step, a little jitter
        x_centre = 0.5 + 0.2 * step / max(MOTIF_STEPS) + float(
            rng.uniform(-0.04, 0.04))
        events.append(
            dict(
                second=s,
                onset=onset,
                duration=duration,
                motif_step=float(step),
                pitch_hz=float(spec.pitch_hz * 2**(semitones / 12)),
                glide=float(rng.uniform(-1.0, 1.0)),
                loudness=float(rng.uniform(0.55, 1.0)),
                centre=[float(x_centre), float(rng.uniform(0.3, 0.7))],
                direction=[float(rng.choice([-1.0, 1.0])),
                           float(rng.choice([-1.0, 1.0]))],
                phase=float(rng.uniform(0, 2 * np.pi)),
            ))

    nyquist_safe = 0.45 * config.sample_rate
    distractor_tones = []
    clicks = []
    for s in range(config.seconds):
        if rng.uniform() < 0.6:
            dur = float(rng.uniform(0.05, 0.25))
            f0 = float(np.exp(rng.uniform(np.log(150.0),
                                          np.log(min(3500.0, nyquist_safe)))))
            distractor_tones.append(
                dict(
                    onset=s + float(rng.uniform(0, 1 - dur)),
                    duration=dur,
                    freq_hz=f0,
                    sweep=float(rng.choice([0.0, rng.uniform(-12, 12)])),
                    amplitude=float(rng.uniform(0.08, 0.3) *
                                    EVENT_AMPLITUDE),
                    timbre=TIMBRE_NAMES[int(rng.integers(len(TIMBRES)))],
                ))
        for _ in range(int(rng.poisson(1.0))):
            clicks.append(
                dict(time=s + float(rng.uniform(0, 0.995)),
                     amplitude=float(rng.uniform(0.1, 0.3))))
    scenes = [
        _sample_scene(rng, start, end, size)
        for start, end in scene_bounds(config.seconds, config.scene_seconds)
    ]
    return dict(
        index=int(index),
        label=int(label),
        seed=seed,
        seconds=int(config.seconds),
        pitch_centre_hz=float(spec.pitch_hz),
        shape=spec.shape,
        motion=spec.motion,
        timbre=spec.timbre,
        pulses=spec.pulses,
        object=obj,
        events=events,
        scenes=scenes,
        distractor_tones=distractor_tones,
        clicks=clicks,
    )


def scene_bounds(seconds: int, scene_seconds: int) -> List[tuple]:
    """``[(start, end), ...]`` in seconds of the scenes of a video."""
    if scene_seconds <= 0 or scene_seconds >= seconds:
        return [(0, seconds)]
    return [(start, min(start + scene_seconds, seconds))
            for start in range(0, seconds, scene_seconds)]


def _sample_scene(rng: np.random.Generator, start: int, end: int,
                  size: int) -> dict:
    """Background, distractor blobs and audio background of one scene
    covering ``[start, end)`` seconds (blob visibility in absolute time)."""
    background = dict(
        colours=[[float(rng.uniform()), float(rng.uniform(0.0, 0.45)),
                  float(rng.uniform(0.12, 0.45))] for _ in range(2)],
        angle=float(rng.uniform(0, 2 * np.pi)),
        texture_amplitude=float(rng.uniform(6, 16)),
        texture_seed=int(rng.integers(0, 2**31)),
        grating_period=float(rng.uniform(0.1, 0.3) * size),
        grating_angle=float(rng.uniform(0, 2 * np.pi)),
        grating_speed=float(rng.uniform(0.3, 1.5) * rng.choice([-1, 1])),
        grating_amplitude=float(rng.uniform(5, 15)),
        grating_tint=[float(x) for x in rng.uniform(0.4, 1.0, 3)],
        flicker_amplitude=float(rng.uniform(0.0, 0.05)),
        flicker_hz=float(rng.uniform(0.1, 0.6)),
        flicker_phase=float(rng.uniform(0, 2 * np.pi)),
        noise_sigma=float(rng.uniform(1.5, 4.0)),
    )
    blobs = []
    for _ in range(int(rng.integers(1, 4))):
        visible = _on_off_intervals(rng, end - start, 1.5, 1.0)
        blobs.append(
            dict(
                colour=[float(rng.uniform()), float(rng.uniform(0.25, 0.7)),
                        float(rng.uniform(0.4, 0.8))],
                radius=float(rng.uniform(0.05, 0.1) * size),
                opacity=float(rng.uniform(0.45, 0.8)),
                start=[float(rng.uniform()), float(rng.uniform())],
                velocity=[float(rng.uniform(-0.25, 0.25)),
                          float(rng.uniform(-0.25, 0.25))],
                visible=[[a + start, b + start] for a, b in visible],
            ))
    noise = dict(
        alpha=float(rng.uniform(0.5, 1.5)),
        level=float(rng.uniform(0.01, 0.04)),
        hum_hz=float(rng.uniform(50, 120)),
        hum_level=float(rng.uniform(0.003, 0.015)),
    )
    return dict(start=float(start), end=float(end), background=background,
                blobs=blobs, noise=noise)


# --------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------


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


def _generate_one(job: dict) -> dict:
    """Render and encode one video; returns its summary entry."""
    config = SyntheticAVConfig(**job['config'])
    plan = sample_video_plan(config, job['index'], job['label'])
    path = job['path']
    if not job.get('reuse'):
        part = path + '.part'
        _encode_mp4(part, iter_frames(plan, config),
                    render_audio(plan, config), config)
        os.replace(part, path)
    return _video_entry(plan, job, config)


def _video_entry(plan: dict, job: dict, config: SyntheticAVConfig) -> dict:
    keep = ('onset', 'duration', 'pitch_hz', 'glide', 'loudness')
    return dict(
        name=job['name'],
        path=job['rel_path'],
        label=plan['label'],
        split=job['split'],
        seed=plan['seed'],
        bytes=osp.getsize(job['path']),
        num_frames=config.seconds * config.fps,
        num_audio_samples=config.seconds * config.sample_rate,
        events=[{k: round(e[k], 6) for k in keep} for e in plan['events']],
    )


# --------------------------------------------------------------------------
# Dataset generation.
# --------------------------------------------------------------------------


def _assign_labels_and_splits(config: SyntheticAVConfig) -> tuple:
    """Balanced shuffled labels and a class-stratified train/val split."""
    rng = np.random.default_rng(
        np.random.SeedSequence(config.seed, spawn_key=(2**32 - 1, )))
    labels = np.arange(config.num_videos) % config.num_classes
    labels = labels[rng.permutation(config.num_videos)]
    splits = ['train'] * config.num_videos
    for c in range(config.num_classes):
        members = np.flatnonzero(labels == c)
        n_val = int(round(config.val_fraction * len(members)))
        n_val = min(n_val, max(len(members) - 1, 0))
        for idx in rng.permutation(members)[:n_val]:
            splits[int(idx)] = 'val'
    return [int(x) for x in labels], splits


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_text_atomic(path: str, text: str) -> None:
    tmp = path + '.part'
    with open(tmp, 'w', newline='') as f:
        f.write(text)
    os.replace(tmp, path)


def _is_generator_output(out_dir: str) -> bool:
    for name in (MARKER_FILE, SUMMARY_FILE):
        data = _read_json(osp.join(out_dir, name))
        if data is not None and data.get('generator') == GENERATOR_NAME:
            return True
    return False


def _is_complete(out_dir: str, params: dict) -> Optional[dict]:
    """The stored summary if ``out_dir`` holds a finished dataset with
    exactly these parameters, else None."""
    summary = _read_json(osp.join(out_dir, SUMMARY_FILE))
    if (summary is None or summary.get('generator') != GENERATOR_NAME
            or summary.get('format_version') != FORMAT_VERSION
            or summary.get('params') != params):
        return None
    for name in ('train_list.txt', 'val_list.txt', 'classes.txt'):
        if not osp.isfile(osp.join(out_dir, name)):
            return None
    videos = summary.get('videos', [])
    if len(videos) != params['num_videos']:
        return None
    for video in videos:
        path = osp.join(out_dir, video['path'])
        if not osp.isfile(path) or osp.getsize(path) != video['bytes']:
            return None
    return summary


def _remove_generator_files(out_dir: str) -> None:
    """Delete what this generator writes (and nothing else) in out_dir."""
    for name in (SUMMARY_FILE, MARKER_FILE, 'train_list.txt', 'val_list.txt',
                 'classes.txt'):
        for path in (osp.join(out_dir, name),
                     osp.join(out_dir, name + '.part')):
            if osp.isfile(path):
                os.remove(path)
    video_dir = osp.join(out_dir, VIDEO_DIR)
    if osp.isdir(video_dir):
        for name in os.listdir(video_dir):
            if name.startswith(VIDEO_PREFIX) and (
                    name.endswith('.mp4') or name.endswith('.mp4.part')):
                os.remove(osp.join(video_dir, name))
        if not os.listdir(video_dir):
            os.rmdir(video_dir)
    broken_dir = osp.join(out_dir, BROKEN_DIR)
    if osp.isdir(broken_dir):
        for name in BROKEN_KINDS:
            path = osp.join(broken_dir, name + '.mp4')
            if osp.isfile(path):
                os.remove(path)
        if not os.listdir(broken_dir):
            os.rmdir(broken_dir)


def _human_bytes(n: float) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return f'{n:.1f} {unit}' if unit != 'B' else f'{int(n)} B'
        n /= 1024
    return f'{n:.1f} GiB'


def format_summary(summary: dict) -> str:
    """Human-readable text of a summary from :func:`generate_synthetic_av`."""
    params = summary['params']
    lines = [
        f"Synthetic audio-visual dataset in {summary['out_dir']}",
        f"  videos: {summary['num_videos']} x {params['seconds']} s "
        f"({params['width']}x{params['height']} @ {params['fps']} fps, "
        f"audio {params['sample_rate']} Hz mono AAC), "
        f"{params['num_classes']} classes, seed {params['seed']}",
    ]
    for split in ('train', 'val'):
        info = summary['splits'][split]
        per_class = ' '.join(f'{c}:{n}' for c, n in enumerate(
            info['per_class']))
        lines.append(f"  {split:5s}: {info['num_videos']:4d} videos, "
                     f"{info['seconds']} s  [per class {per_class}]")
    lines.append(f"  total: {summary['total_seconds']} s of media, "
                 f"{_human_bytes(summary['total_bytes'])}")
    if summary.get('skipped'):
        lines.append('  status: already complete with these parameters, '
                     'nothing generated '
                     f"(checked in {summary['elapsed_s']:.2f} s; original "
                     f"generation took {summary['generation_time_s']:.1f} s)")
    else:
        lines.append(f"  status: generated {summary['generated']} videos "
                     f"(reused {summary['reused']}) in "
                     f"{summary['generation_time_s']:.1f} s with "
                     f"{summary['workers']} worker(s)")
    for kind, path in sorted(summary.get('broken', {}).items()):
        lines.append(f'  broken input [{kind}]: {path}')
    return '\n'.join(lines)


def generate_synthetic_av(out_dir: str,
                          num_videos: int = 100,
                          seconds: int = 8,
                          num_classes: int = 10,
                          seed: int = 0,
                          *,
                          height: int = 128,
                          width: int = 128,
                          fps: int = 16,
                          sample_rate: int = 16000,
                          val_fraction: float = 0.2,
                          scene_seconds: int = 1,
                          workers: int = 1,
                          overwrite: bool = False,
                          broken: bool = False,
                          verbose: bool = True) -> dict:
    """Generate (or verify) a synthetic audio-visual dataset in ``out_dir``.

    Args:
        out_dir: output folder; created if missing.
        num_videos, seconds, num_classes, seed, height, width, fps,
        sample_rate, val_fraction, scene_seconds: see
        :class:`SyntheticAVConfig`.
        workers: worker processes (content does not depend on it).
        overwrite: allow writing into a non-empty folder that was not made
            by this generator (only the generator's own file names are
            replaced; other files are left alone).
        broken: also write the broken inputs of :func:`write_broken_inputs`
            into ``out_dir/broken``.
        verbose: show a progress bar and print the summary.

    Returns:
        The summary dict (also stored as ``summary.json``) plus
        ``out_dir``, ``skipped`` (True if a complete dataset with the same
        parameters was already there), ``elapsed_s`` (this call) and
        ``broken`` (kind -> path) when requested.

    Raises:
        FileExistsError: ``out_dir`` is non-empty, was not written by this
            generator and ``overwrite`` is False.
        NotADirectoryError: ``out_dir`` is an existing file.
        ValueError, TypeError: invalid parameters.
    """
    start_time = time.time()
    config = SyntheticAVConfig(
        num_videos=num_videos,
        seconds=seconds,
        num_classes=num_classes,
        seed=seed,
        height=height,
        width=width,
        fps=fps,
        sample_rate=sample_rate,
        val_fraction=val_fraction,
        scene_seconds=scene_seconds)
    if isinstance(workers, bool) or not isinstance(workers, int) or \
            workers < 1:
        raise ValueError(f'workers must be a positive integer, got '
                         f'{workers!r}')
    params = config.to_dict()
    out_dir = osp.abspath(out_dir)
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise NotADirectoryError(f'{out_dir} exists and is not a folder')

    existing = osp.isdir(out_dir) and bool(os.listdir(out_dir))
    if existing:
        summary = _is_complete(out_dir, params)
        if summary is not None:
            summary.update(out_dir=out_dir, skipped=True,
                           elapsed_s=time.time() - start_time)
            if broken:
                summary['broken'] = write_broken_inputs(
                    osp.join(out_dir, BROKEN_DIR), seed=config.seed,
                    height=config.height, width=config.width,
                    fps=config.fps, sample_rate=config.sample_rate)
            if verbose:
                print(f'{out_dir} already holds a complete synthetic dataset '
                      'with the same parameters; skipping generation.')
                print(format_summary(summary))
            return summary
        marker = _read_json(osp.join(out_dir, MARKER_FILE))
        if marker is not None and marker.get('generator') == GENERATOR_NAME \
                and marker.get('format_version') == FORMAT_VERSION \
                and marker.get('params') == params:
            if verbose:
                print(f'Resuming the unfinished synthetic dataset in '
                      f'{out_dir}.')
        elif _is_generator_output(out_dir) or overwrite:
            if verbose:
                print(f'Replacing the synthetic dataset files in {out_dir} '
                      '(different parameters or overwrite requested).')
            _remove_generator_files(out_dir)
        else:
            raise FileExistsError(
                f'{out_dir} is not empty and was not written by the '
                'synthetic data generator; choose another folder or pass '
                'overwrite=True (--overwrite)')

    video_dir = osp.join(out_dir, VIDEO_DIR)
    os.makedirs(video_dir, exist_ok=True)
    _write_text_atomic(
        osp.join(out_dir, MARKER_FILE),
        json.dumps(dict(generator=GENERATOR_NAME,
                        format_version=FORMAT_VERSION, params=params),
                   indent=1))

    # Finished videos of an interrupted run with the same parameters are
    # kept (each was renamed into place only once fully written); a size
    # that disagrees with an older summary means the file is regenerated.
    old_summary = _read_json(osp.join(out_dir, SUMMARY_FILE))
    recorded = {}
    if old_summary is not None and old_summary.get('params') == params:
        recorded = {v.get('path'): v.get('bytes')
                    for v in old_summary.get('videos', [])}

    labels, splits = _assign_labels_and_splits(config)
    jobs = []
    for index in range(config.num_videos):
        name = f'{VIDEO_PREFIX}{index:05d}'
        rel_path = f'{VIDEO_DIR}/{name}.mp4'
        path = osp.join(out_dir, rel_path)
        reuse = osp.isfile(path) and recorded.get(
            rel_path, osp.getsize(path)) == osp.getsize(path)
        jobs.append(
            dict(config=params, index=index, label=labels[index],
                 split=splits[index], name=name, rel_path=rel_path,
                 path=path, reuse=reuse))
    reused = sum(job['reuse'] for job in jobs)

    entries = _run_jobs(jobs, workers, verbose)
    entries.sort(key=lambda e: e['name'])

    specs = class_specs(config.num_classes)
    for split in ('train', 'val'):
        lines = [f"{e['path']} {e['label']}\n" for e in entries
                 if e['split'] == split]
        _write_text_atomic(osp.join(out_dir, f'{split}_list.txt'),
                           ''.join(lines))
    _write_text_atomic(
        osp.join(out_dir, 'classes.txt'),
        ''.join(spec.describe() + '\n' for spec in specs))

    split_info = {}
    for split in ('train', 'val'):
        members = [e for e in entries if e['split'] == split]
        per_class = [0] * config.num_classes
        for e in members:
            per_class[e['label']] += 1
        split_info[split] = dict(num_videos=len(members),
                                 seconds=len(members) * config.seconds,
                                 per_class=per_class)
    generation_time = time.time() - start_time
    summary = dict(
        generator=GENERATOR_NAME,
        format_version=FORMAT_VERSION,
        params=params,
        classes=[spec.describe() for spec in specs],
        num_videos=config.num_videos,
        splits=split_info,
        total_seconds=config.num_videos * config.seconds,
        total_bytes=int(sum(e['bytes'] for e in entries)),
        generation_time_s=round(generation_time, 3),
        generated=config.num_videos - reused,
        reused=reused,
        workers=workers,
        videos=entries,
    )
    _write_text_atomic(osp.join(out_dir, SUMMARY_FILE),
                       json.dumps(summary, indent=1))
    summary.update(out_dir=out_dir, skipped=False,
                   elapsed_s=time.time() - start_time)
    if broken:
        summary['broken'] = write_broken_inputs(
            osp.join(out_dir, BROKEN_DIR), seed=config.seed,
            height=config.height, width=config.width, fps=config.fps,
            sample_rate=config.sample_rate)
    if verbose:
        print(format_summary(summary))
    return summary


def _run_jobs(jobs: List[dict], workers: int, verbose: bool) -> List[dict]:
    """Run ``_generate_one`` over jobs, serially or in a process pool."""
    bar = None
    if verbose:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(jobs), file=sys.stdout)
    entries = []
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            entries.append(_generate_one(job))
            if bar is not None:
                bar.update()
    else:
        # "fork" (where available) needs no importable __main__ guard in the
        # caller; the workers use only numpy and PyAV, never the parent's
        # threads.  Other platforms fall back to "spawn".
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context(
            'fork' if 'fork' in methods else 'spawn')
        with context.Pool(min(workers, len(jobs))) as pool:
            for entry in pool.imap_unordered(_generate_one, jobs):
                entries.append(entry)
                if bar is not None:
                    bar.update()
    if bar is not None:
        bar.file.write('\n')
        bar.file.flush()
    return entries


# --------------------------------------------------------------------------
# Broken inputs.
# --------------------------------------------------------------------------

BROKEN_KINDS = ('truncated', 'no_index', 'no_audio', 'short', 'empty')


def write_broken_inputs(out_dir: str,
                        seed: int = 0,
                        *,
                        height: int = 128,
                        width: int = 128,
                        fps: int = 16,
                        sample_rate: int = 16000) -> Dict[str, str]:
    """Write deliberately broken media files for loader robustness tests.

    Kinds (file ``<kind>.mp4`` in ``out_dir``):

    * ``truncated``: a 2 s clip written with its index at the front, then cut
      to half its bytes; the header still declares 2 s but the streams end
      early (decoders either fail or return fewer frames than declared);
    * ``no_index``: a 2 s clip written with its index at the end, then cut
      to half its bytes; the container cannot be opened at all;
    * ``no_audio``: a valid 2 s clip with a video stream only;
    * ``short``: a valid clip of 0.5 s (shorter than one event second);
    * ``empty``: a zero-byte file.

    Returns:
        ``{kind: absolute path}`` for every kind in :data:`BROKEN_KINDS`.
    """
    config = SyntheticAVConfig(num_videos=1, seconds=2, num_classes=2,
                               seed=seed, height=height, width=width,
                               fps=fps, sample_rate=sample_rate)
    out_dir = osp.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    plan = sample_video_plan(config, 0, 0)
    paths = {kind: osp.join(out_dir, kind + '.mp4') for kind in BROKEN_KINDS}

    def full_clip(path, with_audio=True, faststart=False, seconds=2.0):
        frames = int(round(seconds * fps))
        samples = int(round(seconds * sample_rate))
        audio = render_audio(plan, config, samples) if with_audio else None
        part = path + '.part'
        _encode_mp4(part, iter_frames(plan, config, frames), audio, config,
                    faststart=faststart)
        os.replace(part, path)

    for kind, faststart in (('truncated', True), ('no_index', False)):
        path = paths[kind]
        full_clip(path, faststart=faststart)
        with open(path, 'rb+') as f:
            f.truncate(osp.getsize(path) // 2)
    full_clip(paths['no_audio'], with_audio=False)
    full_clip(paths['short'], seconds=0.5)
    open(paths['empty'], 'wb').close()
    return paths
