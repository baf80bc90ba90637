"""Reading a pretraining config for the training-step benchmark.

The per-sample input shapes its training pipeline produces
(:func:`input_shapes_from_config`), the config with the benchmark's
activation-checkpointing switches applied (:func:`load_benchmark_config`),
the name of its parameter-sharing variant and the optim wrapper config for
a precision, as ``tools/train.py --amp`` sets it.
"""
import copy
import os
from typing import Dict, Optional, Sequence, Tuple

import torch

__all__ = [
    'input_shapes_from_config', 'load_benchmark_config', 'sharing_name',
    'optim_wrapper_cfg'
]


def _find_pipeline(cfg) -> Optional[list]:
    """The training pipeline of a config as a flat list of steps (dataset
    wrappers looked into, ``AVSequencePipeline`` expanded)."""
    from avtoolkit.datasets.transforms import flatten_pipeline
    loader = cfg.get('train_dataloader') or {}
    dataset = loader.get('dataset') if hasattr(loader, 'get') else None
    while dataset is not None and hasattr(dataset, 'get'):
        if dataset.get('pipeline') is not None:
            return flatten_pipeline(dataset['pipeline'])
        dataset = dataset.get('dataset')
    pipeline = cfg.get('train_pipeline')
    return flatten_pipeline(pipeline) if pipeline is not None else None


def _spatial_size(step: dict) -> Optional[Tuple[int, int]]:
    """(H, W) a cropping or resizing transform fixes, or None."""
    kind = step.get('type')
    size = None
    if kind == 'RandomCrop':
        size = step.get('size')
    elif kind in ('CenterCrop', 'ThreeCrop', 'TenCrop'):
        size = step.get('crop_size')
    elif kind == 'Resize' and step.get('keep_ratio') is False:
        size = step.get('scale')
        if isinstance(size, (tuple, list)) and len(size) == 2:
            return int(size[1]), int(size[0])  # mmaction scale is (w, h)
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return int(size[0]), int(size[1])
    return None


def input_shapes_from_config(cfg,
                             num_clips: Optional[int] = None,
                             video_clip_shape: Optional[Sequence[int]] = None,
                             audio_clip_shape: Optional[Sequence[int]] = None
                             ) -> Dict[str, object]:
    """Per-sample input shapes of a pretraining config.

    Args:
        cfg: mmengine ``Config`` with ``model`` and a training pipeline.
        num_clips: T to use instead of the config's.
        video_clip_shape: ``(C, F, H, W)`` of one clip, instead of the one
            read from the pipeline.
        audio_clip_shape: ``(C, n_mels, frames)`` of one clip, likewise.

    Returns:
        ``dict(video=(T, C, F, H, W), audio=(T, C, n_mels, frames),
        num_clips=T, num_clips_config=T of the config or None)``.

    Raises:
        ValueError: when a shape can neither be read from the config nor was
            given.
    """
    pipeline = _find_pipeline(cfg) or []
    steps = [dict(s) for s in pipeline if hasattr(s, 'get')]
    config_t = frames = hw = mels = mel_frames = None
    for step in steps:
        kind = step.get('type')
        if kind == 'AVSampleClips':
            config_t = step.get('num_clips', 30)
            frames = step.get('frames_per_clip', 32)
        elif kind == 'LogMelSpectrogram':
            mels = step.get('n_mels', 128)
            mel_frames = step.get('num_frames', 220)
        else:
            size = _spatial_size(step)
            if size is not None:
                hw = size
    model = cfg.get('model') or {}

    def _in_channels(backbone_key: str, default: int) -> int:
        cnn = (model.get(backbone_key) or {}).get('cnn') or {}
        if not hasattr(cnn, 'get'):  # a built module
            return default
        value = cnn.get('in_channels')
        if value is None and hasattr(cnn.get('slow_pathway'), 'get'):
            value = cnn['slow_pathway'].get('in_channels')
        return int(value) if value is not None else default

    t = num_clips if num_clips is not None else config_t
    if t is None:
        raise ValueError(
            'the number of clips T is not in the config (no AVSampleClips in '
            'the training pipeline); give num_clips (--num-clips)')
    if not isinstance(t, int) or t < 1:
        raise ValueError(f'num_clips must be a positive int, got {t!r}')

    if video_clip_shape is not None:
        video = tuple(int(v) for v in video_clip_shape)
        if len(video) != 4 or min(video) < 1:
            raise ValueError('video_clip_shape must be 4 positive ints '
                             f'(C, F, H, W), got {video_clip_shape!r}')
    else:
        missing = [n for n, v in (('frames_per_clip of AVSampleClips', frames),
                                  ('a crop or fixed-size resize', hw))
                   if v is None]
        if missing:
            raise ValueError(
                f'cannot read the video clip shape from the config (missing '
                f'{", ".join(missing)} in the training pipeline); give '
                'video_clip_shape (--video-clip-shape C F H W)')
        channels = _in_channels('visual_backbone', 3)
        video = (channels, int(frames), hw[0], hw[1])
    if audio_clip_shape is not None:
        audio = tuple(int(v) for v in audio_clip_shape)
        if len(audio) != 3 or min(audio) < 1:
            raise ValueError('audio_clip_shape must be 3 positive ints '
                             f'(C, n_mels, frames), got {audio_clip_shape!r}')
    else:
        if mels is None or mel_frames is None:
            raise ValueError(
                'cannot read the audio clip shape from the config (no '
                'LogMelSpectrogram with num_frames in the training '
                'pipeline); give audio_clip_shape (--audio-clip-shape C M N)')
        channels = _in_channels('audio_backbone', 1)
        audio = (channels, int(mels), int(mel_frames))
    return dict(video=(t, ) + video, audio=(t, ) + audio, num_clips=t,
                num_clips_config=config_t)


def sharing_name(cfg) -> str:
    """The sharing variant of a config's neck, as the neck benchmark names
    it (``part``, ``none``, ...)."""
    neck = (cfg.get('model') or {}).get('neck') or {}
    transformers = neck.get('share_transformers', 'part')
    layers = neck.get('share_layers', True)
    names = {('none', False): 'none', ('none', True): 'layer',
             ('all', True): 'all', ('part', True): 'part',
             ('part', False): 'part-nolayer'}
    return names.get((transformers, bool(layers)),
                     f'{transformers}/{"layers" if layers else "no-layers"}')


def load_benchmark_config(path: str,
                          cfg_options: Optional[dict] = None,
                          with_cp: bool = False,
                          cnn_with_cp: bool = False,
                          clip_chunk_size: Optional[int] = None):
    """Read a config and apply the benchmark's model switches.

    Args:
        path: config file.
        cfg_options: mmengine ``--cfg-options`` overrides.
        with_cp: set ``with_cp=True`` on both ``ClipSequenceEncoder``
            backbones (each CNN chunk checkpointed as a whole).
        cnn_with_cp: set ``with_cp=True`` inside the CNN configs (mmaction's
            per-block checkpointing in both SlowFast pathways; ignored for
            CNNs without the option).
        clip_chunk_size: ``clip_chunk_size`` of both backbones.
    """
    from mmengine.config import Config
    if not os.path.isfile(path):
        raise FileNotFoundError(f'config file "{path}" does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'config {path} has no "model" entry')
    if 'optim_wrapper' not in cfg:
        raise KeyError(f'config {path} has no "optim_wrapper" entry; a '
                       'training step needs one')
    for name in ('visual_backbone', 'audio_backbone'):
        backbone = cfg.model.get(name)
        if backbone is None:
            continue
        if with_cp:
            backbone['with_cp'] = True
        if clip_chunk_size is not None:
            backbone['clip_chunk_size'] = clip_chunk_size
        if cnn_with_cp:
            cnn = backbone.get('cnn') or {}
            for path_name in ('slow_pathway', 'fast_pathway'):
                if cnn.get(path_name) is not None:
                    cnn[path_name]['with_cp'] = True
    return cfg


def optim_wrapper_cfg(cfg_ow, device: torch.device, dtype: str) -> dict:
    """The optim wrapper config for a precision, as ``--amp`` would set it."""
    ow = copy.deepcopy(cfg_ow.to_dict() if hasattr(cfg_ow, 'to_dict') else
                       dict(cfg_ow))
    kind = ow.get('type', 'OptimWrapper')
    if kind not in ('OptimWrapper', 'AmpOptimWrapper'):
        raise ValueError('the benchmark handles OptimWrapper and '
                         f'AmpOptimWrapper configs, got {kind}')
    # One optimizer step per measured step.
    ow['accumulative_counts'] = 1
    for key in ('dtype', 'loss_scale'):
        ow.pop(key, None)
    ow['type'] = 'OptimWrapper'
    if dtype != 'fp32' and device.type == 'cuda':
        ow['type'] = 'AmpOptimWrapper'
        ow['dtype'] = 'bfloat16' if dtype == 'bf16' else 'float16'
        # fp16 needs dynamic loss scaling; bf16 has fp32's range.
        ow['loss_scale'] = 'dynamic' if dtype == 'fp16' else 1.0
    return ow
