"""Plot loss and accuracy curves of a run.

``python tools/analysis/plot_curves.py WORK_DIR [--out curves.png] [--keys loss acc_mep_v]``
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from avtoolkit.analysis.curves import plot_curves  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir')
    parser.add_argument('--out', help='PNG path (default WORK_DIR/curves.png)')
    parser.add_argument('--keys', nargs='+',
                        help='scalars to draw (default: all loss* and acc*)')
    args = parser.parse_args()
    print(plot_curves(args.work_dir, args.out, args.keys))


if __name__ == '__main__':
    main()
