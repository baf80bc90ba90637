"""Time and memory of the negative samplers, side by side.

Used by ``tools/analysis/benchmark_sampler.py``.  Every sampler runs on
random features ``Tensor[B, T, D]`` for each ``(B, T)`` of ``sizes`` (by
default the paper's ablation batch, 4 x 30 clips, and main batch, 256 x 30,
with D = 768); recorded are the median time of a call and its peak memory
(CUDA allocator, or PyTorch's CPU allocator through the profiler).
``docs/benchmark_methods.md`` says how.
"""
import statistics
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from avtoolkit.registry import NEGATIVE_SAMPLERS

from .memory import profiler_peak_bytes

__all__ = ['default_samplers', 'measure', 'run_benchmark', 'format_table']

DEFAULT_SIZES: Tuple[Tuple[int, int], ...] = ((4, 30), (256, 30))


def default_samplers(num_negatives: int = 32,
                     chunk_size: int = 1024) -> List[Tuple[str, dict]]:
    """``(label, config)`` of every sampler variant benchmarked."""
    k = num_negatives
    cans = dict(type='CANSSampler', num_negatives=k)
    return [
        ('CANS-Similar gaussian', dict(cans, mode='similar')),
        ('CANS-Similar percentile',
         dict(cans, mode='similar', interval_method='percentile')),
        ('CANS-Dissimilar gaussian', dict(cans, mode='dissimilar')),
        (f'CANS-Similar gaussian chunk={chunk_size}',
         dict(cans, mode='similar', chunk_size=chunk_size)),
        ('Current-Sequence all T-1', dict(type='CurrentSequenceSampler')),
        (f'Current-MiniBatch K={k}',
         dict(type='CurrentMiniBatchSampler', num_negatives=k)),
        ('Current-MiniBatch all N-1',
         dict(type='CurrentMiniBatchSampler', num_negatives=None)),
    ]


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def measure(sampler,
            features: torch.Tensor,
            repeats: int = 3,
            warmup: int = 1,
            seed: int = 0) -> Dict[str, float]:
    """Time and peak memory of ``sampler(features)``; see the module doc.

    Returns:
        ``dict(time_ms, time_ms_min, peak_bytes)``.
    """
    device = features.device
    gen = torch.Generator(device=device).manual_seed(seed)
    for _ in range(warmup):
        sampler(features, gen)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        sampler(features, gen)
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        sampler(features, gen)  # the output is part of the peak
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = profiler_peak_bytes(lambda: sampler(features, gen))
    return dict(time_ms=statistics.median(times),
                time_ms_min=min(times),
                peak_bytes=int(peak))


def run_benchmark(device: str = 'cpu',
                  sizes: Sequence[Tuple[int, int]] = DEFAULT_SIZES,
                  dim: int = 768,
                  num_negatives: int = 32,
                  chunk_size: int = 1024,
                  repeats: int = 3,
                  warmup: int = 1,
                  seed: int = 0,
                  samplers: Optional[List[Tuple[str, dict]]] = None
                  ) -> List[dict]:
    """Benchmark every sampler at every size.

    Returns:
        One record per (sampler, size): ``sampler``, ``batch``, ``seq_len``,
        ``clips`` (B*T), ``dim``, ``num_negatives`` (K returned),
        ``device``, ``time_ms``, ``time_ms_min``, ``peak_bytes``,
        ``memory_measure`` (which of the two measures was used).
    """
    device = torch.device(device)
    configs = samplers or default_samplers(num_negatives, chunk_size)
    records = []
    for batch, seq_len in sizes:
        gen = torch.Generator().manual_seed(seed)
        features = torch.randn((batch, seq_len, dim), generator=gen)
        features = features.to(device)
        for label, cfg in configs:
            sampler = NEGATIVE_SAMPLERS.build(cfg)
            result = measure(sampler, features, repeats, warmup, seed)
            k = sampler.num_outputs(batch * seq_len, seq_len)
            records.append(
                dict(sampler=label,
                     batch=batch,
                     seq_len=seq_len,
                     clips=batch * seq_len,
                     dim=dim,
                     num_negatives=k,
                     device=str(device),
                     memory_measure=('cuda max_memory_allocated'
                                     if device.type == 'cuda' else
                                     'cpu profiler allocated-bytes peak'),
                     **result))
    return records


def _human(num_bytes: int) -> str:
    value = float(num_bytes)
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if value < 1024 or unit == 'GiB':
            return f'{value:.1f} {unit}' if unit != 'B' else f'{int(value)} B'
        value /= 1024
    return f'{value:.1f} GiB'


def format_table(records: List[dict]) -> str:
    """A plain-text table, one row per sampler, one column pair per size."""
    sizes = sorted({(r['batch'], r['seq_len']) for r in records},
                   key=lambda s: s[0] * s[1])
    labels = list(dict.fromkeys(r['sampler'] for r in records))
    by_key = {(r['sampler'], r['batch'], r['seq_len']): r for r in records}
    head = ['sampler'] + [
        f'{b}x{t}={b * t} {col}' for b, t in sizes for col in ('ms', 'peak')
    ]
    rows = [head]
    for label in labels:
        row = [label]
        for b, t in sizes:
            rec = by_key.get((label, b, t))
            if rec is None:
                row += ['-', '-']
            else:
                row += [f"{rec['time_ms']:.1f}", _human(rec['peak_bytes'])]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    if records:
        lines.append(f"device: {records[0]['device']}; memory: "
                     f"{records[0]['memory_measure']}; ms: median of the "
                     'timed calls.')
    return '\n'.join(lines)
