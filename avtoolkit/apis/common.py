"""Pieces shared by the train and test entry points."""
import argparse
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction

from avtoolkit.utils.config_overrides import check_top_level_overrides


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. '
        'model.neck.num_layers=2 train_dataloader.batch_size=4')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
        help='how the processes were started (pytorch = torchrun)')
    parser.add_argument(
        '--dist-timeout', type=float, metavar='SECONDS',
        help='how long a process waits for the others in a collective '
        'operation before the job fails (env_cfg.dist_cfg.timeout; default '
        '600)')
    # torchrun passes --local-rank to old-style scripts; accept both spellings.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def read_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """The config file at ``path`` with ``--cfg-options`` merged in."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file "{path}" does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        check_top_level_overrides(path, cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    return cfg


def load_config(args: argparse.Namespace) -> Config:
    """Read the config, apply ``--cfg-options`` and choose the work dir."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = read_config(args.config, args.cfg_options)
    if getattr(args, 'dist_timeout', None) is not None:
        if cfg.get('env_cfg') is None:
            cfg.env_cfg = dict()
        if cfg.env_cfg.get('dist_cfg') is None:
            cfg.env_cfg.dist_cfg = dict()
        cfg.env_cfg.dist_cfg.timeout = args.dist_timeout
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def amp_dtype() -> str:
    """bf16 where the hardware has it (CPU, Ampere and later), else fp16."""
    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return 'float16'
    return 'bfloat16'


def enable_amp(cfg: Config) -> None:
    """Switch the config's optimizer wrapper to mmengine's AMP wrapper."""
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        return
    if wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise ValueError('--amp works with the plain OptimWrapper; the '
                         f'config uses {wrapper.get("type")}')
    wrapper.type = 'AmpOptimWrapper'
    wrapper.setdefault('dtype', amp_dtype())
    # fp16 needs dynamic loss scaling; bf16 has fp32's range and needs none.
    wrapper.setdefault('loss_scale',
                       'dynamic' if wrapper.dtype == 'float16' else 1.0)


def apply_pretrained_option(cfg) -> None:
    """Copy a config's top-level ``pretrained`` into ``cfg.model``.

    Configs of the fine-tuning protocols declare ``pretrained = None`` at the
    top level, so that ``--cfg-options pretrained=PATH`` selects the
    pretraining checkpoint.  mmengine does not re-evaluate ``model`` after
    such an override; this function (called by the training entry point
    after ``--cfg-options`` are merged) forwards the value.  A different,
    non-empty ``model.pretrained`` is a conflict and raises ``ValueError``.
    """
    top = cfg.get('pretrained')
    model = cfg.get('model')
    if top is None or model is None:
        return
    current = model.get('pretrained')
    if current not in (None, top):
        raise ValueError(f'pretrained={top!r} and model.pretrained='
                         f'{current!r} disagree; set only one of them')
    model['pretrained'] = top
