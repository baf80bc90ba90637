"""``tools/train.py``: train a model from a config with mmengine's Runner."""
import argparse
import logging
from typing import List, Optional

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from avtoolkit.apis.common import (add_common_args, apply_pretrained_option,
                                  enable_amp, load_config)
from avtoolkit.data_prep import prepare
from avtoolkit.engine.hook_args import check_hook_args
from avtoolkit.models.algorithms.avbert import check_cpp_batches
from avtoolkit.engine.schedulers import fill_schedule_lengths
from avtoolkit.engine.work_dir import prepare_work_dir
from avtoolkit.utils import register_all_modules
from avtoolkit.utils.dist import (finish_distributed, prepare_distributed,
                                  report_collective_timeouts)
from avtoolkit.utils.optim_checks import check_optimizer_numbers


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the checkpoint at this path; with no path (or '
        '"auto") resume from the latest checkpoint of the work dir')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='start afresh in a work dir that holds an earlier run\'s '
        'checkpoints, deleting them and its last_checkpoint (without this '
        'or --resume such a work dir is refused)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (bf16 where supported, else '
                        'fp16 with dynamic loss scaling)')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument('--diff-rank-seed', action='store_true',
                        help='a different seed on every rank')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic cuDNN/torch algorithms')
    add_common_args(parser)
    return parser.parse_args(argv)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    randomness = cfg.get('randomness', dict())
    if args.seed is not None:
        randomness['seed'] = args.seed
    if args.deterministic:
        randomness['deterministic'] = True
    if args.diff_rank_seed:
        randomness['diff_rank_seed'] = True
    if randomness:
        cfg.randomness = randomness
    apply_pretrained_option(cfg)
    fill_schedule_lengths(cfg)
    return cfg


def build_runner(cfg: Config) -> Runner:
    if 'runner_type' in cfg:
        from avtoolkit.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def main(argv: Optional[List[str]] = None) -> Runner:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = load_config(args)
    initial_load_from = cfg.get('load_from')
    cfg = merge_args(cfg, args)
    check_optimizer_numbers(cfg)
    check_hook_args(cfg)
    check_cpp_batches(cfg.get('model'), cfg.get('train_dataloader'))
    # Before the Runner exists (it writes into the work dir at once) and
    # before any data is prepared.
    notes = prepare_work_dir(cfg, args.resume, args.overwrite,
                             initial_load_from=initial_load_from)
    prepare(cfg)
    prepare_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    print_log(f'work dir: {cfg.work_dir}', logger='current',
              level=logging.INFO)
    for level, note in notes:
        runner.logger.log(logging.getLevelName(level), note)
    with report_collective_timeouts(cfg):
        runner.train()
    finish_distributed()
    return runner
