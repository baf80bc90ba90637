"""One clip-sequence pipeline for the visual (V), audio (A) and multimodal
(M) settings.

The downstream protocols read the same kind of sample in three settings:
video and audio (M), video only (V), audio only (A).  Written out step by
step, each setting needs its own list (``AVInit`` with other modalities, the
video or audio steps left out), which is nine nearly identical lists per
dataset (train/val/test x V/A/M).  :class:`AVSequencePipeline` assembles
the list from its parts instead::

    pipeline = dict(
        type='AVSequencePipeline',
        modalities=('video', 'audio'),            # M; ('video',) = V ...
        clips=dict(type='AVSampleClips', num_clips=10, ...),
        decode=dict(type='AVDecode', short_side=128, sample_rate=16000),
        video=[dict(type='RandomCrop', size=112), ...,
               dict(type='FormatShape', input_format='NCTHW')],
        audio=[dict(type='LogMelSpectrogram', ...),
               dict(type='AudioNormalize', ...)])

which runs ``AVInit(modalities) -> clips -> decode -> video steps (if
'video' is read) -> audio steps (if 'audio' is read) -> PackAVInputs``.
Because the pipeline is one dict, a config switches the setting, or changes
one part, by merging a partial dict into it::

    train_dataloader = dict(dataset=dict(pipeline=dict(modalities=('video',))))

A dataset's ``pipeline`` may be this dict alone or a list holding it among
other steps.  :func:`flatten_pipeline` gives the equivalent flat list of
step configs, for code that inspects pipelines (benchmarks, tests).
"""
from typing import Callable, Dict, List, Optional, Sequence, Union

from mmcv.transforms import BaseTransform
from mmengine.dataset import Compose

from avtoolkit.registry import TRANSFORMS

MODALITIES = ('video', 'audio')
_TYPE_NAMES = ('AVSequencePipeline', 'avtoolkit.AVSequencePipeline')


def _step_list(name: str, steps) -> List[Union[dict, Callable]]:
    if steps is None:
        return []
    if isinstance(steps, dict) or callable(steps):
        return [steps]
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise TypeError(f'{name} must be a list of transform configs, got '
                        f'{type(steps).__name__}')
    for step in steps:
        if not (isinstance(step, dict) or callable(step)):
            raise TypeError(f'every step of {name} must be a transform '
                            f'config (dict) or callable, got '
                            f'{type(step).__name__}')
    return list(steps)


def _check_modalities(modalities) -> tuple:
    if isinstance(modalities, str):
        modalities = (modalities, )
    modalities = tuple(modalities)
    if not modalities or len(set(modalities)) != len(modalities) or any(
            m not in MODALITIES for m in modalities):
        raise ValueError(f'modalities must be a non-empty subset of '
                         f'{MODALITIES}, got {modalities}')
    return modalities


def sequence_steps(clips: Union[dict, Callable],
                   decode: Union[dict, Callable],
                   modalities: Sequence[str] = MODALITIES,
                   video: Optional[Sequence] = None,
                   audio: Optional[Sequence] = None,
                   pack: Union[None, dict, Callable] = None,
                   num_threads: int = 1,
                   tail_tolerance: float = 0.1
                   ) -> List[Union[dict, Callable]]:
    """The flat list of steps an :class:`AVSequencePipeline` runs (see
    that class for the arguments)."""
    modalities = _check_modalities(modalities)
    for name, step in (('clips', clips), ('decode', decode)):
        if not (isinstance(step, dict) or callable(step)):
            raise TypeError(f'{name} must be a transform config (dict), got '
                            f'{type(step).__name__}')
    video = _step_list('video', video)
    audio = _step_list('audio', audio)
    if 'video' in modalities and not video:
        raise ValueError('the pipeline reads video but has no video steps '
                         '(at least a FormatShape to pack the frames)')
    steps: List[Union[dict, Callable]] = [
        dict(type='AVInit', modalities=modalities, num_threads=num_threads,
             tail_tolerance=tail_tolerance), clips, decode
    ]
    if 'video' in modalities:
        steps += video
    if 'audio' in modalities:
        steps += audio
    steps.append(dict(type='PackAVInputs') if pack is None else pack)
    return steps


_PARTS = ('clips', 'decode', 'modalities', 'video', 'audio', 'pack',
          'num_threads', 'tail_tolerance')


def _check_parts(kwargs: dict) -> None:
    unknown = sorted(str(k) for k in kwargs if k not in _PARTS)
    if unknown:
        hint = ''
        if any(k.isdigit() for k in unknown):
            hint = (' (a step index such as "pipeline.3" in --cfg-options '
                    'addresses a list; here the steps are in the parts, '
                    'e.g. "pipeline.video.0.crop_size=32")')
        raise TypeError(f'AVSequencePipeline got unknown arguments '
                        f'{unknown}; its parts are {_PARTS}{hint}')


def _is_sequence_cfg(step) -> bool:
    return isinstance(step, dict) and step.get('type') in _TYPE_NAMES


def _expand(step) -> List[Union[dict, Callable]]:
    if not _is_sequence_cfg(step):
        return [step]
    kwargs = {k: v for k, v in step.items() if k != 'type'}
    _check_parts(kwargs)
    missing = [k for k in ('clips', 'decode') if k not in kwargs]
    if missing:
        raise TypeError(f'AVSequencePipeline needs {missing}')
    return sequence_steps(**kwargs)


def flatten_pipeline(pipeline) -> List[Union[dict, Callable]]:
    """A pipeline config (a list of steps, or one step) as a flat list of
    step configs, with every ``AVSequencePipeline`` expanded."""
    return [s for step in as_step_list(pipeline) for s in _expand(step)]


def as_step_list(pipeline) -> List[Union[dict, Callable]]:
    """A dataset's ``pipeline`` argument as a list of steps: ``None`` is
    empty, one step (a dict or a callable) is a list of one."""
    return _step_list('pipeline', pipeline)


@TRANSFORMS.register_module()
class AVSequencePipeline(BaseTransform):
    """Read a clip sequence in the V, A or M setting.

    Runs ``AVInit(modalities)``, ``clips``, ``decode``, then the ``video``
    steps when video is read and the ``audio`` steps when audio is read,
    then ``pack``.  Required and added keys are those of the steps.

    Args:
        clips: the clip sampler (``AVSampleClips`` config).
        decode: the decoder (``AVDecode`` config).
        modalities: ``('video', 'audio')`` (M), ``('video',)`` (V) or
            ``('audio',)`` (A).
        video: steps for the decoded frames (crops, flips, ``FormatShape``).
        audio: steps for the decoded waveform (log-mel, normalisation).
        pack: the packing step (default ``PackAVInputs``).
        num_threads, tail_tolerance: passed to ``AVInit``.
    """

    def __init__(self, **parts) -> None:
        # The parts are those of sequence_steps (documented above).
        steps = _expand(dict(parts, type='AVSequencePipeline'))
        self.modalities = tuple(steps[0]['modalities'])
        self.compose = Compose(steps)

    @property
    def transforms(self) -> List[Callable]:
        """The built steps, in order."""
        return self.compose.transforms

    def transform(self, results: Dict) -> Optional[Dict]:
        return self.compose(results)

    def __repr__(self) -> str:
        steps = ', '.join(type(t).__name__ for t in self.transforms)
        return (f'{self.__class__.__name__}(modalities={self.modalities}, '
                f'steps=[{steps}])')
