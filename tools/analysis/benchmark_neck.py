"""Forward + backward cost of the AVBERT neck under each sharing variant.

Examples::

    python tools/analysis/benchmark_neck.py --device cpu --threads 2
    python tools/analysis/benchmark_neck.py --device cuda --json > neck.json

Every variant (none, layer, all, part, part-nolayer) is built at full size
(D=768, L=6, A=12, E=3072, mid fusion) and timed on random clip embeddings
x_v, x_a of shape (B, T, 768) in training mode, repetitions interleaved across
variants after a warm-up; medians are reported with their ratio to ``none``.
See ``docs/benchmark_methods.md`` for what the memory columns measure.
"""
import argparse
import json

from avtoolkit.benchmarks.neck import (VARIANTS, benchmark_neck_variants,
                                       format_benchmark)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads for the run')
    parser.add_argument('--batch', type=int, default=8, help='B')
    parser.add_argument('--seq-len', type=int, default=30, help='T')
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed passes per variant')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed passes per variant')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS),
                        choices=list(VARIANTS))
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    results = benchmark_neck_variants(
        variants=args.variants,
        device=args.device,
        batch=args.batch,
        seq_len=args.seq_len,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads)
    if args.json:
        print(json.dumps(results))
    else:
        print(f'B={args.batch} T={args.seq_len} device={args.device} '
              f'threads={args.threads} repeats={args.repeats}')
        print(format_benchmark(results))


if __name__ == '__main__':
    main()
