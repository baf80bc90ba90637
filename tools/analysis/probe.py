"""k-NN and linear probes on the frozen features of a checkpoint.

    python tools/analysis/probe.py CONFIG CHECKPOINT [--compare-random] \
        [--features x_mean z_summary] [--train-key K --val-key K] \
        [--out results.json]

The labelled sets are those of the config's ``ProbeHook`` (or
``probe_train_dataloader`` / ``probe_val_dataloader``, or the config keys
given): probes are fitted on the train set and scored on the val set, as
during pretraining.  A fine-tuning config (``AVClassifier``) needs none of
these: its training part, read in order through the validation pipeline,
fits the probes and its held-out validation part scores them, with the
config's ``model.feature`` as default feature.  A pretraining checkpoint
loads into it (the classifier head is not used).  Prints a table and writes the accuracies as JSON
(default ``WORK_DIR/probe_<checkpoint name>.json``).
"""
import argparse
import os.path as osp
import sys
import time
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from mmengine.config import DictAction  # noqa: E402

from avtoolkit.models.structures import POOLED_FEATURES  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Linear and k-NN probes of a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint',
                        help='checkpoint file, or "random" for the initial '
                        'weights only')
    parser.add_argument('--compare-random', action='store_true',
                        help='also probe the initial (random) weights')
    parser.add_argument('--features', nargs='+', choices=POOLED_FEATURES,
                        metavar='NAME', default=None,
                        help=f'pooled features to probe, among {POOLED_FEATURES} '
                        '(default: those of the ProbeHook)')
    parser.add_argument('--train-key', default=None,
                        help='config key of the dataloader fitting the probes')
    parser.add_argument('--val-key', default=None,
                        help='config key of the dataloader scoring them')
    parser.add_argument('--knn-k', type=int, default=None)
    parser.add_argument('--weight-decay', type=float, default=None,
                        help='L2 penalty of the linear probe')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the initial weights')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--out', default=None, help='JSON file to write')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing results file')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries (key=value)')
    return parser.parse_args(argv)


def format_table(results: dict, features) -> str:
    tags = [t for t in ('pretrained', 'random_init') if t in results]
    header = ['feature', 'probe'] + [t.replace('_', ' ') for t in tags]
    if len(tags) == 2:
        header.append('gain')
    rows = []
    for name in features:
        for probe in ('linear', 'knn'):
            key = f'{name}/{probe}_top1'
            values = [results[t][key] for t in tags]
            row = [name, probe] + [f'{100 * v:.1f}' for v in values]
            if len(tags) == 2:
                row.append(f'{100 * (values[0] - values[1]):+.1f}')
            rows.append(row)
    widths = [max(len(r[i]) for r in [header] + rows)
              for i in range(len(header))]
    lines = ['probe top-1 accuracy (%)']
    for row in [header] + rows:
        lines.append('  '.join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> dict:
    import torch

    from avtoolkit.evaluation.extraction import (build_model,
                                                 extract_pooled_features)
    from avtoolkit.evaluation.loaders import build_dataloader, probe_settings
    from avtoolkit.evaluation.probes import run_probes
    from avtoolkit.checkpoint.io import check_checkpoint_file
    from avtoolkit.data_prep import prepare
    from avtoolkit.models.algorithms.avbert_encoder import AVBERTEncoder
    from avtoolkit.registry import MODELS
    from avtoolkit.apis.common import read_config
    from avtoolkit.utils import register_all_modules
    from avtoolkit.utils.atomic import write_json_atomic
    from avtoolkit.utils.cli import check_new_output

    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = read_config(args.config, args.cfg_options)
    random_only = args.checkpoint == 'random'
    if not random_only:
        check_checkpoint_file(args.checkpoint)
    model_type = cfg.model.get('type')
    model_cls = MODELS.get(model_type) if isinstance(model_type, str) \
        else model_type
    if not (isinstance(model_cls, type)
            and issubclass(model_cls, AVBERTEncoder)):
        raise TypeError(
            'the probes read the pooled features of an AVBERT encoder (a '
            'pretraining config, or a fine-tuning config of type '
            f'AVClassifier); {args.config} builds {model_type}')
    out = args.out
    if out is None:
        work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
            'work_dirs', osp.splitext(osp.basename(args.config))[0])
        stem = 'random' if random_only else osp.splitext(
            osp.basename(args.checkpoint))[0]
        out = osp.join(work_dir, f'probe_{stem}.json')
    check_new_output(out, args.overwrite)
    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    # The checkpoint is read and loaded before any data is generated or
    # read, so a refused checkpoint costs nothing.
    loaded = {} if random_only else {'pretrained': build_model(
        cfg.model, args.checkpoint, seed=args.seed, device=device)}
    # demo configs name generated data, made here if absent (as in train.py)
    prepare(cfg)
    settings = probe_settings(cfg, args.train_key, args.val_key)
    features = tuple(args.features or settings['features'])
    knn_k = args.knn_k or settings['knn_k']
    weight_decay = args.weight_decay if args.weight_decay is not None \
        else settings['linear_weight_decay']
    loaders = {split: build_dataloader(settings[split])
               for split in ('train', 'val')}

    runs = [] if random_only else [('pretrained', args.checkpoint)]
    if args.compare_random or random_only:
        runs.append(('random_init', None))
    start = time.perf_counter()
    results = dict(config=osp.abspath(args.config),
                   checkpoint=None if random_only else args.checkpoint,
                   features=list(features), knn_k=knn_k,
                   linear_weight_decay=weight_decay)
    for tag, checkpoint in runs:
        model, report = loaded.pop(tag, None) or build_model(
            cfg.model, checkpoint, seed=args.seed, device=device)
        print(f'{tag}: extracting features', flush=True)
        train_x, train_y = extract_pooled_features(
            model, loaders['train'], features, not args.no_progress)
        val_x, val_y = extract_pooled_features(
            model, loaders['val'], features, not args.no_progress)
        results[tag] = run_probes(train_x, train_y, val_x, val_y, features,
                                  knn_k, weight_decay)
        results[f'{tag}_load_report'] = report
        results.setdefault('num_train', len(train_y))
        results.setdefault('num_val', len(val_y))
    results['time_s'] = time.perf_counter() - start
    table = format_table(results, features)
    print('\n' + table, flush=True)
    write_json_atomic(out, results, indent=2)
    print(f'results written to {out}')
    results['results_file'] = out
    return results


if __name__ == '__main__':
    main()
