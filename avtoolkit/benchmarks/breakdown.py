"""Where the time of one AVBERT training step goes.

Each part of a step runs and is timed alone, forward and backward (the
backward seeded with random output gradients), through the model's own
public methods:

=============  ============================================================
part           what runs
=============  ============================================================
``preprocess`` ``model.data_preprocessor(data, True)``
``visual_cnn`` ``model.visual_backbone(video)``
``audio_cnn``  ``model.audio_backbone(audio)``
``neck``       ``model.contextualise(x_v, x_a, mask, perm)`` (the masked
               pass and, with a multimodal CPP classifier, the mismatched
               pass)
``heads``      ``model.head_losses(outputs, perm)`` (negative sampler, MEP
               and CPP losses) and ``model.parse_losses``
``optimizer``  ``optim_wrapper.step()`` on gradients of zeros
=============  ============================================================

The mask and the permutation come from ``model.sample_step``, the inputs
of the neck and the heads from one untimed ``model.encode`` and
``model.contextualise``.  Each part's FLOPs are counted on its first run
(with activation checkpointing off), which is also its warm-up.
"""
import dataclasses
import statistics
from typing import Callable, Dict

import torch

from .train_setup import (StepTimer, autocast, checkpointing_off,
                          release_cuda, run_eagerly)

__all__ = ['COMPONENTS', 'component_steps', 'breakdown']

#: The parts of a step, in the order they are reported.
COMPONENTS = ('preprocess', 'visual_cnn', 'audio_cnn', 'neck', 'heads',
              'optimizer')

# Outputs of the neck that get a gradient in the neck's backward pass.
_NECK_OUTPUTS = ('y_v', 'y_a', 'z', 'z_mismatched')


def component_steps(model, data: dict, optim_wrapper, device: torch.device,
                    dtype: str) -> Dict[str, Callable[[], None]]:
    """Closures running each part of a training step alone (forward and
    backward), keyed by :data:`COMPONENTS`.

    Args:
        model: an AVBERT model in training mode.
        data: a batch as the data loader gives it.
        optim_wrapper: the model's optim wrapper (gradients are zeroed
            after every part).
        device, dtype: where the model runs and the autocast precision.
    """
    with torch.no_grad():
        batch = model.data_preprocessor(data, True)
        video, audio = batch['inputs']['video'], batch['inputs']['audio']
        with autocast(device, dtype):
            x_v0, x_a0 = (x.detach() for x in model.encode(video, audio))
    mask, perm = model.sample_step(x_v0.shape[0], x_v0.shape[1],
                                   x_v0.device)
    with torch.no_grad(), autocast(device, dtype):
        out0 = model.contextualise(x_v0, x_a0, mask, perm)
    # The heads' targets are the unmasked CNN embeddings.
    out0 = dataclasses.replace(out0, x_v=x_v0, x_a=x_a0)
    gen = torch.Generator(device=x_v0.device).manual_seed(0)

    def grad_like(x):
        return torch.randn(x.shape, generator=gen, device=x.device,
                           dtype=x.dtype)

    grads_v, grads_a = grad_like(x_v0), grad_like(x_a0)
    neck_grads = {f: grad_like(getattr(out0, f)) for f in _NECK_OUTPUTS
                  if getattr(out0, f) is not None}

    def preprocess():
        model.data_preprocessor(data, True)

    def cnn(backbone, clips, grad):

        def run():
            with autocast(device, dtype):
                out = backbone(clips)
            out.backward(grad)
            optim_wrapper.zero_grad()

        return run

    def neck():
        x_v = x_v0.detach().requires_grad_()
        x_a = x_a0.detach().requires_grad_()
        with autocast(device, dtype):
            out = model.contextualise(x_v, x_a, mask, perm)
        names = list(neck_grads)
        torch.autograd.backward([getattr(out, n) for n in names],
                                [neck_grads[n] for n in names])
        optim_wrapper.zero_grad()

    def heads():
        leaves = {
            f: getattr(out0, f).detach().requires_grad_()
            for f in ('x_v', 'x_a') + _NECK_OUTPUTS
            if getattr(out0, f) is not None
        }
        out = dataclasses.replace(out0, **leaves)
        with autocast(device, dtype):
            losses = model.head_losses(out, perm)
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


def breakdown(model, data: dict, optim_wrapper, device: torch.device,
              dtype: str, iters: int,
              timer: StepTimer) -> Dict[str, Dict[str, float]]:
    """Time (``iters`` runs, median) and FLOPs of each part of a step.

    Returns:
        ``{part: dict(step_s, times_s, cpu_s, flops, achieved_tflops)}``;
        ``flops`` is None when the part does not fit in memory without
        activation checkpointing.
    """
    from torch.utils.flop_counter import FlopCounterMode
    steps = component_steps(model, data, optim_wrapper, device, dtype)
    result: Dict[str, Dict[str, float]] = {}
    for name, fn in steps.items():
        # The counted run is also the warm-up of the part.
        try:
            with checkpointing_off(model), run_eagerly(), \
                    FlopCounterMode(display=False) as fc:
                fn()
            flops = int(fc.get_total_flops())
        except torch.cuda.OutOfMemoryError:
            # Without checkpointing the part does not fit: no count.
            release_cuda(optim_wrapper)
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
