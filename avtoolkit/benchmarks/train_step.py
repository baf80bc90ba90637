"""Cost of full AVBERT training steps, for several configs side by side.

Used by ``tools/analysis/benchmark_train.py``.  For every config the model is
built at the size the config gives, fed synthetic tensors of the shapes the
config's training pipeline produces, and trained for a few steps through the
same code path as the Runner: ``model.train_step(data, optim_wrapper)`` with
the config's ``optim_wrapper`` built by mmengine (data preprocessor, every
loss of ``AVBERT.loss``, backward, optimizer step).

Inputs
    ``video`` uint8 ``(B, T, C, F, H, W)`` and ``audio`` float32
    ``(B, T, C, n_mels, frames)``, as the pipeline packs them (the data
    preprocessor converts and normalises the video).  T, F, the crop size,
    the mel bins and frames are read from the pipeline
    (``AVSampleClips``, ``RandomCrop``/``CenterCrop``/``Resize``,
    ``LogMelSpectrogram``) and the channels from the CNN configs.  The batch
    stays on the host unless ``preload=True``, so the host-to-device copy
    that the Runner's data preprocessor does is part of a step.

Model and optimizer
    Built from the config and initialised with ``init_weights`` as the Runner
    does; the optimizer wrapper steps on every step (``accumulative_counts``
    is set to 1).  ``bf16``/``fp16`` go through mmengine's ``AmpOptimWrapper``
    on CUDA (as ``tools/train.py --amp``); on the CPU, where that wrapper
    refuses to run, ``bf16`` autocasts the forward pass inside the wrapper's
    ``optim_context``.  ``torch.backends.cudnn.benchmark`` follows the
    config's ``env_cfg`` unless given.

What is measured, per config and batch size
    * ``step_s``: median wall time of the timed steps, after the warm-up
      steps (CUDA is synchronised around every step); ``cpu_s``: median CPU
      time of the process over the same steps (steadier on a shared CPU);
      ``samples_per_s = batch / step_s``.
    * memory: on CUDA ``torch.cuda.max_memory_allocated`` over the timed
      steps minus what was allocated before the model was built (parameters,
      gradients, optimizer state, activations, workspace).  On the CPU the
      bytes of the resident training state (parameters, buffers, optimizer
      state, counted from the tensors) plus the rise of the resident set
      size during the timed steps (``VmHWM`` of ``/proc/self/status``, reset
      through ``/proc/self/clear_refs``, above the resident size just before
      the steps); the resident size of the whole process cannot be
      attributed to one model once another was freed in the same process.
      Both devices also report ``saved_activation_bytes``: the bytes of the
      tensors autograd keeps for the backward pass of one eager forward pass
      (parameters excluded, checkpointing as configured), which shows the
      effect of activation checkpointing without allocator noise.
    * FLOPs: one separate, untimed step under
      :class:`torch.utils.flop_counter.FlopCounterMode`, forward and backward
      counted apart.  The count is taken with activation checkpointing
      switched off, so it is the model's FLOPs without recomputation (the
      usual basis of model FLOPs utilisation, MFU).  Only the operators the
      counter knows (convolutions, matrix products, attention) are counted;
      element-wise work and the optimizer step are not.
    * ``achieved_tflops = flops / step_s`` and ``mfu`` against a peak rate:
      ``peak_tflops`` if given, else the dense tensor-core rate of the GPU
      for the step's precision from :data:`PEAK_TFLOPS`; none on the CPU.
    * a breakdown of where the time goes: the visual CNN, the audio CNN, the
      Transformers (neck), the heads (negative sampler, MEP and CPP losses),
      the data preprocessor and the optimizer step are each run and timed
      apart (forward + backward of each part alone, the backward seeded with
      random output gradients), with the FLOPs of each part.  When the whole
      ``train_step`` is compiled the parts run eagerly; when only the CNNs
      are compiled, the CNN parts run compiled.
    * a projection of the wall-clock time of the whole recipe
      (``max_iters`` x ``global_batch`` samples) on 8 and 64 devices, from
      the measured per-device samples/s with perfectly linear scaling (no
      data loading, communication or straggler cost).  When T differs from
      the config's value, a second figure scales the throughput by
      ``T_used / T_config`` (cost taken as linear in T).
    * with ``find_max_batch`` (CUDA), the batch is doubled from the smallest
      requested one until a step runs out of memory.
"""
import contextlib
import copy
import ctypes
import dataclasses
import gc
import logging
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from avtoolkit.benchmarks.neck import saved_activation_bytes

__all__ = [
    'PEAK_TFLOPS', 'DTYPES', 'input_shapes_from_config', 'peak_tflops_for',
    'project_recipe', 'run_benchmark', 'format_report'
]

#: Dense peak rates (TFLOP/s) of a few GPUs, matched by a substring of
#: ``torch.cuda.get_device_name`` in this order.  ``tf32`` is the tensor-core
#: rate used for fp32 steps when cuDNN or cuBLAS may use TF32; ``fp32`` the
#: rate without tensor cores.  Vendor figures for SXM parts without sparsity.
PEAK_TFLOPS: Tuple[Tuple[str, Dict[str, float]], ...] = (
    ('H200', dict(bf16=989.4, fp16=989.4, tf32=494.7, fp32=66.9)),
    ('H100 PCIe', dict(bf16=756.5, fp16=756.5, tf32=378.0, fp32=51.2)),
    ('H100', dict(bf16=989.4, fp16=989.4, tf32=494.7, fp32=66.9)),
    ('A100', dict(bf16=312.0, fp16=312.0, tf32=156.0, fp32=19.5)),
    ('L40S', dict(bf16=362.0, fp16=362.0, tf32=183.0, fp32=91.6)),
    ('V100', dict(fp16=125.0, fp32=15.7)),
)

#: ``--dtype`` values and the autocast dtype each stands for.
DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}

DEFAULT_GLOBAL_BATCH = 256
PROJECTION_DEVICES = (8, 64)
COMPONENTS = ('preprocess', 'visual_cnn', 'audio_cnn', 'neck', 'heads',
              'optimizer')


# --------------------------------------------------------------------------
# Config reading
# --------------------------------------------------------------------------
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


def _sharing_name(cfg) -> str:
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


# --------------------------------------------------------------------------
# Model, optimizer, data
# --------------------------------------------------------------------------
def _optim_wrapper_cfg(cfg_ow, device: torch.device, dtype: str) -> dict:
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


def _cpu_autocast_wrapper(base, clip_grad: Optional[dict],
                          autocast_dtype: torch.dtype):
    """An OptimWrapper whose ``optim_context`` also enters CPU autocast.

    mmengine's ``AmpOptimWrapper`` requires a GPU; on the CPU this does the
    part of it that matters for the forward pass.
    """
    from mmengine.optim import OptimWrapper

    class CPUAutocastOptimWrapper(OptimWrapper):

        @contextlib.contextmanager
        def optim_context(self, model):
            with super().optim_context(model), torch.autocast(
                    device_type='cpu', dtype=autocast_dtype):
                yield

    return CPUAutocastOptimWrapper(
        optimizer=base.optimizer,
        accumulative_counts=1,
        clip_grad=clip_grad or None)


def _build(cfg, device: torch.device, dtype: str):
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper

    from avtoolkit.models.algorithms import AVBERT
    from avtoolkit.registry import MODELS
    from avtoolkit.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    model = MODELS.build(cfg.model)
    if not isinstance(model, AVBERT):
        raise TypeError('the training benchmark needs an AVBERT pretraining '
                        f'model, the config builds {type(model).__name__}')
    # As the Runner does before training; its per-parameter report is
    # logged at INFO, which the benchmark's output can do without.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    model = model.to(device).train()
    ow_cfg = _optim_wrapper_cfg(cfg.optim_wrapper, device, dtype)
    optim_wrapper = build_optim_wrapper(model, ow_cfg)
    if dtype != 'fp32' and device.type != 'cuda':
        optim_wrapper = _cpu_autocast_wrapper(
            optim_wrapper, ow_cfg.get('clip_grad'), DTYPES[dtype])
    return model, optim_wrapper


def _synthetic_batch(shapes: dict, batch: int, device: torch.device,
                     seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (batch, ) + tuple(shapes['video']),
                          dtype=torch.uint8, generator=gen)
    audio = torch.randn((batch, ) + tuple(shapes['audio']), generator=gen)
    return dict(inputs=dict(video=video.to(device), audio=audio.to(device)))


def _autocast(device: torch.device, dtype: str):
    if dtype == 'fp32':
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


@contextlib.contextmanager
def _eager(model: nn.Module):
    """Run modules compiled with ``nn.Module.compile`` eagerly for a while.

    ``FlopCounterMode`` sees no operators inside compiled code.
    """
    stashed = [(m, m._compiled_call_impl) for m in model.modules()
               if getattr(m, '_compiled_call_impl', None) is not None]
    for m, _ in stashed:
        m._compiled_call_impl = None
    try:
        yield
    finally:
        for m, impl in stashed:
            m._compiled_call_impl = impl


@contextlib.contextmanager
def _checkpointing_off(model: nn.Module):
    """Switch every ``with_cp`` flag of the model off for a while."""
    flipped = [m for m in model.modules()
               if isinstance(getattr(m, 'with_cp', None), bool) and m.with_cp]
    for m in flipped:
        m.with_cp = False
    try:
        yield
    finally:
        for m in flipped:
            m.with_cp = True


def _checkpointing_on(model: nn.Module) -> bool:
    return any(getattr(m, 'with_cp', False) is True for m in model.modules())


# --------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------
def _proc_status_bytes(key: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset ``VmHWM`` to the current resident size (Linux only)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _trim_heap(collect: bool = True) -> None:
    """Return freed heap memory to the system (glibc), after a GC pass."""
    if collect:
        gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _ru_maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024


class _MemoryProbe:
    """Peak memory of the timed steps of one model.

    CUDA: ``max_memory_allocated`` over the steps minus the allocation
    before the model was built (the caching allocator's exact view).

    CPU: the resident set size cannot be attributed to one model after
    another has been freed in the same process (the C allocator keeps freed
    memory), so the peak is assembled: the bytes of the resident training
    state (parameters, buffers, optimizer state; counted from the tensors)
    plus the rise of the resident size during the timed steps above the
    resident size just before them (activations, gradients, temporary
    buffers), read from ``VmHWM`` after resetting it.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline = 0
        self.reset_ok = False

    def set_baseline(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)

    def start(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.reset_ok = True
        else:
            _trim_heap(collect=False)
            self.reset_ok = _reset_rss_peak() and \
                _proc_status_bytes('VmHWM') is not None
            self.baseline = _proc_status_bytes('VmRSS') or 0

    def stop(self, resident_state_bytes: int) -> Dict[str, object]:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            return dict(
                peak_memory_bytes=int(peak - self.baseline),
                peak_memory_kind='cuda max_memory_allocated minus the '
                'allocation before the model was built',
                peak_reserved_bytes=int(
                    torch.cuda.max_memory_reserved(self.device)))
        if not self.reset_ok:
            return dict(
                peak_memory_bytes=None,
                peak_memory_kind='not measured (the peak RSS cannot be '
                'reset here: no writable /proc/self/clear_refs)',
                rss_peak_bytes=_ru_maxrss_bytes())
        peak = _proc_status_bytes('VmHWM')
        rise = max(0, peak - self.baseline)
        return dict(
            peak_memory_bytes=int(resident_state_bytes + rise),
            peak_memory_kind='CPU: resident training state (params, '
            'buffers, optimizer state) + rise of the RSS during the timed '
            'steps (VmHWM)',
            rss_step_rise_bytes=int(rise),
            rss_peak_bytes=int(peak))


def _state_bytes(model: nn.Module, optim_wrapper) -> Dict[str, int]:
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    state = 0
    for per_param in optim_wrapper.optimizer.state.values():
        for value in per_param.values():
            if isinstance(value, torch.Tensor):
                state += value.numel() * value.element_size()
    return dict(param_bytes=int(params), buffer_bytes=int(buffers),
                optimizer_state_bytes=int(state))


# --------------------------------------------------------------------------
# Peak rates and projections
# --------------------------------------------------------------------------
def peak_tflops_for(device: torch.device,
                    dtype: str,
                    override: Optional[float] = None
                    ) -> Tuple[Optional[float], str]:
    """Peak rate for MFU and where it came from.

    Args:
        device: the benchmark device.
        dtype: ``fp32``, ``bf16`` or ``fp16``.
        override: a rate in TFLOP/s given by the user.

    Returns:
        ``(tflops or None, basis)``.
    """
    if override is not None:
        if override <= 0:
            raise ValueError(f'peak_tflops must be > 0, got {override}')
        return float(override), 'given'
    if device.type != 'cuda':
        return None, 'unknown for this device; give peak_tflops'
    name = torch.cuda.get_device_name(device)
    for key, rates in PEAK_TFLOPS:
        if key in name:
            basis = dtype
            if dtype == 'fp32' and 'tf32' in rates and (
                    torch.backends.cudnn.allow_tf32
                    or torch.backends.cuda.matmul.allow_tf32):
                basis = 'tf32'
            if basis in rates:
                return rates[basis], f'{key} dense {basis}'
            return None, f'no {basis} rate known for {name}'
    return None, f'no peak rate known for "{name}"; give peak_tflops'


def project_recipe(samples_per_s: float,
                   max_iters: int,
                   global_batch: int,
                   devices: Sequence[int] = PROJECTION_DEVICES,
                   t_scale: float = 1.0) -> Dict[str, object]:
    """Wall-clock time of a recipe on N devices at a per-device rate.

    Assumes perfectly linear scaling: every device sustains
    ``samples_per_s * t_scale`` full-length samples per second, with no cost
    for data loading, gradient communication or stragglers.

    Returns:
        ``dict(total_samples, per_device_samples_per_s, hours={N: h},
        days={N: d})``.
    """
    if samples_per_s <= 0:
        raise ValueError('samples_per_s must be > 0')
    if max_iters < 1 or global_batch < 1:
        raise ValueError('max_iters and global_batch must be >= 1')
    rate = samples_per_s * t_scale
    total = max_iters * global_batch
    hours = {str(n): total / (rate * n) / 3600.0 for n in devices}
    return dict(total_samples=total, per_device_samples_per_s=rate,
                hours=hours, days={n: h / 24.0 for n, h in hours.items()})


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------
class _Timer:

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def __call__(self, fn: Callable[[], object]) -> Tuple[float, float]:
        self.sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        self.sync()
        return time.perf_counter() - start, time.process_time() - cpu_start


def _count_step(model, data, optim_wrapper,
                record_saved: bool) -> Dict[str, Optional[int]]:
    """FLOPs of one train step, forward and backward apart (no recompute).

    With ``record_saved`` the bytes autograd saves in the forward pass are
    recorded too (only meaningful when no checkpointing was switched off).
    """
    from torch.utils.flop_counter import FlopCounterMode
    saved = None
    with _checkpointing_off(model), _eager(model):
        with FlopCounterMode(display=False) as fwd_counter:

            def forward():
                with optim_wrapper.optim_context(model):
                    batch = model.data_preprocessor(data, True)
                    losses = model._run_forward(batch, mode='loss')
                return model.parse_losses(losses)[0]

            if record_saved:
                box = []
                saved = saved_activation_bytes(model,
                                            lambda: box.append(forward()))
                loss = box.pop()
            else:
                loss = forward()
        with FlopCounterMode(display=False) as bwd_counter:
            optim_wrapper.backward(loss)
        optim_wrapper.step()
        optim_wrapper.zero_grad()
    fwd, bwd = fwd_counter.get_total_flops(), bwd_counter.get_total_flops()
    return dict(forward_flops=int(fwd), backward_flops=int(bwd),
                flops_per_step=int(fwd + bwd), saved_activation_bytes=saved)


def _forward_saved_bytes(model, data, optim_wrapper) -> int:
    """Saved-for-backward bytes of one forward pass as configured."""

    def run():
        with optim_wrapper.optim_context(model):
            batch = model.data_preprocessor(data, True)
            losses = model._run_forward(batch, mode='loss')
        return model.parse_losses(losses)[0]

    with _eager(model):
        saved = saved_activation_bytes(model, run)
    optim_wrapper.zero_grad()
    return saved


def _component_steps(model, data, optim_wrapper, device: torch.device,
                     dtype: str) -> Dict[str, Callable[[], None]]:
    """Closures running each part of a training step alone (fwd + bwd)."""
    from avtoolkit.models.utils import make_derangement

    with torch.no_grad():
        batch = model.data_preprocessor(data, True)
        video, audio = batch['inputs']['video'], batch['inputs']['audio']
        with _autocast(device, dtype):
            x_v0 = model.visual_backbone(video).detach()
            x_a0 = model.audio_backbone(audio).detach()
    b, t = x_v0.shape[:2]
    mask = model.mask_generator(b, t, device=x_v0.device)
    perm = make_derangement(b, device=x_v0.device) \
        if model.cpp_head is not None else None
    mismatch = perm if model._needs_mismatched_pass else None
    with torch.no_grad(), _autocast(device, dtype):
        out0 = model.neck(x_v0, x_a0, mask=mask, mismatch_perm=mismatch)
    out0 = dataclasses.replace(out0, x_v=x_v0, x_a=x_a0)
    gen = torch.Generator(device=x_v0.device).manual_seed(0)

    def grad_like(x):
        return torch.randn(x.shape, generator=gen, device=x.device,
                           dtype=x.dtype)

    grads_v, grads_a = grad_like(x_v0), grad_like(x_a0)
    neck_fields = ('y_v', 'y_a', 'z', 'z_mismatched')
    neck_grads = {f: grad_like(getattr(out0, f)) for f in neck_fields
                  if getattr(out0, f) is not None}

    def preprocess():
        model.data_preprocessor(data, True)

    def cnn(backbone, clips, grad):
        def run():
            with _autocast(device, dtype):
                out = backbone(clips)
            out.backward(grad)
            optim_wrapper.zero_grad()
        return run

    def neck():
        x_v = x_v0.detach().requires_grad_()
        x_a = x_a0.detach().requires_grad_()
        with _autocast(device, dtype):
            out = model.neck(x_v, x_a, mask=mask, mismatch_perm=mismatch)
        names = list(neck_grads)
        torch.autograd.backward([getattr(out, n) for n in names],
                                [neck_grads[n] for n in names])
        optim_wrapper.zero_grad()

    def heads():
        fields = {
            f: getattr(out0, f).detach().requires_grad_()
            for f in ('x_v', 'x_a') + neck_fields
            if getattr(out0, f) is not None
        }
        out = dataclasses.replace(out0, **fields)
        with _autocast(device, dtype):
            losses = model.mep_loss(out)
            if model.cpp_head is not None:
                losses.update(model.cpp_head.loss(
                    y_v=out.y_v, y_a=out.y_a, z=out.z,
                    z_neg=out.z_mismatched, perm=perm))
        loss, _ = model.parse_losses(losses)
        loss.backward()
        optim_wrapper.zero_grad()

    params = [p for p in model.parameters() if p.requires_grad]

    def optimizer():
        for p in params:
            p.grad = torch.zeros_like(p)
        optim_wrapper.step()
        optim_wrapper.zero_grad()

    return dict(preprocess=preprocess,
                visual_cnn=cnn(model.visual_backbone, video, grads_v),
                audio_cnn=cnn(model.audio_backbone, audio, grads_a),
                neck=neck, heads=heads, optimizer=optimizer)


def _breakdown(model, data, optim_wrapper, device: torch.device, dtype: str,
               iters: int, timer: _Timer) -> Dict[str, Dict[str, float]]:
    from torch.utils.flop_counter import FlopCounterMode
    steps = _component_steps(model, data, optim_wrapper, device, dtype)
    result: Dict[str, Dict[str, float]] = {}
    for name, fn in steps.items():
        # The counted run is also the warm-up of the part.
        try:
            with _checkpointing_off(model), _eager(model), \
                    FlopCounterMode(display=False) as fc:
                fn()
            flops = int(fc.get_total_flops())
        except torch.cuda.OutOfMemoryError:
            # Without checkpointing the part does not fit: no count.
            _release_cuda(optim_wrapper)
            fn()
            flops = None
        timed = [timer(fn) for _ in range(iters)]
        times = [w for w, _ in timed]
        step_s = statistics.median(times)
        result[name] = dict(
            step_s=step_s, times_s=times,
            cpu_s=statistics.median(c for _, c in timed), flops=flops,
            achieved_tflops=(flops / step_s / 1e12
                             if flops is not None and step_s > 0 else None))
    optim_wrapper.zero_grad()
    return result


def _release_cuda(optim_wrapper) -> None:
    optim_wrapper.zero_grad()
    gc.collect()
    torch.cuda.empty_cache()


def _find_max_batch(model, optim_wrapper, shapes, device,
                    data_device: torch.device, start: int,
                    limit: int, seed: int,
                    step: Callable[[dict], None],
                    timer: _Timer) -> Dict[str, object]:
    """Double the batch from ``start`` until CUDA runs out of memory."""
    tries: List[dict] = []
    batch, largest = start, None
    while batch <= limit:
        data = None
        try:
            data = _synthetic_batch(shapes, batch, data_device, seed)
            step(data)  # warm-up (allocator, cuDNN autotuning)
            torch.cuda.reset_peak_memory_stats(device)
            wall, _ = timer(lambda: step(data))
            tries.append(dict(batch_size=batch, fits=True, step_s=wall,
                              samples_per_s=batch / wall,
                              peak_allocated_bytes=int(
                                  torch.cuda.max_memory_allocated(device))))
            largest = batch
        except torch.cuda.OutOfMemoryError as exc:
            tries.append(dict(batch_size=batch, fits=False,
                              error=str(exc).splitlines()[0]))
            break
        finally:
            del data
            optim_wrapper.zero_grad()
            gc.collect()
            torch.cuda.empty_cache()
        batch *= 2
    return dict(max_batch_size=largest, tries=tries, limit=limit,
                stopped_at_limit=batch > limit)


# --------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------
def _environment(device: torch.device) -> Dict[str, object]:
    env: Dict[str, object] = dict(
        python=platform.python_version(),
        platform=platform.platform(),
        processor=_cpu_model(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        cuda_available=torch.cuda.is_available())
    for module in ('mmengine', 'mmaction', 'mmcv'):
        try:
            env[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - a missing package is reported
            env[module] = None
    if device.type == 'cuda':
        env.update(
            device_name=torch.cuda.get_device_name(device),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            device_memory_bytes=torch.cuda.get_device_properties(
                device).total_memory,
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return env


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _measure_config(path: str, label: str, cfg, shapes: dict,
                    batch_sizes: Sequence[int], device: torch.device,
                    dtype: str, iters: int, warmup: int,
                    breakdown_iters: int, compile_target: Optional[str],
                    compile_cfg: dict,
                    preload: bool, find_max_batch: bool, max_batch: int,
                    peak: Optional[float], seed: int,
                    cudnn_benchmark: Optional[bool],
                    log: Callable[[str], None]) -> List[Dict[str, object]]:
    from avtoolkit.analysis.param_count import count_parameters

    if cudnn_benchmark is None:
        # As the Runner sets it from the config.
        cudnn_benchmark = bool(
            (cfg.get('env_cfg') or {}).get('cudnn_benchmark', False))
    torch.backends.cudnn.benchmark = cudnn_benchmark

    memory = _MemoryProbe(device)
    memory.set_baseline()
    torch.manual_seed(seed)
    model, optim_wrapper = _build(cfg, device, dtype)
    counts = count_parameters(model)
    cpp = model.cpp_head is not None
    data_device = device if preload else torch.device('cpu')
    timer = _Timer(device)
    eager_step = model.train_step
    train_step = eager_step
    if compile_target == 'train_step':
        # What the Runner does with cfg.compile (Runner._maybe_compile).
        train_step = torch.compile(model.train_step, **compile_cfg)
    elif compile_target == 'cnn':
        for backbone in (model.visual_backbone, model.audio_backbone):
            backbone.cnn.compile(**compile_cfg)

    def step(data):
        train_step(data, optim_wrapper)

    if cpp and min(batch_sizes) < 2:
        raise ValueError(
            f'batch size {min(batch_sizes)}: correct pair prediction needs '
            'at least two sequences per batch (its mismatched pairs come '
            'from other videos of the batch)')
    entries = []
    max_batch_result = None
    if find_max_batch:
        log(f'[{label}] finding the largest batch that fits')
        max_batch_result = _find_max_batch(
            model, optim_wrapper, shapes, device, data_device,
            min(batch_sizes), max_batch, seed, step, timer)
    for batch in sorted(batch_sizes):
        data = _synthetic_batch(shapes, batch, data_device, seed)
        try:
            log(f'[{label}] B={batch}: {warmup} warm-up step(s)')
            warmup_times = [timer(lambda: step(data))[0]
                            for _ in range(warmup)]
            log(f'[{label}] B={batch}: {iters} timed step(s)')
            memory.start()
            timed = [timer(lambda: step(data)) for _ in range(iters)]
        except torch.cuda.OutOfMemoryError as exc:
            log(f'[{label}] B={batch}: out of memory')
            entries.append(dict(config=path, label=label,
                                sharing=_sharing_name(cfg), batch_size=batch,
                                oom=True, error=str(exc).splitlines()[0]))
            del data
            optim_wrapper.zero_grad()
            gc.collect()
            torch.cuda.empty_cache()
            continue
        state = _state_bytes(model, optim_wrapper)
        mem = memory.stop(sum(state.values()))
        times = [w for w, _ in timed]
        cpu_times = [c for _, c in timed]
        step_s = statistics.median(times)
        log(f'[{label}] B={batch}: counted step (FLOPs)')
        checkpointing = _checkpointing_on(model)
        try:
            flops = _count_step(model, data, optim_wrapper,
                                record_saved=not checkpointing)
            flops['flops_counted_at_batch'] = batch
        except torch.cuda.OutOfMemoryError:
            # Only possible with checkpointing, which the count turns off:
            # count a batch of two and scale (the cost is linear in B, up to
            # the negative sampler's small B^2 term).
            _release_cuda(optim_wrapper)
            small = 2 if cpp else 1
            log(f'[{label}] B={batch}: out of memory without checkpointing;'
                f' counting FLOPs at B={small}')
            flops = _count_step(
                model, _synthetic_batch(shapes, small, data_device, seed),
                optim_wrapper, record_saved=False)
            for key in ('forward_flops', 'backward_flops', 'flops_per_step'):
                flops[key] = int(flops[key] * batch / small)
            flops['flops_counted_at_batch'] = small
        if checkpointing:
            log(f'[{label}] B={batch}: forward pass (saved activations)')
            flops['saved_activation_bytes'] = _forward_saved_bytes(
                model, data, optim_wrapper)
        entry: Dict[str, object] = dict(
            config=path, label=label, sharing=_sharing_name(cfg),
            batch_size=batch, oom=False, cudnn_benchmark=cudnn_benchmark,
            video_shape=[batch] + list(shapes['video']),
            audio_shape=[batch] + list(shapes['audio']),
            num_clips=shapes['num_clips'],
            num_clips_config=shapes['num_clips_config'],
            params_total=counts['total'],
            params_transformer_layers=counts['transformer_layers'],
            params_modules=counts['modules'],
            warmup_times_s=warmup_times, times_s=times, cpu_times_s=cpu_times,
            step_s=step_s, min_s=min(times),
            cpu_s=statistics.median(cpu_times),
            samples_per_s=batch / step_s,
            checkpointing=checkpointing,
            **mem, **state, **flops)
        entry['flops_per_sample'] = flops['flops_per_step'] / batch
        entry['achieved_tflops'] = flops['flops_per_step'] / step_s / 1e12
        entry['mfu'] = entry['achieved_tflops'] / peak if peak else None
        if breakdown_iters > 0:
            log(f'[{label}] B={batch}: breakdown')
            parts = _breakdown(model, data, optim_wrapper, device, dtype,
                               breakdown_iters, timer)
            total = sum(p['step_s'] for p in parts.values())
            for part in parts.values():
                part['share_of_step'] = part['step_s'] / step_s
            entry['breakdown'] = dict(
                parts=parts, sum_s=total, unaccounted_s=step_s - total,
                eager=compile_target != 'cnn')
        entries.append(entry)
        del data
    if max_batch_result is not None:
        for entry in entries:
            entry['find_max_batch'] = max_batch_result
    del model, optim_wrapper, train_step, eager_step
    _trim_heap()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return entries


def _ratios(entries: List[dict], reference: str) -> List[Dict[str, object]]:
    """Each config against the reference config, per batch size."""
    entries = [e for e in entries if not e.get('oom')]
    refs = {e['batch_size']: e for e in entries if e['label'] == reference}
    out = []
    for e in entries:
        ref = refs.get(e['batch_size'])
        if ref is None or e['label'] == reference:
            continue
        row = dict(config=e['label'], compare=reference,
                   batch_size=e['batch_size'],
                   step_time_ratio=e['step_s'] / ref['step_s'],
                   speedup=ref['step_s'] / e['step_s'],
                   cpu_speedup=ref['cpu_s'] / e['cpu_s'],
                   samples_per_s_ratio=e['samples_per_s'] /
                   ref['samples_per_s'],
                   flops_ratio=e['flops_per_step'] / ref['flops_per_step'],
                   params_ratio=e['params_total'] / ref['params_total'],
                   transformer_params_ratio=(
                       e['params_transformer_layers'] /
                       ref['params_transformer_layers']
                       if ref['params_transformer_layers'] else None))
        if ref['peak_memory_bytes'] and e['peak_memory_bytes'] is not None:
            row['peak_memory_ratio'] = (e['peak_memory_bytes'] /
                                        ref['peak_memory_bytes'])
        if e.get('saved_activation_bytes') and \
                ref.get('saved_activation_bytes'):
            row['saved_activation_ratio'] = (e['saved_activation_bytes'] /
                                             ref['saved_activation_bytes'])
        out.append(row)
    return out


def _unique_labels(paths: Sequence[str]) -> List[str]:
    labels = []
    for path in paths:
        base = os.path.splitext(os.path.basename(path))[0]
        label, k = base, 2
        while label in labels:
            label = f'{base}#{k}'
            k += 1
        labels.append(label)
    return labels


def run_benchmark(configs: Sequence[str],
                  compare_config: Optional[str] = None,
                  device: str = 'cpu',
                  batch_sizes: Sequence[int] = (4, ),
                  dtype: str = 'fp32',
                  iters: int = 5,
                  warmup: int = 2,
                  breakdown_iters: int = 2,
                  num_clips: Optional[int] = None,
                  video_clip_shape: Optional[Sequence[int]] = None,
                  audio_clip_shape: Optional[Sequence[int]] = None,
                  cfg_options: Optional[dict] = None,
                  with_cp: bool = False,
                  cnn_with_cp: bool = False,
                  clip_chunk_size: Optional[int] = None,
                  compile_step: Union[bool, str, None] = False,
                  compile_options: Optional[dict] = None,
                  preload: bool = False,
                  find_max_batch: bool = False,
                  max_batch: int = 4096,
                  peak_tflops: Optional[float] = None,
                  global_batch: int = DEFAULT_GLOBAL_BATCH,
                  max_iters: Optional[int] = None,
                  threads: Optional[int] = None,
                  cudnn_benchmark: Optional[bool] = None,
                  seed: int = 0,
                  command: Optional[Sequence[str]] = None,
                  log: Optional[Callable[[str], None]] = None
                  ) -> Dict[str, object]:
    """Measure full training steps of each config; see the module doc.

    Args:
        configs: config files to measure.
        compare_config: a further config measured in the same run, against
            which every other one gets ratios (e.g. the ``none`` sharing
            ablation).
        device: ``cpu`` or ``cuda[:N]``.
        batch_sizes: per-device batch sizes B.
        dtype: ``fp32``, ``bf16`` or ``fp16`` (autocast of the forward
            pass; on CUDA through mmengine's ``AmpOptimWrapper``).
        iters, warmup: timed and untimed full steps per batch size.
        breakdown_iters: timed runs of each part of the breakdown (0: no
            breakdown).
        num_clips, video_clip_shape, audio_clip_shape: input shape
            overrides (see :func:`input_shapes_from_config`).
        cfg_options: config overrides applied to every config.
        with_cp, cnn_with_cp, clip_chunk_size: activation checkpointing
            switches (see :func:`load_benchmark_config`).
        compile_step: ``'train_step'`` (or True): compile
            ``model.train_step`` with :func:`torch.compile`, as mmengine's
            Runner does for ``compile=True``; ``'cnn'``: compile only the two
            CNNs (``nn.Module.compile``); False/None: eager.
            ``compile_options`` are passed to :func:`torch.compile`.
        preload: put the batch on the device before timing (leaves the
            host-to-device copy out of the step).
        find_max_batch: on CUDA, double the batch from the smallest of
            ``batch_sizes`` until it runs out of memory (at most
            ``max_batch``).
        peak_tflops: peak rate for MFU (default from :data:`PEAK_TFLOPS`).
        global_batch: global batch of the projected recipe.
        max_iters: iterations of the projected recipe (default
            ``train_cfg.max_iters`` of the first config).
        threads: ``torch.set_num_threads`` for the run.
        cudnn_benchmark: ``torch.backends.cudnn.benchmark`` (default: each
            config's ``env_cfg.cudnn_benchmark``, as the Runner sets it).
        seed: seed of the weights and the synthetic data.
        command: the command line, recorded in the result.
        log: callable taking progress lines (default: none).

    Returns:
        dict with ``command``, ``environment``, ``settings``, ``recipe``,
        ``results`` (one entry per config and batch size), ``ratios`` and
        ``notes``.
    """
    log = log or (lambda line: None)
    if not configs:
        raise ValueError('give at least one config')
    if dtype not in DTYPES:
        raise ValueError(f'dtype must be one of {list(DTYPES)}, got {dtype!r}')
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f'device must be cpu or cuda, got {device!r}') \
            from exc
    if dev.type not in ('cpu', 'cuda'):
        raise ValueError(f'device must be cpu or cuda, got {device!r}')
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('CUDA was requested but is not available')
    if dev.type == 'cpu' and dtype == 'fp16':
        raise ValueError('fp16 needs a GPU (mmengine\'s AmpOptimWrapper and '
                         'loss scaling); use bf16 on the CPU')
    if dev.type == 'cuda' and dev.index is None:
        dev = torch.device('cuda', torch.cuda.current_device())
    if find_max_batch and dev.type != 'cuda':
        raise ValueError('find_max_batch needs a CUDA device (it doubles the '
                         'batch until CUDA runs out of memory)')
    batch_sizes = list(batch_sizes)
    if not batch_sizes or any(not isinstance(b, int) or b < 1
                              for b in batch_sizes):
        raise ValueError(f'batch sizes must be positive ints, got '
                         f'{batch_sizes}')
    if len(set(batch_sizes)) != len(batch_sizes):
        raise ValueError(f'batch sizes repeat: {batch_sizes}')
    if iters < 1 or warmup < 0 or breakdown_iters < 0:
        raise ValueError('iters must be >= 1, warmup and breakdown_iters '
                         '>= 0')
    if compile_step is True:
        compile_step = 'train_step'
    if compile_step not in (False, None, 'train_step', 'cnn'):
        raise ValueError('compile_step must be False, True, "train_step" or '
                         f'"cnn", got {compile_step!r}')
    compile_target = compile_step or None
    if compile_target and warmup < 1:
        raise ValueError('with compile, use warmup >= 1 so that the '
                         'compilation is not timed')
    if global_batch < 1:
        raise ValueError('global_batch must be >= 1')
    if threads is not None:
        torch.set_num_threads(threads)
    peak, peak_basis = peak_tflops_for(dev, dtype, peak_tflops)
    compile_cfg = dict(compile_options or {})

    paths = list(configs) + ([compare_config] if compare_config else [])
    labels = _unique_labels(paths)
    cfgs = [load_benchmark_config(p, cfg_options, with_cp, cnn_with_cp,
                                  clip_chunk_size) for p in paths]
    shapes = [input_shapes_from_config(c, num_clips, video_clip_shape,
                                       audio_clip_shape) for c in cfgs]
    if max_iters is None:
        max_iters = int((cfgs[0].get('train_cfg') or {}).get(
            'max_iters', 0)) or None
    if max_iters is None:
        raise ValueError('the first config has no train_cfg.max_iters; give '
                         'max_iters for the projection')

    entries: List[dict] = []
    for path, label, cfg, shape in zip(paths, labels, cfgs, shapes):
        entries.extend(_measure_config(
            path, label, cfg, shape, batch_sizes, dev, dtype, iters, warmup,
            breakdown_iters, compile_target, compile_cfg, preload,
            find_max_batch, max_batch, peak, seed, cudnn_benchmark, log))

    notes = [
        'projection: perfectly linear scaling over devices at the measured '
        'per-device samples/s; data loading, gradient communication and '
        'stragglers are not included',
        'FLOPs: counted by torch.utils.flop_counter.FlopCounterMode on one '
        'separate eager step with activation checkpointing off '
        '(convolutions, matrix products, attention; element-wise work and '
        'the optimizer are not counted)',
        'breakdown: each part run alone (forward + backward, eager); the '
        'sum differs from the full step by the rest of the step and by '
        'measurement noise',
    ]
    measured = [e for e in entries if not e.get('oom')]
    for entry in measured:
        t_used, t_cfg = entry['num_clips'], entry['num_clips_config']
        changed = t_cfg is not None and t_used != t_cfg
        entry['num_clips_changed'] = changed
        entry['projection'] = project_recipe(entry['samples_per_s'],
                                             max_iters, global_batch)
        if changed:
            entry['projection_t_scaled'] = project_recipe(
                entry['samples_per_s'], max_iters, global_batch,
                t_scale=t_used / t_cfg)
    if any(e['num_clips_changed'] for e in measured):
        notes.append(
            'T was changed from the config: the step times are not those of '
            'the recipe; projection_t_scaled assumes the cost is linear in T')
    if compile_target == 'train_step':
        notes.append('compile: model.train_step compiled as mmengine\'s '
                     'Runner does for cfg.compile; the first warm-up step '
                     'includes compilation; the FLOP count and the '
                     'breakdown run eagerly')
    elif compile_target == 'cnn':
        notes.append('compile: the two CNNs compiled (nn.Module.compile); '
                     'the first warm-up step includes compilation; the FLOP '
                     'count runs eagerly, the breakdown compiled')
    settings = dict(
        device=str(dev), dtype=dtype, batch_sizes=batch_sizes, iters=iters,
        warmup=warmup, breakdown_iters=breakdown_iters, num_clips=num_clips,
        video_clip_shape=video_clip_shape, audio_clip_shape=audio_clip_shape,
        cfg_options=cfg_options, with_cp=with_cp, cnn_with_cp=cnn_with_cp,
        clip_chunk_size=clip_chunk_size, compile=compile_target,
        compile_options=compile_cfg if compile_target else None,
        preload=preload,
        find_max_batch=find_max_batch, peak_tflops=peak,
        peak_basis=peak_basis, seed=seed, threads=threads,
        cudnn_benchmark=cudnn_benchmark)
    return dict(
        command=shlex.join(command) if command is not None else None,
        environment=_environment(dev),
        settings=settings,
        recipe=dict(max_iters=max_iters, global_batch=global_batch,
                    devices=list(PROJECTION_DEVICES),
                    source=f'max_iters from {paths[0]} (train_cfg) unless '
                    'given; global batch as given'),
        results=entries,
        ratios=_ratios(entries, labels[-1]) if compare_config else [],
        notes=notes)


# --------------------------------------------------------------------------
# Text output
# --------------------------------------------------------------------------
def _table(rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(c.rjust(w) for c, w in zip(r, widths))
                     for r in rows)


def _mib(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value / 2**20:,.0f}'


def format_report(result: Dict[str, object]) -> str:
    """Human-readable tables of a :func:`run_benchmark` result."""
    s = result['settings']
    env = result['environment']
    measured = [e for e in result['results'] if not e.get('oom')]
    lines = [
        f"device {s['device']} ({env.get('device_name') or env['processor']})"
        f", torch {env['torch']}, {env['torch_threads']} threads, "
        f"dtype {s['dtype']}, compile {s['compile']}, with_cp {s['with_cp']}"
        f", cnn_with_cp {s['cnn_with_cp']}, chunk {s['clip_chunk_size']}, "
        'cudnn.benchmark ' + ('from config' if s.get('cudnn_benchmark')
                              is None else str(s['cudnn_benchmark'])),
        f"{s['warmup']} warm-up + {s['iters']} timed steps; peak rate "
        f"{s['peak_tflops'] or 'n/a'} TFLOP/s ({s['peak_basis']})",
    ]
    if result.get('command'):
        lines.append(f"command: {result['command']}")
    rows = [[
        'config', 'sharing', 'B', 'T', 'step s', 'cpu s', 'samples/s',
        'peak MiB', 'saved MiB', 'params', 'TF-layer params', 'GFLOP/step',
        'TFLOP/s', 'MFU'
    ]]
    for e in result['results']:
        if e.get('oom'):
            rows.append([e['label'], e['sharing'], str(e['batch_size'])] +
                        ['out of memory'] + [''] * 10)
            continue
        t = str(e['num_clips']) + ('*' if e['num_clips_changed'] else '')
        rows.append([
            e['label'], e['sharing'], str(e['batch_size']), t,
            f"{e['step_s']:.3f}", f"{e['cpu_s']:.3f}",
            f"{e['samples_per_s']:.3f}", _mib(e['peak_memory_bytes']),
            _mib(e.get('saved_activation_bytes')),
            f"{e['params_total']:,}", f"{e['params_transformer_layers']:,}",
            f"{e['flops_per_step'] / 1e9:,.1f}",
            f"{e['achieved_tflops']:.3f}",
            'n/a' if e['mfu'] is None else f"{100 * e['mfu']:.1f}%"
        ])
    lines += ['', _table(rows)]
    if any(e['num_clips_changed'] for e in measured):
        lines.append('* T differs from the config value '
                     f"{measured[0]['num_clips_config']}")
    kinds = sorted({e['peak_memory_kind'] for e in measured})
    lines.append('peak memory: ' + '; '.join(kinds))

    if result['ratios']:
        rows = [['config / compare', 'B', 'speed-up', 'cpu speed-up',
                 'samples/s ratio', 'peak mem ratio', 'saved ratio',
                 'FLOP ratio', 'params ratio']]
        for r in result['ratios']:
            rows.append([
                f"{r['config']} / {r['compare']}", str(r['batch_size']),
                f"{r['speedup']:.3f}", f"{r['cpu_speedup']:.3f}",
                f"{r['samples_per_s_ratio']:.3f}",
                f"{r.get('peak_memory_ratio', float('nan')):.3f}",
                f"{r.get('saved_activation_ratio', float('nan')):.3f}",
                f"{r['flops_ratio']:.3f}", f"{r['params_ratio']:.3f}"
            ])
        lines += ['', _table(rows)]

    for e in measured:
        if 'breakdown' not in e:
            continue
        b = e['breakdown']
        rows = [['part', 'median s', 'cpu s', 'share of step', 'GFLOP',
                 'TFLOP/s']]
        for name, p in b['parts'].items():
            rows.append([
                name, f"{p['step_s']:.4f}", f"{p['cpu_s']:.4f}",
                f"{100 * p['share_of_step']:.1f}%",
                'n/a' if p['flops'] is None else f"{p['flops'] / 1e9:,.1f}",
                'n/a' if p['achieved_tflops'] is None else
                f"{p['achieved_tflops']:.3f}"
            ])
        rows.append([
            'sum of parts', f"{b['sum_s']:.4f}",
            f"{sum(p['cpu_s'] for p in b['parts'].values()):.4f}",
            f"{100 * b['sum_s'] / e['step_s']:.1f}%", '', ''
        ])
        rows.append(['full step', f"{e['step_s']:.4f}", f"{e['cpu_s']:.4f}",
                     '100.0%', f"{e['flops_per_step'] / 1e9:,.1f}",
                     f"{e['achieved_tflops']:.3f}"])
        how = 'eager' if b['eager'] else 'CNNs compiled'
        lines += ['', f"breakdown {e['label']} B={e['batch_size']} "
                  f'(each part alone, forward + backward, {how})',
                  _table(rows)]

    recipe = result['recipe']
    rows = [['config', 'B'] + [f'{n} devices' for n in recipe['devices']]]
    scaled = any('projection_t_scaled' in e for e in measured)
    for e in measured:
        proj = e.get('projection_t_scaled') or e['projection']
        rows.append([e['label'], str(e['batch_size'])] + [
            f"{proj['hours'][str(n)]:,.1f} h ({proj['days'][str(n)]:.1f} d)"
            for n in recipe['devices']
        ])
    lines += [
        '', f"projected wall-clock of {recipe['max_iters']:,} iterations at "
        f"global batch {recipe['global_batch']}, assuming perfectly linear "
        'scaling at the measured per-device samples/s'
        + (' scaled by T_used / T_config' if scaled else '')
        + ' (no data loading or communication cost):',
        _table(rows)
    ]
    shown = set()
    for e in result['results']:
        fm = e.get('find_max_batch')
        if fm is None or e['label'] in shown:
            continue
        shown.add(e['label'])
        tries = ', '.join(
            f"{t['batch_size']}: "
            + (f"{t['samples_per_s']:.1f} samples/s, "
               f"{_mib(t['peak_allocated_bytes'])} MiB" if t['fits'] else
               'out of memory') for t in fm['tries'])
        lines.append(f"largest batch that fits, {e['label']}: "
                     f"{fm['max_batch_size']} ({tries})")
    return '\n'.join(lines)
