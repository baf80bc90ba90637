"""What a benchmarked training step runs on.

The AVBERT model and its optim wrapper built from a config as the Runner
builds them (precision as ``tools/train.py --amp`` sets it), a synthetic
batch of the pipeline's shapes, the switches the measurements need
(autocast, compiled code run eagerly, activation checkpointing off) and the
timer of one call.
"""
import contextlib
import gc
import time
from typing import Callable, Iterator, Optional, Tuple

import torch
from torch import nn

from .train_config import optim_wrapper_cfg

__all__ = [
    'DTYPES', 'build_model', 'synthetic_batch', 'autocast', 'run_eagerly',
    'checkpointing_off', 'checkpointing_on', 'release_cuda', 'StepTimer'
]

#: ``--dtype`` values and the autocast dtype each stands for.
DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


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


def build_model(cfg, device: torch.device, dtype: str):
    """``(model, optim_wrapper)`` of a pretraining config, initialised with
    ``init_weights`` and in training mode, as the Runner prepares them.

    Raises:
        TypeError: when the config does not build an AVBERT model.
    """
    from mmengine.optim import build_optim_wrapper

    from avtoolkit.models.algorithms import AVBERT
    from avtoolkit.registry import MODELS
    from avtoolkit.utils import register_all_modules
    from avtoolkit.utils.logs import init_weights_quietly

    register_all_modules(init_default_scope=True)
    model = MODELS.build(cfg.model)
    if not isinstance(model, AVBERT):
        raise TypeError('the training benchmark needs an AVBERT pretraining '
                        f'model, the config builds {type(model).__name__}')
    # As the Runner does before training, without its per-parameter report.
    init_weights_quietly(model)
    model = model.to(device).train()
    ow_cfg = optim_wrapper_cfg(cfg.optim_wrapper, device, dtype)
    optim_wrapper = build_optim_wrapper(model, ow_cfg)
    if dtype != 'fp32' and device.type != 'cuda':
        optim_wrapper = _cpu_autocast_wrapper(
            optim_wrapper, ow_cfg.get('clip_grad'), DTYPES[dtype])
    return model, optim_wrapper


def synthetic_batch(shapes: dict, batch: int, device: torch.device,
                    seed: int) -> dict:
    """A batch as the pipeline packs it: uint8 video and float32 log-mel
    audio of the per-sample ``shapes`` (see ``input_shapes_from_config``),
    on ``device``."""
    gen = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (batch, ) + tuple(shapes['video']),
                          dtype=torch.uint8, generator=gen)
    audio = torch.randn((batch, ) + tuple(shapes['audio']), generator=gen)
    return dict(inputs=dict(video=video.to(device), audio=audio.to(device)))


def autocast(device: torch.device, dtype: str):
    """Autocast to ``dtype`` (no-op for ``fp32``)."""
    if dtype == 'fp32':
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


def run_eagerly():
    """Run everything compiled with :func:`torch.compile` (or
    ``nn.Module.compile``) eagerly for a while: ``FlopCounterMode`` and
    saved-tensor hooks see no operators inside compiled code."""
    return torch.compiler.set_stance('force_eager')


@contextlib.contextmanager
def checkpointing_off(model: nn.Module) -> Iterator[None]:
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


def checkpointing_on(model: nn.Module) -> bool:
    """Whether any module of the model checkpoints its activations."""
    return any(getattr(m, 'with_cp', False) is True for m in model.modules())


def release_cuda(optim_wrapper) -> None:
    """Drop the gradients and return cached CUDA memory (after an OOM)."""
    optim_wrapper.zero_grad()
    gc.collect()
    torch.cuda.empty_cache()


class StepTimer:
    """Wall and process CPU time of one call, CUDA synchronised around it."""

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
