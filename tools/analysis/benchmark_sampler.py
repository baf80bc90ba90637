"""Benchmark the MEP negative samplers: time and peak memory, side by side.

Examples::

    python tools/analysis/benchmark_sampler.py            # cuda if present
    python tools/analysis/benchmark_sampler.py --device cpu --threads 1
    python tools/analysis/benchmark_sampler.py --json > samplers.json

Sizes default to the paper's ablation batch (4 x 30 clips) and main batch
(256 x 30 clips) with D = 768; see ``docs/benchmark_methods.md`` for what
the memory column measures on each device.
"""
import argparse
import json

import torch

from avtoolkit.benchmarks.sampler import (DEFAULT_SIZES, format_table,
                                          run_benchmark)


def parse_sizes(text: str):
    sizes = []
    for item in text.split(','):
        batch, seq_len = item.lower().split('x')
        sizes.append((int(batch), int(seq_len)))
    return sizes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='device to run on (default: cuda if available, else cpu)')
    parser.add_argument(
        '--json', action='store_true',
        help='print the records as JSON instead of a table')
    parser.add_argument(
        '--sizes', type=parse_sizes,
        default=list(DEFAULT_SIZES),
        help='comma-separated BxT list (default: 4x30,256x30)')
    parser.add_argument('--dim', type=int, default=768,
                        help='feature width D (default 768)')
    parser.add_argument('--num-negatives', type=int, default=32,
                        help='K of the sampled variants (default 32, the '
                        'CANSSampler default)')
    parser.add_argument('--chunk-size', type=int, default=1024,
                        help='row chunk of the chunked CANS variant '
                        '(default 1024)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='timed calls per measurement (default 3)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed calls first (default 1)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    records = run_benchmark(
        device=args.device,
        sizes=args.sizes,
        dim=args.dim,
        num_negatives=args.num_negatives,
        chunk_size=args.chunk_size,
        repeats=args.repeats,
        warmup=args.warmup,
        seed=args.seed)
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(format_table(records))


if __name__ == '__main__':
    main()
