#!/usr/bin/env python
"""Pack a list of videos into WebDataset tar shards for AVWebDataset.

Example::

    python tools/data/build_shards.py --list data/k700/train_list.txt \\
        --out data/k700/shards_train --reencode --workers 16

See ``avtoolkit/data_prep/shards.py`` and docs/data_preparation.md.
"""
import argparse
import json
import sys

from avtoolkit.data_prep.shards import build_shards, format_report


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--list', required=True,
                   help='list file: "path [label ...]" per line')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--root', help='folder of relative list paths '
                   '(default: the folder of the list)')
    p.add_argument('--shard-size', type=int, default=100,
                   help='list entries per shard (default 100)')
    p.add_argument('--workers', type=int, default=1,
                   help='processes, one shard each at a time (default 1)')
    p.add_argument('--reencode', action='store_true',
                   help='store a small H.264 + mono AAC copy instead of the '
                   'original bytes')
    p.add_argument('--short-side', type=int, default=128,
                   help='short side of re-encoded video (default 128)')
    p.add_argument('--fps', type=float, default=16.0,
                   help='frame rate of re-encoded video (default 16)')
    p.add_argument('--sample-rate', type=int, default=16000,
                   help='audio rate of re-encoded audio (default 16000)')
    p.add_argument('--crf', type=int, default=23, help='x264 CRF (23)')
    p.add_argument('--preset', default='veryfast', help='x264 preset')
    p.add_argument('--keyframe-interval', type=float, default=1.0,
                   help='seconds between key frames when re-encoding (1.0)')
    p.add_argument('--allow-no-audio', action='store_true',
                   help='keep inputs without an audio stream')
    p.add_argument('--min-duration', type=float, default=0.0,
                   help='skip inputs shorter than this many seconds')
    p.add_argument('--prefix', default='shard', help='shard name prefix')
    p.add_argument('--overwrite', action='store_true',
                   help='replace shards built from another list/options')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--json', action='store_true',
                   help='print the report as JSON')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        report = build_shards(
            args.list, args.out, root=args.root, workers=args.workers,
            overwrite=args.overwrite, progress=not args.no_progress,
            shard_size=args.shard_size, reencode=args.reencode,
            short_side=args.short_side, fps=args.fps,
            sample_rate=args.sample_rate, crf=args.crf, preset=args.preset,
            keyframe_interval=args.keyframe_interval,
            require_audio=not args.allow_no_audio,
            min_duration=args.min_duration, prefix=args.prefix)
    except FileExistsError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0 if report['num_samples'] > 0 else 1


if __name__ == '__main__':
    sys.exit(main())
