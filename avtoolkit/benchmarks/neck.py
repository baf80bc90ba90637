"""Side-by-side cost of the parameter-sharing variants of the AVBERT neck.

Used by ``tools/analysis/benchmark_neck.py``.  Each variant of
:class:`~avtoolkit.models.necks.SharedLowRankTransformer` is timed on
forward + backward passes of random clip embeddings (B, T, D) in training
mode, repetitions interleaved across the variants; recorded are wall and
CPU time, the bytes saved for backward and, on CUDA, the peak allocation.
``docs/benchmark_methods.md`` says how.
"""
import statistics
import time
from typing import Dict, List, Optional, Sequence

import torch

from .memory import saved_activation_bytes

VARIANTS = {
    'none': dict(share_transformers='none', share_layers=False),
    'layer': dict(share_transformers='none', share_layers=True),
    'all': dict(share_transformers='all', share_layers=True),
    'part': dict(share_transformers='part', share_layers=True),
    'part-nolayer': dict(share_transformers='part', share_layers=False),
}


def _loss(outputs) -> torch.Tensor:
    total = 0.0
    for name in ('y_v', 'y_a', 'z'):
        value = getattr(outputs, name)
        if value is not None:
            total = total + value.float().square().mean()
    return total


def benchmark_neck_variants(variants: Optional[Sequence[str]] = None,
                            device: str = 'cpu',
                            batch: int = 8,
                            seq_len: int = 30,
                            repeats: int = 5,
                            warmup: int = 1,
                            threads: Optional[int] = None,
                            neck_cfg: Optional[dict] = None,
                            seed: int = 0) -> Dict[str, dict]:
    """Time forward + backward of the neck for each sharing variant.

    Args:
        variants: names from :data:`VARIANTS` (all by default).
        device: ``'cpu'`` or ``'cuda'``.
        batch: B.
        seq_len: T.
        repeats: timed passes per variant (interleaved).
        warmup: untimed passes per variant before timing.
        threads: ``torch.set_num_threads`` for the run, if given.
        neck_cfg: extra keyword arguments of the neck (e.g. smaller sizes).
        seed: seed of the random init and inputs.

    Returns:
        ``{variant: {...}}`` with ``params_transformer_layers``,
        ``times_s`` / ``cpu_times_s`` (all timed passes, wall and process CPU
        time), ``median_s``, ``median_cpu_s``, ``min_s``, ``saved_bytes``,
        ``peak_cuda_bytes`` (CUDA only) and, when ``'none'`` was measured,
        ``speedup_vs_none`` (of the medians), ``cpu_speedup_vs_none``,
        ``min_speedup_vs_none`` (of the fastest passes) and
        ``*_ratio_to_none``.
    """
    from avtoolkit.models.necks import SharedLowRankTransformer

    names = list(variants) if variants is not None else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f'unknown variants {unknown}; choose from '
                         f'{list(VARIANTS)}')
    if repeats < 1:
        raise ValueError('repeats must be >= 1')
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise RuntimeError('CUDA was requested but is not available')
    if threads is not None:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(seed)

    necks = {}
    for name in names:
        cfg = dict(VARIANTS[name])
        cfg.update(neck_cfg or {})
        necks[name] = SharedLowRankTransformer(**cfg).to(dev).train()
    dim = next(iter(necks.values())).embed_dim
    x_v = torch.randn(batch, seq_len, dim, device=dev)
    x_a = torch.randn(batch, seq_len, dim, device=dev)

    def step(neck):
        neck.zero_grad(set_to_none=True)
        _loss(neck(x_v, x_a)).backward()

    def sync():
        if dev.type == 'cuda':
            torch.cuda.synchronize(dev)

    results: Dict[str, dict] = {}
    for name, neck in necks.items():
        for _ in range(warmup):
            step(neck)
        neck.zero_grad(set_to_none=True)
        results[name] = dict(
            params_transformer_layers=sum(
                p.numel() for p in neck.transformers.parameters()),
            saved_bytes=saved_activation_bytes(
                neck, lambda n=neck: _loss(n(x_v, x_a))),
            times_s=[],
            cpu_times_s=[])
        if dev.type == 'cuda':
            sync()
            torch.cuda.reset_peak_memory_stats(dev)
            before = torch.cuda.memory_allocated(dev)
            step(neck)
            sync()
            results[name]['peak_cuda_bytes'] = (
                torch.cuda.max_memory_allocated(dev) - before)
        neck.zero_grad(set_to_none=True)

    for _ in range(repeats):
        for name, neck in necks.items():
            sync()
            start = time.perf_counter()
            cpu_start = time.process_time()
            step(neck)
            sync()
            results[name]['times_s'].append(time.perf_counter() - start)
            results[name]['cpu_times_s'].append(time.process_time() -
                                                cpu_start)
            neck.zero_grad(set_to_none=True)

    for res in results.values():
        res['median_s'] = statistics.median(res['times_s'])
        res['median_cpu_s'] = statistics.median(res['cpu_times_s'])
        res['min_s'] = min(res['times_s'])
    if 'none' in results:
        ref = results['none']
        for res in results.values():
            res['time_ratio_to_none'] = res['median_s'] / ref['median_s']
            res['speedup_vs_none'] = ref['median_s'] / res['median_s']
            res['cpu_speedup_vs_none'] = (ref['median_cpu_s'] /
                                          res['median_cpu_s'])
            res['min_speedup_vs_none'] = ref['min_s'] / res['min_s']
            res['saved_bytes_ratio_to_none'] = (res['saved_bytes'] /
                                                ref['saved_bytes'])
            if 'peak_cuda_bytes' in res:
                res['peak_cuda_ratio_to_none'] = (res['peak_cuda_bytes'] /
                                                  ref['peak_cuda_bytes'])
    return results


def format_benchmark(results: Dict[str, dict]) -> str:
    """A fixed-width table of :func:`benchmark_neck_variants` results."""
    has_cuda = any('peak_cuda_bytes' in r for r in results.values())
    header = ['variant', 'params', 'wall s', 'x faster', 'min s',
              'x faster (min)', 'cpu s', 'x faster (cpu)', 'saved MiB',
              'saved ratio']
    if has_cuda:
        header += ['peak MiB', 'peak ratio']
    rows: List[List[str]] = [header]
    for name, res in results.items():
        row = [
            name, f"{res['params_transformer_layers']:,}",
            f"{res['median_s']:.4f}",
            f"{res.get('speedup_vs_none', float('nan')):.2f}",
            f"{res['min_s']:.4f}",
            f"{res.get('min_speedup_vs_none', float('nan')):.2f}",
            f"{res['median_cpu_s']:.4f}",
            f"{res.get('cpu_speedup_vs_none', float('nan')):.2f}",
            f"{res['saved_bytes'] / 2**20:.1f}",
            f"{res.get('saved_bytes_ratio_to_none', float('nan')):.3f}"
        ]
        if has_cuda:
            row += [
                f"{res.get('peak_cuda_bytes', 0) / 2**20:.1f}",
                f"{res.get('peak_cuda_ratio_to_none', float('nan')):.3f}"
            ]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return '\n'.join('  '.join(c.rjust(w) for c, w in zip(r, widths))
                     for r in rows)
