"""Convert the checkpoint released with the AVBERT paper into avtoolkit's.

``python tools/convert/from_official.py CHECKPOINT OUT [--config CONFIG ...]
[--trust] [--visual-prefix P] [--audio-prefix P] [--rename-prefix OLD=NEW ...]
[--print-table] [--force]``

The CNNs are mapped onto the release-variant model (default: the release
visual and audio CNN base configs); the ``_B`` caches are dropped and the
missing / unexpected keys are printed.  Without ``--trust`` the file is read
with ``weights_only`` (tensors and plain containers only) and its pickled
``cfg`` as a plain dict.
See docs/checkpoints.md for the key mapping and its assumptions.
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence, Tuple

# Run from a source checkout without installing.
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from avtoolkit.checkpoint import CONVERSION_ERRORS  # noqa: E402
from avtoolkit.utils.cli import exit_status  # noqa: E402
from avtoolkit.checkpoint.convert_official import \
    convert_from_official  # noqa: E402


def _rename_pair(text: str) -> Tuple[str, str]:
    if '=' not in text:
        raise argparse.ArgumentTypeError(f'expected OLD=NEW, got {text!r}')
    old, new = text.split('=', 1)
    if not old:
        raise argparse.ArgumentTypeError('OLD must not be empty')
    return old, new


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Convert the checkpoint released with the AVBERT paper '
        '(PySlowFast layout) into an avtoolkit checkpoint.')
    parser.add_argument('checkpoint', help='the official checkpoint (.pyth)')
    parser.add_argument('out', help='output file')
    parser.add_argument(
        '--config', action='append',
        help='config(s) of the release-variant model to convert into '
        '(repeatable; default: the release visual and audio CNN base '
        'configs)')
    parser.add_argument(
        '--trust', action='store_true',
        help='unpickle without restrictions (weights_only=False); only for '
        'files from a trusted source')
    parser.add_argument('--visual-prefix',
                        help='official prefix of the visual CNN '
                        '(default: detected)')
    parser.add_argument('--audio-prefix',
                        help='official prefix of the audio CNN '
                        '(default: detected)')
    parser.add_argument('--rename-prefix', action='append', default=[],
                        type=_rename_pair, metavar='OLD=NEW',
                        help='rewrite official key prefixes before mapping '
                        '(repeatable; the first matching rule applies)')
    parser.add_argument('--print-table', action='store_true',
                        help='print the official -> ours table of the CNNs')
    parser.add_argument('--force', action='store_true',
                        help='overwrite OUT if it exists')
    return parser


def _report(title: str, keys: Sequence[str], limit: int = 20) -> None:
    print(f'{title}: {len(keys)}')
    for key in keys[:limit]:
        print(f'  {key}')
    if len(keys) > limit:
        print(f'  ... and {len(keys) - limit} more')


def run(argv: Optional[Sequence[str]] = None) -> dict:
    """Convert as the command line says, print the report; returns the
    meta written."""
    args = build_parser().parse_args(argv)
    from avtoolkit.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    meta, result = convert_from_official(
        args.checkpoint, args.out, configs=args.config, trust=args.trust,
        prefixes=dict(visual=args.visual_prefix, audio=args.audio_prefix),
        renames=args.rename_prefix, force=args.force)
    if args.print_table:
        for ours, theirs in sorted(result.sources.items()):
            print(f'{theirs} -> {ours}')
    for role, prefix in result.prefixes.items():
        print(f'{role} CNN: ' + (f'found under "{prefix}"' if prefix is not
                                 None else 'not found in the checkpoint'))
    print(f'mapped tensors: {len(result.state_dict)}')
    print(f'dropped _B caches: {len(result.dropped_caches)}')
    _report('missing (not in the official file, left as initialised)',
            result.missing)
    _report('unexpected (official keys not used)', result.unexpected)
    print(f'wrote {args.out}')
    return meta


def main(argv: Optional[Sequence[str]] = None) -> int:
    """:func:`run`, with a user error as a one-line message and status 1."""
    return exit_status(lambda: run(argv), CONVERSION_ERRORS)


if __name__ == '__main__':
    sys.exit(main())
