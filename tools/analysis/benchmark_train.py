"""Full AVBERT training steps of configs side by side: time, memory, FLOPs.

Examples::

    # the paper model against the no-sharing ablation, on a GPU, in bf16
    python tools/analysis/benchmark_train.py --device cuda --dtype bf16 \\
        --batch-size 4 8 --json train_bench.json
    # largest per-GPU batch, with activation checkpointing of the CNNs
    python tools/analysis/benchmark_train.py --device cuda --dtype bf16 \\
        --with-cp --find-max-batch
    # a quick CPU run with fewer clips per sequence (reported as such)
    python tools/analysis/benchmark_train.py --device cpu --batch-size 2 \\
        --num-clips 2 --iters 2 --warmup 1 --breakdown-iters 1 \\
        --cfg-options model.sampler.on_small_pool=repeat

Without CONFIG arguments the paper config (configs/pretrain/k700_mid_part.py)
is measured against the ``none`` sharing ablation
(configs/pretrain/ablations/k700_mid_none.py) in one run.  Every step is a
real ``model.train_step`` with the config's optim_wrapper (all MEP and CPP
losses, backward, optimizer step) on synthetic inputs of the shapes the
config's pipeline produces.  See ``docs/benchmark_methods.md`` for what
each figure measures.
"""
import argparse
import json
import os.path as osp
import sys

from mmengine.config import DictAction

from avtoolkit.benchmarks.report import DEFAULT_GLOBAL_BATCH, format_report
from avtoolkit.benchmarks.train_setup import DTYPES
from avtoolkit.benchmarks.train_step import run_benchmark
from avtoolkit.utils.atomic import write_json_atomic
from avtoolkit.utils.cli import check_new_output

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs/pretrain/k700_mid_part.py')
DEFAULT_COMPARE = osp.join(REPO_ROOT,
                           'configs/pretrain/ablations/k700_mid_none.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'configs', nargs='*', metavar='CONFIG',
        help='configs to measure (default: the paper config, compared with '
        'the none-sharing ablation)')
    parser.add_argument(
        '--compare-config', default=None,
        help='a config measured in the same run that every CONFIG is '
        'compared with (default: the none ablation when no CONFIG is given)')
    parser.add_argument('--device', default='cpu',
                        help='cpu or cuda (cuda:N)')
    parser.add_argument('--batch-size', type=int, nargs='+', default=[4],
                        help='per-device batch sizes B (default 4, as the '
                        'paper: 64 GPUs x 4)')
    parser.add_argument('--dtype', choices=list(DTYPES), default='fp32',
                        help='autocast precision (on CUDA through '
                        'AmpOptimWrapper, as tools/train.py --amp)')
    parser.add_argument('--iters', type=int, default=5,
                        help='timed steps per config and batch size')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed steps before timing')
    parser.add_argument('--breakdown-iters', type=int, default=2,
                        help='timed runs of each part of the breakdown '
                        '(0: no breakdown)')
    parser.add_argument('--num-clips', type=int, default=None,
                        help='T instead of the config value (reported)')
    parser.add_argument('--video-clip-shape', type=int, nargs=4, default=None,
                        metavar=('C', 'F', 'H', 'W'),
                        help='one video clip, instead of the pipeline\'s')
    parser.add_argument('--audio-clip-shape', type=int, nargs=3, default=None,
                        metavar=('C', 'M', 'N'),
                        help='one log-mel clip, instead of the pipeline\'s')
    parser.add_argument('--with-cp', action='store_true',
                        help='activation checkpointing of each CNN '
                        '(ClipSequenceEncoder with_cp)')
    parser.add_argument('--cnn-with-cp', action='store_true',
                        help='per-block checkpointing inside the SlowFast '
                        'CNN (mmaction with_cp)')
    parser.add_argument('--clip-chunk-size', type=int, default=None,
                        help='run the CNNs on at most this many clips at a '
                        'time (with --with-cp: bounds activation memory)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile model.train_step, as the Runner '
                        'does for compile=True')
    parser.add_argument('--compile-target', choices=['train_step', 'cnn'],
                        default='train_step',
                        help='with --compile: the whole train_step (as the '
                        'Runner) or only the two CNNs')
    parser.add_argument('--compile-mode', default=None,
                        help='mode of torch.compile (e.g. max-autotune)')
    parser.add_argument('--preload', action='store_true',
                        help='put the batch on the device before timing '
                        '(leaves the host-to-device copy out)')
    parser.add_argument('--find-max-batch', action='store_true',
                        help='CUDA: double the batch until out of memory')
    parser.add_argument('--max-batch', type=int, default=4096,
                        help='upper limit of --find-max-batch')
    parser.add_argument('--peak-tflops', type=float, default=None,
                        help='peak rate for MFU (default: a table of known '
                        'GPUs; none on the CPU)')
    parser.add_argument('--global-batch', type=int,
                        default=DEFAULT_GLOBAL_BATCH,
                        help='global batch of the projected recipe (paper: '
                        '256)')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='iterations of the projected recipe (default: '
                        'train_cfg.max_iters of the first config)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads for the run')
    parser.add_argument('--cudnn-benchmark', action='store_true',
                        default=None,
                        help='torch.backends.cudnn.benchmark on (default: '
                        'env_cfg.cudnn_benchmark of each config)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override entries of every config, key=value')
    parser.add_argument('--json', default=None, metavar='OUT',
                        help='write the full result as JSON to OUT ("-" for '
                        'stdout instead of the tables)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --json file')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress lines on stderr')
    args = parser.parse_args(argv)
    if args.json not in (None, '-'):
        try:
            check_new_output(args.json, args.overwrite)
        except (FileExistsError, IsADirectoryError) as err:
            parser.error(str(err))
    if not args.configs:
        args.configs = [DEFAULT_CONFIG]
        if args.compare_config is None:
            args.compare_config = DEFAULT_COMPARE
    return args


def main(argv=None):
    args = parse_args(argv)
    command = [sys.executable, osp.relpath(__file__)] + list(
        sys.argv[1:] if argv is None else argv)

    def log(line):
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    result = run_benchmark(
        configs=args.configs,
        compare_config=args.compare_config,
        device=args.device,
        batch_sizes=args.batch_size,
        dtype=args.dtype,
        iters=args.iters,
        warmup=args.warmup,
        breakdown_iters=args.breakdown_iters,
        num_clips=args.num_clips,
        video_clip_shape=args.video_clip_shape,
        audio_clip_shape=args.audio_clip_shape,
        cfg_options=args.cfg_options,
        with_cp=args.with_cp,
        cnn_with_cp=args.cnn_with_cp,
        clip_chunk_size=args.clip_chunk_size,
        compile_step=args.compile_target if args.compile else False,
        compile_options=(dict(mode=args.compile_mode)
                         if args.compile_mode else None),
        preload=args.preload,
        find_max_batch=args.find_max_batch,
        max_batch=args.max_batch,
        peak_tflops=args.peak_tflops,
        global_batch=args.global_batch,
        max_iters=args.max_iters,
        threads=args.threads,
        cudnn_benchmark=args.cudnn_benchmark,
        seed=args.seed,
        command=command,
        log=log)
    if args.json == '-':
        print(json.dumps(result))
        return result
    if args.json:
        write_json_atomic(args.json, result, indent=1)
    print(format_report(result))
    return result


if __name__ == '__main__':
    main()
