"""``tools/train.py``: train a model from a config with mmengine's Runner."""
import argparse
import logging
from typing import List, Optional

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from avtoolkit.apis.common import add_common_args, enable_amp, load_config
from avtoolkit.engine.schedulers import fill_schedule_lengths
from avtoolkit.utils import register_all_modules
from avtoolkit.utils.dist import finish_distributed, prepare_distributed


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the checkpoint at this path; with no path (or '
        '"auto") resume from the latest checkpoint of the work dir')
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
    from avtoolkit.models.algorithms.downstream import \
        apply_pretrained_option
    apply_pretrained_option(cfg)
    fill_schedule_lengths(cfg)
    return cfg


def prepare_data(cfg: Config, poll_seconds: float = 2.0,
                 timeout: float = 3600.0) -> None:
    """Generate the synthetic data a config asks for, if it is absent.

    A config with ``synthetic_data = dict(out_dir=..., num_videos=..., ...)``
    (arguments of :func:`avtoolkit.datasets.synthetic.generate_synthetic_av`)
    gets its data made before the Runner builds any dataset.  The generator
    skips a complete dataset with the same parameters.  In a multi-process
    run the process with ``LOCAL_RANK`` 0 generates and the others wait for
    its ``summary.json``.
    """
    import os.path as osp

    from avtoolkit.datasets.synthetic_downstream import \
        prepare_synthetic_downstream
    from avtoolkit.utils.dist import make_on_local_leader
    prepare_synthetic_downstream(cfg, poll_seconds, timeout)
    spec = cfg.get('synthetic_data')
    if not spec:
        return
    from avtoolkit.datasets.synthetic import generate_synthetic_av
    spec = dict(spec)
    out_dir = spec.pop('out_dir')
    make_on_local_leader(lambda: generate_synthetic_av(out_dir, **spec),
                         osp.join(out_dir, 'summary.json'),
                         f'synthetic dataset at {out_dir}', poll_seconds,
                         timeout)


def build_runner(cfg: Config) -> Runner:
    if 'runner_type' in cfg:
        from avtoolkit.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def main(argv: Optional[List[str]] = None) -> Runner:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = merge_args(load_config(args), args)
    prepare_data(cfg)
    prepare_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    print_log(f'work dir: {cfg.work_dir}', logger='current',
              level=logging.INFO)
    runner.train()
    finish_distributed()
    return runner
