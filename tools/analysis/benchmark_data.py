#!/usr/bin/env python
"""Samples per second per CPU core of 30-s pretraining samples: shards of
re-encoded video vs raw files with segment decoding vs whole-video decoding.

Example::

    python tools/analysis/benchmark_data.py --json

See ``docs/benchmark_methods.md`` for what is measured.
"""
import argparse
import json
import sys

from avtoolkit.benchmarks.data import format_summary, run_benchmark


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--videos', type=int, default=2,
                   help='generated videos (default 2)')
    p.add_argument('--duration', type=float, default=35.0,
                   help='seconds per video (default 35)')
    p.add_argument('--width', type=int, default=640)
    p.add_argument('--height', type=int, default=360)
    p.add_argument('--fps', type=int, default=30)
    p.add_argument('--sample-rate', type=int, default=48000,
                   help='audio rate of the generated videos (stereo)')
    p.add_argument('--rounds', type=int, default=3,
                   help='samples per video and variant (default 3)')
    p.add_argument('--work-dir', help='keep generated videos and shards '
                   'here (default: a temporary folder, removed afterwards)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', action='store_true',
                   help='print the figures as JSON (after the table)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    summary = run_benchmark(num_videos=args.videos, duration=args.duration,
                            width=args.width, height=args.height,
                            fps=args.fps, sample_rate=args.sample_rate,
                            rounds=args.rounds, work_dir=args.work_dir,
                            seed=args.seed, verbose=not args.json)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0 if summary['meets_3x'] else 1


if __name__ == '__main__':
    sys.exit(main())
