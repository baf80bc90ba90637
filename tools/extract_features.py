"""Extract CNN and Transformer features of a checkpoint to files.

    python tools/extract_features.py CONFIG CHECKPOINT --out DIR \
        [--video-list LIST [--data-prefix DIR] | --shards DIR] \
        [--dataloader test_dataloader] [--features cnn_a x_a y_a z ...] \
        [--format npy|webdataset] [--overwrite]

Inputs: the config's ``test_dataloader`` (or ``--dataloader KEY``; protocol
configs without one use the protocol's dataset), or a video list / shards
read with that dataloader's pipeline.  Output: ``DIR/<feature>.npy`` arrays
(N, ...) in input order plus ``DIR/index.json`` (sample ids, file names,
labels, shapes), or webdataset shards ``DIR/features-%06d.tar``.  Feature
names and shapes: ``avtoolkit/evaluation/extraction.py``.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from avtoolkit.evaluation.extraction import FEATURE_NAMES  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract frozen features of a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint',
                        help='checkpoint file, or "random" for the initial '
                        'weights')
    parser.add_argument('--out', required=True, help='output folder')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--video-list',
                        help='list file ("path [label ...]" per line)')
    source.add_argument('--shards', help='webdataset shard folder/pattern')
    parser.add_argument('--data-prefix', default='',
                        help='folder of the relative paths of --video-list')
    parser.add_argument('--dataloader', default='test_dataloader',
                        help='config key of the dataloader (its pipeline '
                        'reads --video-list / --shards)')
    parser.add_argument('--features', nargs='+', default=None,
                        choices=FEATURE_NAMES, metavar='NAME',
                        help='features to write (default: every one the '
                        f'model produces); choose from {FEATURE_NAMES}')
    parser.add_argument('--format', choices=['npy', 'webdataset'],
                        default='npy')
    parser.add_argument('--shard-size', type=int, default=1000,
                        help='samples per shard with --format webdataset')
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--num-workers', type=int, default=None)
    parser.add_argument('--device', default='auto',
                        help='auto (CUDA if available), cpu, cuda, cuda:1')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the initial weights')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing feature files in --out')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries (key=value)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    import torch

    from avtoolkit.checkpoint.io import check_checkpoint_file
    from avtoolkit.evaluation.extraction import (available_features,
                                                 build_model, extract_to_dir)
    from avtoolkit.evaluation.feature_writers import check_output_dir
    from avtoolkit.evaluation.loaders import (feature_dataloader,
                                              pipeline_modalities)
    from avtoolkit.apis.common import read_config
    from avtoolkit.utils import register_all_modules

    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = read_config(args.config, args.cfg_options)
    # Fail before any work if the checkpoint is missing or the output exists.
    checkpoint = None if args.checkpoint == 'random' else args.checkpoint
    if checkpoint is not None:
        check_checkpoint_file(checkpoint)
    check_output_dir(args.out, args.overwrite)
    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model, report = build_model(cfg.model, checkpoint, seed=args.seed,
                                device=device)
    if not hasattr(model, 'extract_feat'):
        raise TypeError(f'{type(model).__name__} has no extract_feat; '
                        'feature extraction needs an AVBERT encoder model')
    loader = feature_dataloader(cfg, args.dataloader, args.video_list,
                                args.data_prefix, args.shards,
                                args.batch_size, args.num_workers)
    names = args.features
    if names is None:
        names = available_features(model,
                                   pipeline_modalities(loader.dataset))
    index = extract_to_dir(model, loader, names, args.out, args.format,
                           overwrite=True, shard_size=args.shard_size,
                           progress=not args.no_progress)
    index['load_report'] = report
    shapes = ', '.join(f'{k} {tuple(v)}' for k, v in
                       index['features'].items())
    print(f'\nwrote {len(names)} features to {args.out}: {shapes}')
    return index


if __name__ == '__main__':
    main()
