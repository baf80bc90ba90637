"""Cost of full AVBERT training steps, for several configs side by side.

Used by ``tools/analysis/benchmark_train.py``.  For every config the model
is built at the size the config gives, fed synthetic tensors of the shapes
the config's training pipeline produces, and trained for a few steps
through the same code path as the Runner:
``model.train_step(data, optim_wrapper)`` with the config's optim wrapper.
Per config and batch size it records the step time (wall and CPU), the
peak and saved-activation memory, the FLOPs of a step and the model FLOPs
utilisation, a breakdown into the parts of the step
(:mod:`avtoolkit.benchmarks.breakdown`), a projection of the whole
recipe's wall-clock time (:mod:`avtoolkit.benchmarks.report`) and, on
CUDA, the largest batch that fits.  ``docs/benchmark_methods.md`` says how
each figure is measured.
"""
import dataclasses
import os
import shlex
import statistics
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch

from .breakdown import breakdown
from .memory import MemoryProbe, saved_activation_bytes, state_bytes, \
    trim_heap
from .report import (DEFAULT_GLOBAL_BATCH, PROJECTION_DEVICES, environment,
                     peak_tflops_for, project_recipe, ratios_to)
from .train_config import (input_shapes_from_config, load_benchmark_config,
                           sharing_name)
from .train_setup import (DTYPES, StepTimer, build_model, checkpointing_off,
                          checkpointing_on, release_cuda, run_eagerly,
                          synthetic_batch)

__all__ = ['run_benchmark']


# --------------------------------------------------------------------------
# Counted steps
# --------------------------------------------------------------------------
def _loss_of_one_forward(model, data: dict, optim_wrapper) -> torch.Tensor:
    """The summed loss of one forward pass, run as ``train_step`` runs it
    (optim context, data preprocessor, ``mode='loss'``)."""
    with optim_wrapper.optim_context(model):
        batch = model.data_preprocessor(data, True)
        losses = model(**batch, mode='loss')
    return model.parse_losses(losses)[0]


def _count_step(model, data: dict, optim_wrapper,
                record_saved: bool) -> Dict[str, Optional[int]]:
    """FLOPs of one train step, forward and backward apart (no recompute).

    With ``record_saved`` the bytes autograd saves in the forward pass are
    recorded too (only meaningful when no checkpointing was switched off).
    """
    from torch.utils.flop_counter import FlopCounterMode
    saved = None
    with checkpointing_off(model), run_eagerly():
        with FlopCounterMode(display=False) as fwd_counter:
            if record_saved:
                box = []
                saved = saved_activation_bytes(
                    model, lambda: box.append(
                        _loss_of_one_forward(model, data, optim_wrapper)))
                loss = box.pop()
            else:
                loss = _loss_of_one_forward(model, data, optim_wrapper)
        with FlopCounterMode(display=False) as bwd_counter:
            optim_wrapper.backward(loss)
        optim_wrapper.step()
        optim_wrapper.zero_grad()
    fwd, bwd = fwd_counter.get_total_flops(), bwd_counter.get_total_flops()
    return dict(forward_flops=int(fwd), backward_flops=int(bwd),
                flops_per_step=int(fwd + bwd), saved_activation_bytes=saved)


def _forward_saved_bytes(model, data: dict, optim_wrapper) -> int:
    """Saved-for-backward bytes of one forward pass as configured."""
    with run_eagerly():
        saved = saved_activation_bytes(
            model, lambda: _loss_of_one_forward(model, data, optim_wrapper))
    optim_wrapper.zero_grad()
    return saved


def _find_max_batch(model, optim_wrapper, shapes: dict,
                    device: torch.device, data_device: torch.device,
                    start: int, limit: int, seed: int,
                    step: Callable[[dict], None],
                    timer: StepTimer) -> Dict[str, object]:
    """Double the batch from ``start`` until CUDA runs out of memory."""
    tries: List[dict] = []
    batch, largest = start, None
    while batch <= limit:
        fits = _try_batch(optim_wrapper, shapes, batch, device, data_device,
                          seed, step, timer)
        tries.append(fits)
        if not fits['fits']:
            break
        largest = batch
        batch *= 2
    return dict(max_batch_size=largest, tries=tries, limit=limit,
                stopped_at_limit=batch > limit)


def _try_batch(optim_wrapper, shapes: dict, batch: int,
               device: torch.device, data_device: torch.device, seed: int,
               step: Callable[[dict], None],
               timer: StepTimer) -> Dict[str, object]:
    """One warm-up and one timed step at ``batch``, or the OOM error."""
    try:
        data = synthetic_batch(shapes, batch, data_device, seed)
        step(data)  # warm-up (allocator, cuDNN autotuning)
        torch.cuda.reset_peak_memory_stats(device)
        wall, _ = timer(lambda: step(data))
        return dict(batch_size=batch, fits=True, step_s=wall,
                    samples_per_s=batch / wall,
                    peak_allocated_bytes=int(
                        torch.cuda.max_memory_allocated(device)))
    except torch.cuda.OutOfMemoryError as exc:
        return dict(batch_size=batch, fits=False,
                    error=str(exc).splitlines()[0])
    finally:
        data = None
        release_cuda(optim_wrapper)


# --------------------------------------------------------------------------
# One config
# --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Settings:
    """The measurement settings shared by every config of a run."""
    device: torch.device
    dtype: str
    iters: int
    warmup: int
    breakdown_iters: int
    compile_target: Optional[str]
    compile_cfg: dict
    preload: bool
    find_max_batch: bool
    max_batch: int
    peak: Optional[float]
    seed: int
    cudnn_benchmark: Optional[bool]

    @property
    def data_device(self) -> torch.device:
        return self.device if self.preload else torch.device('cpu')


@dataclasses.dataclass
class _Subject:
    """One built model under measurement."""
    model: torch.nn.Module
    optim_wrapper: object
    step: Callable[[dict], None]
    timer: StepTimer
    memory: MemoryProbe
    counts: dict
    about: dict  # config, label, sharing: the first keys of every entry


def _measure_config(path: str, label: str, cfg, shapes: dict,
                    batch_sizes: Sequence[int], s: _Settings,
                    log: Callable[[str], None]) -> List[Dict[str, object]]:
    """The entries of one config, one per batch size; the model is freed
    before this returns."""
    try:
        return _measure_model(path, label, cfg, shapes, batch_sizes, s, log)
    finally:
        trim_heap()
        if s.device.type == 'cuda':
            torch.cuda.empty_cache()


def _measure_model(path: str, label: str, cfg, shapes: dict,
                   batch_sizes: Sequence[int], s: _Settings,
                   log: Callable[[str], None]) -> List[Dict[str, object]]:
    from avtoolkit.analysis.param_count import count_parameters

    cudnn_benchmark = s.cudnn_benchmark
    if cudnn_benchmark is None:
        # As the Runner sets it from the config.
        cudnn_benchmark = bool(
            (cfg.get('env_cfg') or {}).get('cudnn_benchmark', False))
    torch.backends.cudnn.benchmark = cudnn_benchmark

    memory = MemoryProbe(s.device)
    memory.set_baseline()
    torch.manual_seed(s.seed)
    model, optim_wrapper = build_model(cfg, s.device, s.dtype)
    cpp = model.cpp_head is not None
    if cpp and min(batch_sizes) < 2:
        raise ValueError(
            f'batch size {min(batch_sizes)}: correct pair prediction needs '
            'at least two sequences per batch (its mismatched pairs come '
            'from other videos of the batch)')
    train_step = model.train_step
    if s.compile_target == 'train_step':
        # What the Runner does with cfg.compile (Runner._maybe_compile).
        train_step = torch.compile(model.train_step, **s.compile_cfg)
    elif s.compile_target == 'cnn':
        for backbone in (model.visual_backbone, model.audio_backbone):
            backbone.cnn.compile(**s.compile_cfg)

    def step(data):
        train_step(data, optim_wrapper)

    subject = _Subject(
        model=model, optim_wrapper=optim_wrapper, step=step,
        timer=StepTimer(s.device), memory=memory,
        counts=count_parameters(model),
        about=dict(config=path, label=label, sharing=sharing_name(cfg)))
    max_batch_result = None
    if s.find_max_batch:
        log(f'[{label}] finding the largest batch that fits')
        max_batch_result = _find_max_batch(
            model, optim_wrapper, shapes, s.device, s.data_device,
            min(batch_sizes), s.max_batch, s.seed, step, subject.timer)
    entries = [
        _measure_batch(subject, shapes, batch, cudnn_benchmark, s, log)
        for batch in sorted(batch_sizes)
    ]
    if max_batch_result is not None:
        for entry in entries:
            entry['find_max_batch'] = max_batch_result
    return entries


def _measure_batch(subject: _Subject, shapes: dict, batch: int,
                   cudnn_benchmark: bool, s: _Settings,
                   log: Callable[[str], None]) -> Dict[str, object]:
    """The entry of one batch size: timed steps, memory, FLOPs and the
    breakdown, or ``oom=True``."""
    model, optim_wrapper = subject.model, subject.optim_wrapper
    step, timer = subject.step, subject.timer
    label = subject.about['label']
    data = synthetic_batch(shapes, batch, s.data_device, s.seed)
    oom = None
    try:
        log(f'[{label}] B={batch}: {s.warmup} warm-up step(s)')
        warmup_times = [timer(lambda: step(data))[0]
                        for _ in range(s.warmup)]
        log(f'[{label}] B={batch}: {s.iters} timed step(s)')
        subject.memory.start()
        timed = [timer(lambda: step(data)) for _ in range(s.iters)]
    except torch.cuda.OutOfMemoryError as exc:
        oom = str(exc).splitlines()[0]
    if oom is not None:
        # Out of the except block: its traceback no longer holds the
        # step's tensors.
        log(f'[{label}] B={batch}: out of memory')
        data = None
        release_cuda(optim_wrapper)
        return dict(subject.about, batch_size=batch, oom=True, error=oom)
    state = state_bytes(model, optim_wrapper)
    mem = subject.memory.stop(sum(state.values()))
    times = [w for w, _ in timed]
    cpu_times = [c for _, c in timed]
    step_s = statistics.median(times)
    log(f'[{label}] B={batch}: counted step (FLOPs)')
    checkpointing = checkpointing_on(model)
    try:
        flops = _count_step(model, data, optim_wrapper,
                            record_saved=not checkpointing)
        flops['flops_counted_at_batch'] = batch
    except torch.cuda.OutOfMemoryError:
        # Only possible with checkpointing, which the count turns off:
        # count a batch of two and scale (the cost is linear in B, up to
        # the negative sampler's small B^2 term).
        release_cuda(optim_wrapper)
        small = 2 if model.cpp_head is not None else 1
        log(f'[{label}] B={batch}: out of memory without checkpointing;'
            f' counting FLOPs at B={small}')
        flops = _count_step(
            model, synthetic_batch(shapes, small, s.data_device, s.seed),
            optim_wrapper, record_saved=False)
        for key in ('forward_flops', 'backward_flops', 'flops_per_step'):
            flops[key] = int(flops[key] * batch / small)
        flops['flops_counted_at_batch'] = small
    if checkpointing:
        log(f'[{label}] B={batch}: forward pass (saved activations)')
        flops['saved_activation_bytes'] = _forward_saved_bytes(
            model, data, optim_wrapper)
    counts = subject.counts
    entry: Dict[str, object] = dict(
        subject.about,
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
    entry['mfu'] = entry['achieved_tflops'] / s.peak if s.peak else None
    if s.breakdown_iters > 0:
        log(f'[{label}] B={batch}: breakdown')
        parts = breakdown(model, data, optim_wrapper, s.device, s.dtype,
                          s.breakdown_iters, timer)
        total = sum(p['step_s'] for p in parts.values())
        for part in parts.values():
            part['share_of_step'] = part['step_s'] / step_s
        entry['breakdown'] = dict(
            parts=parts, sum_s=total, unaccounted_s=step_s - total,
            eager=s.compile_target != 'cnn')
    return entry


# --------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------
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
    """Measure full training steps of each config; see the module doc
    and ``docs/benchmark_methods.md``.

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
        peak_tflops: peak rate for MFU (default from
            :data:`~avtoolkit.benchmarks.report.PEAK_TFLOPS`).
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

    settings = _Settings(
        device=dev, dtype=dtype, iters=iters, warmup=warmup,
        breakdown_iters=breakdown_iters, compile_target=compile_target,
        compile_cfg=compile_cfg, preload=preload,
        find_max_batch=find_max_batch, max_batch=max_batch, peak=peak,
        seed=seed, cudnn_benchmark=cudnn_benchmark)
    entries: List[dict] = []
    for path, label, cfg, shape in zip(paths, labels, cfgs, shapes):
        entries.extend(_measure_config(path, label, cfg, shape, batch_sizes,
                                       settings, log))

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
    recorded = dict(
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
        environment=environment(dev),
        settings=recorded,
        recipe=dict(max_iters=max_iters, global_batch=global_batch,
                    devices=list(PROJECTION_DEVICES),
                    source=f'max_iters from {paths[0]} (train_cfg) unless '
                    'given; global batch as given'),
        results=entries,
        ratios=ratios_to(entries, labels[-1]) if compare_config else [],
        notes=notes)
