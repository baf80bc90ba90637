"""Write synthetic data in the layout of a downstream dataset.

Examples::

    python tools/data/make_synthetic_downstream.py data/demo_ucf101 \\
        --layout ucf101 --num-videos 100 --seconds 4 --num-classes 10 \\
        --width 160 --num-groups 5 --workers 2
    python tools/data/make_synthetic_downstream.py data/synthetic_esc50 \\
        --layout esc50 --num-videos 100 --seconds 5

Layouts: ucf101 (videos/<Class>/..., ucfTrainTestlist/), kinetics_sounds
(videos/, train.csv, validate.csv, classes.txt), charades (Charades_v1_480/,
Charades_v1_{train,test}.csv) and esc50 (audio/*.wav, meta/esc50.csv); see
avtoolkit/data_prep/synthetic_layouts.py and docs/downstream.md.  Running it
again with the same arguments only checks the folder.
"""
import argparse
import os.path as osp
import sys

# Run from a source checkout without installing.
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from avtoolkit.data_prep.synthetic_layouts import (  # noqa: E402
    LAYOUTS, generate_synthetic_downstream)
from avtoolkit.utils.cli import exit_status  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write synthetic audio-visual data in the on-disk '
        'layout of UCF101, Kinetics-Sounds, Charades or ESC-50.')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--layout', required=True, choices=LAYOUTS)
    parser.add_argument('--num-videos', type=int, default=60,
                        help='videos (ESC-50: audio clips), balanced over '
                        'the classes')
    parser.add_argument('--seconds', type=int, default=4,
                        help='length of every video or clip (ESC-50: 5)')
    parser.add_argument('--num-classes', type=int, default=6,
                        help='classes of the generator (Charades adds two '
                        'event classes)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--fps', type=int, default=16)
    parser.add_argument('--sample-rate', type=int, default=16000)
    parser.add_argument('--test-fraction', type=float, default=0.25,
                        help='share of every class in the test split '
                        '(kinetics_sounds, charades)')
    parser.add_argument('--num-groups', type=int, default=4,
                        help='groups per class (ucf101, >= 4)')
    parser.add_argument('--workers', type=int, default=1,
                        help='processes rendering the videos')
    parser.add_argument('--overwrite', action='store_true',
                        help='allow writing into a non-empty folder that '
                        'was not made by this tool')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress bars and no summary')
    return parser.parse_args(argv)


def main(argv=None):
    args = vars(parse_args(argv))
    verbose = not args.pop('quiet')
    out_dir = args.pop('out_dir')
    return exit_status(
        lambda: generate_synthetic_downstream(out_dir, verbose=verbose,
                                              **args),
        (FileExistsError, NotADirectoryError, ValueError, TypeError),
        status=2)


if __name__ == '__main__':
    sys.exit(main())
