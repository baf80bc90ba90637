"""What the synthetic audio-visual data shows: the class recipes (object,
motion, sound, rhythm, motif), the per-video plans of events and scenes, and
the generator's parameters.  docs/data_preparation.md describes the design.
"""
import dataclasses
from typing import List

import numpy as np

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
