"""``tools/test.py``: evaluate a checkpoint on a config's test split."""
import argparse
import os.path as osp
from typing import List, Optional

from mmengine.config import Config

from avtoolkit.apis.common import add_common_args, load_config
from avtoolkit.apis.train import build_runner
from avtoolkit.utils import register_all_modules
from avtoolkit.utils.dist import prepare_distributed


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--dump', type=str,
                        help='pickle file to dump per-sample predictions to')
    add_common_args(parser)
    return parser.parse_args(argv)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint "{args.checkpoint}" not found')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.dump is not None:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise ValueError('--dump must name a .pkl or .pickle file')
        dump = dict(type='DumpResults', out_file_path=args.dump)
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = [*evaluator, dump]
        else:
            cfg.test_evaluator = [evaluator, dump]
    return cfg


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = merge_args(load_config(args), args)
    prepare_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    return runner.test()
