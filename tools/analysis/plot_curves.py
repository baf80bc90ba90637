"""Plot loss and accuracy curves of a run.

``python tools/analysis/plot_curves.py WORK_DIR [--out curves.png] [--keys loss acc_mep_v]``
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from avtoolkit.analysis.curves import plot_curves  # noqa: E402
from avtoolkit.utils.cli import check_new_output, exit_status  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir')
    parser.add_argument('--out', help='PNG path (default WORK_DIR/curves.png)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing PNG')
    parser.add_argument('--keys', nargs='+',
                        help='scalars to draw (default: all loss* and acc*)')
    args = parser.parse_args()
    out = args.out or osp.join(args.work_dir, 'curves.png')
    sys.exit(exit_status(
        lambda: print(plot_curves(args.work_dir,
                                  check_new_output(out, args.overwrite),
                                  args.keys)),
        (FileExistsError, IsADirectoryError)))


if __name__ == '__main__':
    main()
