"""``tools/test.py``: evaluate a checkpoint on a config's test split.

Two paths:

* a config with a top-level ``protocol`` dict (e.g.
  ``configs/downstream/esc50_audio_svm.py``) is evaluated by that protocol
  (a class of ``avtoolkit.registry.PROTOCOLS``): its results are printed as
  a table and written to ``WORK_DIR/protocol_results.json``; synthetic demo
  data named by the config is generated first if absent;
* any other config runs mmengine's ``Runner.test`` on ``test_dataloader``
  with ``test_evaluator`` (``--dump`` adds mmengine's ``DumpResults``).
"""
import argparse
import logging
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import Config
from mmengine.logging import print_log

from avtoolkit.apis.common import add_common_args, load_config
from avtoolkit.apis.train import build_runner
from avtoolkit.checkpoint.io import check_checkpoint_file
from avtoolkit.utils import register_all_modules
from avtoolkit.utils.atomic import write_json_atomic
from avtoolkit.utils.cli import check_new_output
from avtoolkit.utils.dist import (finish_distributed, prepare_distributed,
                                  report_collective_timeouts)

RESULTS_FILE = 'protocol_results.json'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        'checkpoint', nargs='?', default=None,
        help='checkpoint file (default: the config\'s load_from)')
    parser.add_argument(
        '--dump', type=str,
        help='file to dump per-sample predictions to (.pkl; protocol '
        'configs: per-recording scores as .npz or .pkl)')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='replace existing output files (the --dump file, '
        'WORK_DIR/protocol_results.json) instead of refusing')
    parser.add_argument(
        '--allow-partial-weights', action='store_true',
        help='evaluate although the checkpoint lacks some of the model\'s '
        'weights (left at their initial values) or holds others; without '
        'it such a checkpoint (e.g. a pretraining one for a classifier) is '
        'refused')
    parser.add_argument(
        '--compare-random', action='store_true',
        help='protocol configs: also evaluate the architecture with its '
        'initial (random) weights')
    add_common_args(parser)
    return parser.parse_args(argv)


def _checkpoint(cfg: Config, args: argparse.Namespace) -> str:
    checkpoint = args.checkpoint or cfg.get('load_from')
    if not checkpoint:
        raise ValueError('no checkpoint given and the config has no '
                         'load_from')
    check_checkpoint_file(checkpoint)
    return checkpoint


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    cfg.load_from = _checkpoint(cfg, args)
    cfg.resume = False
    if args.dump is not None:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise ValueError('--dump must name a .pkl or .pickle file')
        check_new_output(args.dump, args.overwrite)
        dump = dict(type='DumpResults', out_file_path=args.dump)
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = [*evaluator, dump]
        else:
            cfg.test_evaluator = [evaluator, dump]
    return cfg


def load_test_weights(model, checkpoint: str, allow_partial: bool) -> None:
    """Load ``checkpoint`` into the model to evaluate (all of it unless
    ``allow_partial``).

    mmengine's loader only warns about missing keys, so a pretraining
    checkpoint given for a classifier was scored with a randomly
    initialised head.

    Raises:
        WeightsMismatchError: missing or unexpected keys (without
            ``allow_partial``) or shapes that differ; the message says what
            to do.
    """
    from mmengine.model import is_model_wrapper

    from avtoolkit.checkpoint.loading import (WeightsMismatchError,
                                              load_weights)
    module = model.module if is_model_wrapper(model) else model
    try:
        report = load_weights(module, checkpoint, '', strict=not allow_partial)
    except WeightsMismatchError as err:
        if err.report.shape_mismatch or not err.report.loaded:
            raise
        raise WeightsMismatchError(
            f'checkpoint "{checkpoint}" does not hold all the weights of the '
            'model to evaluate, or holds others:\n' + err.report.summary()
            + '\nFor a pretraining checkpoint, fine-tune first (tools/'
            'train.py with --cfg-options pretrained=CHECKPOINT) and test the '
            'fine-tuned checkpoint, or use a protocol config; pass '
            '--allow-partial-weights to evaluate anyway.', err.report
        ) from err
    print_log(report.summary(), logger='current', level=logging.INFO)


def run_protocol(cfg: Config, args: argparse.Namespace) -> dict:
    """Evaluate the checkpoint with ``cfg.protocol``; print the table and
    write the results (JSON) into the work dir."""
    from avtoolkit.evaluation.protocols import format_results_table
    from avtoolkit.registry import PROTOCOLS
    if args.launcher != 'none':
        raise ValueError('protocol evaluation runs in a single process; '
                         'drop --launcher')
    if args.dump is not None and not args.dump.endswith(
            ('.npz', '.pkl', '.pickle')):
        raise ValueError('--dump must name a .npz, .pkl or .pickle file')
    path = osp.join(cfg.work_dir, RESULTS_FILE)
    for output in filter(None, (args.dump, path)):
        check_new_output(output, args.overwrite)
    checkpoint = _checkpoint(cfg, args)
    if 'model' not in cfg:
        raise KeyError('a protocol config needs the model config ("model")')
    os.makedirs(cfg.work_dir, exist_ok=True)
    from avtoolkit.data_prep import prepare
    prepare(cfg)
    protocol = PROTOCOLS.build(cfg.protocol)
    results = protocol.run(cfg.model, checkpoint=checkpoint,
                           work_dir=cfg.work_dir,
                           compare_random=True if args.compare_random
                           else None,
                           dump=args.dump)
    results['config'] = osp.abspath(args.config)
    table = format_results_table(results)
    print_log('\n' + table, logger='current', level=logging.INFO)
    print(table, flush=True)
    write_json_atomic(path, results, indent=2)
    print_log(f'results written to {path}', logger='current')
    results['results_file'] = path
    return results


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = load_config(args)
    if cfg.get('protocol'):
        return run_protocol(cfg, args)
    if args.compare_random:
        raise ValueError('--compare-random needs a config with a protocol; '
                         'for probes use tools/analysis/probe.py')
    cfg = merge_args(cfg, args)
    checkpoint = cfg.load_from
    cfg.load_from = None  # loaded below, refusing weights that do not fit
    prepare_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    load_test_weights(runner.model, checkpoint, args.allow_partial_weights)
    with report_collective_timeouts(cfg):
        metrics = runner.test()
    finish_distributed()
    return metrics
