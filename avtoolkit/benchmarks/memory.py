"""Memory probes of the benchmarks.

* :func:`saved_activation_bytes`: the bytes of the tensors autograd keeps
  for the backward pass of one call, parameters excluded;
* :class:`MemoryProbe`: the peak memory of a run of training steps, from
  the CUDA caching allocator or, on the CPU, from the resident set size;
* :func:`state_bytes`: the bytes of a model's resident training state;
* :func:`profiler_peak_bytes`: the peak of PyTorch's CPU allocator during
  one call, from ``torch.profiler``.

``docs/benchmark_methods.md`` says what each figure includes.
"""
import ctypes
import gc
import json
import os
import resource
import sys
import tempfile
import warnings
from typing import Callable, Dict, Optional

import torch
from torch import nn

__all__ = [
    'saved_activation_bytes', 'MemoryProbe', 'state_bytes', 'trim_heap',
    'profiler_peak_bytes'
]


def saved_activation_bytes(module: nn.Module,
                           run: Callable[[], object]) -> int:
    """Bytes of distinct non-parameter tensors saved for backward by ``run()``.

    Storages are counted once each (views of one tensor share a storage).
    """
    param_ptrs = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen: Dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in param_ptrs:
            seen[ptr] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    del out
    return sum(seen.values())


def _proc_status_bytes(key: str) -> Optional[int]:
    """A ``kB`` field of ``/proc/self/status`` in bytes (Linux), or None."""
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


def trim_heap(collect: bool = True) -> None:
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


class MemoryProbe:
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

    Call :meth:`set_baseline` before the model is built, :meth:`start`
    before the timed steps and :meth:`stop` after them.
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
            trim_heap(collect=False)
            self.reset_ok = _reset_rss_peak() and \
                _proc_status_bytes('VmHWM') is not None
            self.baseline = _proc_status_bytes('VmRSS') or 0

    def stop(self, resident_state_bytes: int) -> Dict[str, object]:
        """The peak since :meth:`start`: ``peak_memory_bytes`` (None when
        it cannot be measured), ``peak_memory_kind`` and the raw figures
        it was derived from."""
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


def state_bytes(model: nn.Module, optim_wrapper) -> Dict[str, int]:
    """Bytes of the parameters, the buffers and the optimizer state."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    state = 0
    for per_param in optim_wrapper.optimizer.state.values():
        for value in per_param.values():
            if isinstance(value, torch.Tensor):
                state += value.numel() * value.element_size()
    return dict(param_bytes=int(params), buffer_bytes=int(buffers),
                optimizer_state_bytes=int(state))


def profiler_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak tensor bytes allocated during ``fn()``, from ``torch.profiler``.

    The profiler's CPU memory events carry the running total of bytes
    allocated since profiling started; its maximum is the peak.  Only what
    goes through PyTorch's CPU allocator counts (tensor storage), not
    buffers that BLAS or sort kernels allocate on their own, nor allocator
    overhead.
    """
    from torch.profiler import ProfilerActivity, profile
    with warnings.catch_warnings():
        # The profiler warns that it keeps the events of one cycle only.
        warnings.simplefilter('ignore', UserWarning)
        with profile(activities=[ProfilerActivity.CPU],
                     profile_memory=True) as prof:
            fn()
    # The trace is read back from a scratch file that nobody else sees.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'trace.json')
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)['traceEvents']
    totals = [
        e['args']['Total Allocated'] for e in events
        if e.get('name') == '[memory]' and 'Total Allocated' in e.get(
            'args', {})
    ]
    return int(max(totals + [0]))
