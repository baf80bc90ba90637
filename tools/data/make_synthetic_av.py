"""Generate the synthetic audio-visual demo dataset.

Example::

    python tools/data/make_synthetic_av.py data/synthetic_av \\
        --num-videos 100 --seconds 8 --num-classes 10 --workers 2

Running it again with the same arguments only checks the folder and prints
the stored summary.  See docs/data_preparation.md ("Synthetic demo data")
for the layout and the design of the content.
"""
import argparse
import os.path as osp
import sys

# Run from a source checkout without installing.
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from avtoolkit.data_prep.synthetic_av import (  # noqa: E402
    BROKEN_KINDS, generate_synthetic_av)
from avtoolkit.utils.cli import exit_status  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write synthetic H.264/AAC videos whose picture and '
        'sound share a class and per-second events.')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--num-videos', type=int, default=100)
    parser.add_argument('--seconds', type=int, default=8,
                        help='duration of every video (whole seconds)')
    parser.add_argument('--num-classes', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--fps', type=int, default=16)
    parser.add_argument('--sample-rate', type=int, default=16000,
                        help='audio sample rate in Hz (mono AAC)')
    parser.add_argument('--val-fraction', type=float, default=0.2,
                        help='fraction of each class listed in val_list.txt')
    parser.add_argument('--scene-seconds', type=int, default=1,
                        help='seconds per scene: background, distractor '
                        'blobs and audio background are redrawn for every '
                        'scene; 0 = one scene per video (default 1)')
    parser.add_argument('--workers', type=int, default=1,
                        help='worker processes (the content does not '
                        'depend on it)')
    parser.add_argument('--overwrite', action='store_true',
                        help='allow writing into a non-empty folder that '
                        'was not made by this generator')
    parser.add_argument('--broken', action='store_true',
                        help='also write broken inputs (' +
                        ', '.join(BROKEN_KINDS) + ') into OUT_DIR/broken')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress bar and no summary')
    return parser.parse_args(argv)


def main(argv=None):
    args = vars(parse_args(argv))
    verbose = not args.pop('quiet')
    out_dir = args.pop('out_dir')
    return exit_status(
        lambda: generate_synthetic_av(out_dir, verbose=verbose, **args),
        (FileExistsError, NotADirectoryError, ValueError, TypeError),
        status=2)


if __name__ == '__main__':
    sys.exit(main())
