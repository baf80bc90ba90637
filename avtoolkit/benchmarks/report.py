"""Figures derived from measured training steps, and their text report.

Peak rates of known GPUs for the model FLOPs utilisation
(:data:`PEAK_TFLOPS`, :func:`peak_tflops_for`), the projected wall-clock
time of a whole recipe (:func:`project_recipe`), the ratios of each config
to the compared one, the software and hardware a result was measured on,
and the tables of :func:`format_report`.
"""
import os
import platform
from typing import Dict, List, Optional, Sequence, Tuple

import torch

__all__ = [
    'PEAK_TFLOPS', 'DEFAULT_GLOBAL_BATCH', 'PROJECTION_DEVICES',
    'peak_tflops_for', 'project_recipe', 'ratios_to', 'environment',
    'format_report'
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

#: Global batch of the projected recipe unless given (the paper's).
DEFAULT_GLOBAL_BATCH = 256
#: Device counts of the projection.
PROJECTION_DEVICES = (8, 64)


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


def ratios_to(entries: List[dict], reference: str) -> List[Dict[str, object]]:
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


def environment(device: torch.device) -> Dict[str, object]:
    """Versions, processor and device a result was measured with."""
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


def _table(rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(c.rjust(w) for c, w in zip(r, widths))
                     for r in rows)


def _mib(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value / 2**20:,.0f}'


def format_report(result: Dict[str, object]) -> str:
    """Human-readable tables of a
    :func:`~avtoolkit.benchmarks.train_step.run_benchmark` result."""
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
