"""Print the parameter counts of the model of a config.

Usage::

    python tools/analysis/count_params.py CONFIG [--json]
        [--cfg-options model.neck.share_layers=False ...]

Reports the parameters of every top-level module, of the parts of the
Transformer neck, ``transformer_layers`` (Transformer layer weights, embeddings
excluded: the figure the paper's sharing ablation compares) and ``total``.
"""
import argparse
import json

from mmengine.config import DictAction

from avtoolkit.analysis.param_count import (count_parameters_from_config,
                                         format_counts)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--json', action='store_true', help='print one JSON object')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, key=value (mmengine syntax)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    counts = count_parameters_from_config(args.config, args.cfg_options)
    if args.json:
        print(json.dumps(counts))
    else:
        print(format_counts(counts))


if __name__ == '__main__':
    main()
