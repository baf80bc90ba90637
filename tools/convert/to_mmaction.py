"""Export the pretrained CNN of an avtoolkit checkpoint for mmaction2.

``python tools/convert/to_mmaction.py CHECKPOINT OUT [--modality visual|audio]
[--config CONFIG] [--prefix backbone.] [--force]``

OUT holds ``backbone.*`` weights (and a ``meta`` dict) that a plain mmaction2
recognizer with the same backbone settings loads through ``load_from=OUT``;
with ``--prefix ''`` the keys are bare, for the backbone's ``pretrained=OUT``.
See docs/checkpoints.md for what is checked.
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

# Run from a source checkout without installing.
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from avtoolkit.checkpoint import CONVERSION_ERRORS  # noqa: E402
from avtoolkit.utils.cli import exit_status  # noqa: E402
from avtoolkit.checkpoint.convert_mmaction import (  # noqa: E402
    ROLES, convert_to_mmaction)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Write the pretrained CNN of an avtoolkit checkpoint as '
        'backbone weights of an mmaction2 recognizer.')
    parser.add_argument('checkpoint', help='avtoolkit checkpoint (.pth)')
    parser.add_argument('out', help='output file')
    parser.add_argument('--modality', choices=ROLES, default='visual')
    parser.add_argument(
        '--config',
        help='config to check the weights against: an mmaction2 recognizer '
        'config (model.backbone) or an avtoolkit config; default: the config '
        'stored in the checkpoint')
    parser.add_argument(
        '--prefix', default='backbone.',
        help="prefix of the output keys (default 'backbone.', for load_from; "
        "'' for the backbone's pretrained= argument)")
    parser.add_argument('--force', action='store_true',
                        help='overwrite OUT if it exists')
    return parser


def run(argv: Optional[Sequence[str]] = None) -> dict:
    """Convert as the command line says; returns the meta written."""
    args = build_parser().parse_args(argv)
    from avtoolkit.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    meta, count = convert_to_mmaction(args.checkpoint, args.out,
                                      args.modality, args.config,
                                      args.prefix, args.force)
    print(f'wrote {count} {meta["backbone_type"]} tensors '
          f'("{args.prefix}*", checked against {meta["checked_against"]}) '
          f'to {args.out}')
    return meta


def main(argv: Optional[Sequence[str]] = None) -> int:
    """:func:`run`, with a user error as a one-line message and status 1."""
    return exit_status(lambda: run(argv), CONVERSION_ERRORS)


if __name__ == '__main__':
    sys.exit(main())
