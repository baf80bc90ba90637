"""Config-driven evaluation protocols on frozen features.

A config with a top-level ``protocol`` dict is evaluated by ``tools/test.py``
with that protocol instead of ``Runner.test``::

    protocol = dict(type='FrozenFeatureSVMProtocol', dataset=..., ...)

:class:`FrozenFeatureSVMProtocol` is the ESC-50 protocol of AVBERT
(appendix A.3/A.4 of the paper): the pretrained audio CNN is frozen; every
recording gives T (10) equally spaced 2-s clips; a multi-class linear SVM
(:class:`~avtoolkit.evaluation.LinearSVM`) is trained on the per-clip CNN
features of the training folds and tested on the held-out fold, the scores
of a recording's clips averaged; the five official folds give five top-1
accuracies, reported with their mean and standard deviation
(:func:`~avtoolkit.evaluation.summarize_folds`).

The SVM's regularisation ``C`` is chosen per test fold on a validation part
carved out of the *training* folds (by default one whole training fold, so
that recordings cut from the same source, which ESC-50 keeps within one
fold, never straddle the split); the test fold is not looked at until the
SVM with the chosen ``C`` has been refitted on all training folds.

Shapes: clip features ``(N, T, C)`` (N recordings), labels and folds
``(N,)``, scores ``(N, K)`` for K classes.
"""
import hashlib
import json
import logging
import os
import os.path as osp
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from avtoolkit.checkpoint.io import check_checkpoint_file
from avtoolkit.checkpoint.loading import load_weights
from avtoolkit.datasets.bad_input import BadInputCounter, collect_bad_inputs
from avtoolkit.registry import PROTOCOLS
from avtoolkit.utils.atomic import atomic_write, write_bytes_atomic
from avtoolkit.utils.logs import init_weights_quietly
from .extraction import ProjectionInputTap
from .loaders import as_plain
from .linear_svm import LinearSVM
from .cross_validation import VAL_STRATEGIES, cross_validate_svm

FEATURE_KINDS = ('cnn', 'embed')


@PROTOCOLS.register_module()
class FrozenFeatureSVMProtocol:
    """Linear SVM on the frozen per-clip features of one CNN, cross-validated
    over predefined folds (ESC-50).

    Args:
        dataset: config of the dataset of *all* recordings (every fold), with
            a deterministic pipeline that packs ``inputs[modality]`` as
            ``(T, *clip_shape)`` per recording, e.g. ``ESC50Dataset`` with
            10 uniform 2-s clips of log-mel ``(1, 128, 440)``.  Every data
            info needs ``label`` and ``fold_key``.
        folds: the test folds (ESC-50: 1-5).  Training uses every other
            fold in the data.
        fold_key: key of the fold in the dataset's data infos.
        backbone: attribute of the model config holding the CNN encoder
            (``'audio_backbone'``); only that part of ``model`` is built.
        modality: key of the inputs fed to it (``'audio'``).
        feature: ``'cnn'``: the globally pooled CNN output (``feat_dim``,
            e.g. 1024 for the audio ResNet-50; the paper's "fixed audio
            CNN"), or ``'embed'``: the clip embedding after the backbone's
            projection and LayerNorm (``D``).
        checkpoint_prefix: key prefix of the backbone in the checkpoint
            (default ``backbone + '.'``).
        strict_load: raise instead of warning when backbone keys are
            missing from the checkpoint or unexpected in it.
        C_grid: candidate values of the SVM's ``C`` (chosen per fold on a
            validation part of the training folds).
        svm: other :class:`LinearSVM` arguments (``loss``, ``margin``,
            ``standardize``, ``max_iter``, ``batch_size``, ``lr``, ...).
        svm_iters: mini-batch steps per fit for ``loss='multi_margin'``
            (38K in the paper, with batch 128 and learning rate 0.003).
        val_strategy: ``'fold'`` (a whole training fold) or ``'stratified'``.
        val_fraction: share of the training recordings used for validation
            with ``'stratified'``.
        num_classes: K (default: largest label + 1).
        topk: accuracies reported per fold.
        batch_size, num_workers: of the extraction dataloader (recordings
            per batch; a batch holds ``batch_size * T`` clips).
        cache: keep the extracted features in ``cache_dir`` and reuse them
            when the dataset config and its files (paths, sizes,
            modification times), the backbone config, the feature and the
            weights are unchanged.
        cache_dir: default ``WORK_DIR/feature_cache``.
        dump_scores: write the per-recording test scores of every weight set
            to ``WORK_DIR/<weights>_scores.npz``.
        compare_random: also evaluate the same architecture with its initial
            (random, seeded) weights.
        seed: seed of the initial weights, the splits and the SVM.
        device: ``'auto'`` (CUDA if available), ``'cpu'``, ``'cuda'``, ...
        progress: progress bars during extraction and SVM fitting.
        name: title of the printed table.
    """

    def __init__(self,
                 dataset: dict,
                 folds: Sequence[int] = (1, 2, 3, 4, 5),
                 fold_key: str = 'fold',
                 backbone: str = 'audio_backbone',
                 modality: str = 'audio',
                 feature: str = 'cnn',
                 checkpoint_prefix: Optional[str] = None,
                 strict_load: bool = False,
                 C_grid: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
                 svm: Optional[dict] = None,
                 svm_iters: Optional[int] = None,
                 val_strategy: str = 'fold',
                 val_fraction: float = 0.2,
                 num_classes: Optional[int] = None,
                 topk: Sequence[int] = (1, 5),
                 batch_size: int = 4,
                 num_workers: int = 0,
                 cache: bool = True,
                 cache_dir: Optional[str] = None,
                 dump_scores: bool = True,
                 compare_random: bool = False,
                 seed: int = 0,
                 device: str = 'auto',
                 progress: bool = True,
                 name: str = 'frozen-feature SVM'):
        if not isinstance(dataset, dict) or 'type' not in dataset:
            raise ValueError('dataset must be a dataset config dict with a '
                             '"type"')
        if feature not in FEATURE_KINDS:
            raise ValueError(f'feature must be one of {FEATURE_KINDS}, got '
                             f'{feature!r}')
        if val_strategy not in VAL_STRATEGIES:
            raise ValueError(f'val_strategy must be one of {VAL_STRATEGIES}, '
                             f'got {val_strategy!r}')
        folds = [int(f) for f in folds]
        if not folds or len(set(folds)) != len(folds):
            raise ValueError(f'folds must be distinct fold numbers, got '
                             f'{folds}')
        if batch_size < 1 or num_workers < 0:
            raise ValueError('batch_size must be >= 1 and num_workers >= 0')
        if svm_iters is not None and int(svm_iters) < 1:
            raise ValueError(f'svm_iters must be positive, got {svm_iters}')
        svm = dict(svm or {})
        LinearSVM(**dict(svm, C=1.0))  # check the SVM arguments early
        if svm_iters and svm.get('loss', 'squared_hinge') != 'multi_margin':
            print_log('svm_iters applies to loss="multi_margin" only; the '
                      'squared-hinge SVM is solved to convergence by L-BFGS',
                      logger='current', level=logging.INFO)
        self.dataset_cfg = dataset
        self.folds = folds
        self.fold_key = fold_key
        self.backbone = backbone
        self.modality = modality
        self.feature = feature
        self.checkpoint_prefix = checkpoint_prefix if checkpoint_prefix \
            is not None else f'{backbone}.'
        self.strict_load = strict_load
        self.C_grid = [float(c) for c in C_grid]
        self.svm_cfg = svm
        self.svm_iters = int(svm_iters) if svm_iters else None
        self.val_strategy = val_strategy
        self.val_fraction = float(val_fraction)
        self.num_classes = num_classes
        self.topk = tuple(int(k) for k in topk)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.cache = cache
        self.cache_dir = cache_dir
        self.dump_scores = dump_scores
        self.compare_random = compare_random
        self.seed = int(seed)
        self.device = device
        self.progress = progress
        self.name = name

    # ---------------------------------------------------------- building
    def _device(self) -> torch.device:
        if self.device == 'auto':
            return torch.device('cuda' if torch.cuda.is_available() else
                                'cpu')
        return torch.device(self.device)

    def build_dataset(self):
        from mmengine.registry import DefaultScope

        from avtoolkit.registry import DATASETS
        with DefaultScope.overwrite_default_scope('avtoolkit'):
            dataset = DATASETS.build(self.dataset_cfg)
        if len(dataset) == 0:
            raise ValueError('the protocol dataset is empty')
        return dataset

    def recordings(self, dataset) -> dict:
        """Labels ``(N,)``, folds ``(N,)`` and file names of the dataset."""
        labels, folds, names = [], [], []
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            if self.fold_key not in info:
                raise KeyError(f'data info {i} ({info.get("filename")}) has '
                               f'no "{self.fold_key}"; the protocol needs '
                               'the fold of every recording')
            label = info.get('label')
            if not isinstance(label, (int, np.integer)):
                raise ValueError(f'recording {info.get("filename")} needs '
                                 f'one integer label, got {label!r}')
            labels.append(int(label))
            folds.append(int(info[self.fold_key]))
            names.append(str(info.get('filename', i)))
        return dict(labels=torch.tensor(labels), folds=torch.tensor(folds),
                    filenames=names)

    def build_backbone(self, model_cfg: dict,
                       checkpoint: Optional[str]) -> Tuple[nn.Module,
                                                           nn.Module,
                                                           Optional[dict]]:
        """The backbone (initial weights from ``seed``, then the checkpoint
        if given), the data preprocessor and the load report."""
        from mmengine.registry import DefaultScope

        from avtoolkit.registry import MODELS
        cfg = model_cfg.get(self.backbone) if model_cfg else None
        if not cfg:
            raise KeyError(f'the model config has no "{self.backbone}" to '
                           'evaluate')
        pre_cfg = model_cfg.get('data_preprocessor') or dict(
            type='AVDataPreprocessor')
        torch.manual_seed(self.seed)
        with DefaultScope.overwrite_default_scope('avtoolkit'):
            backbone = MODELS.build(cfg)
            preprocessor = MODELS.build(pre_cfg)
        init_weights_quietly(backbone)
        report = None
        if checkpoint is not None:
            report = load_weights(backbone, checkpoint,
                                  self.checkpoint_prefix,
                                  strict=self.strict_load).to_dict()
        device = self._device()
        return backbone.to(device).eval(), preprocessor.to(device), report

    # -------------------------------------------------------- extraction
    @torch.no_grad()
    def extract(self, backbone: nn.Module, preprocessor: nn.Module,
                dataset,
                counter: Optional[BadInputCounter] = None) -> Tensor:
        """``(N, T, C)`` float32 clip features of every recording.

        ``counter`` receives the bad-input records of the samples (in
        evaluation: the recordings used after a policy change, e.g.
        looped)."""
        from mmengine.dataset import pseudo_collate
        from torch.utils.data import DataLoader
        loader = DataLoader(dataset, batch_size=self.batch_size,
                            shuffle=False, num_workers=self.num_workers,
                            collate_fn=pseudo_collate)
        tap = ProjectionInputTap(backbone, self.backbone) \
            if self.feature == 'cnn' else None
        out: Optional[Tensor] = None
        filled = torch.zeros(len(dataset), dtype=torch.bool)
        bar = None
        if self.progress:
            from mmengine.utils import ProgressBar
            bar = ProgressBar(len(dataset))
        for data in loader:
            if counter is not None:
                counter.update(collect_bad_inputs(data))
            data = preprocessor(data, False)
            clips = data['inputs'].get(self.modality)
            if clips is None:
                raise KeyError(f'the pipeline gives no "{self.modality}" '
                               f'input (got {sorted(data["inputs"])})')
            batch, num_clips = clips.shape[:2]
            if tap is not None:
                with tap:
                    backbone(clips)
                feats = tap.pop(batch, num_clips)
            else:
                feats = backbone(clips)
            feats = feats.float().cpu()
            if out is None:
                out = torch.zeros((len(dataset), ) + tuple(feats.shape[1:]))
            for i, sample in enumerate(data['data_samples']):
                idx = int(sample.metainfo['sample_idx'])
                out[idx] = feats[i]
                filled[idx] = True
            if bar is not None:
                bar.update(batch)
        if out is None or not bool(filled.all()):
            missed = (~filled).nonzero().flatten()[:10].tolist()
            raise RuntimeError(f'feature extraction missed recordings '
                               f'{missed}')
        if not torch.isfinite(out).all():
            raise ValueError('the extracted features contain NaN or '
                             'infinity')
        return out

    @staticmethod
    def _files_digest(filenames: Sequence[str]) -> str:
        """Digest of the recordings' paths, sizes and modification times,
        so that regenerated or replaced files under the same names do not
        reuse stale features.  A missing file leaves its name only."""
        h = hashlib.sha1()
        for name in filenames:
            try:
                stat = os.stat(name)
                h.update(f'{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n'
                         .encode())
            except OSError:
                h.update(f'{name}\0missing\n'.encode())
        return h.hexdigest()

    def _cache_file(self, work_dir: str, tag: str, model_cfg: dict,
                    checkpoint: Optional[str],
                    filenames: Sequence[str]) -> str:
        if checkpoint is not None:
            stat = os.stat(checkpoint)
            weights = [osp.abspath(checkpoint), stat.st_size,
                       stat.st_mtime_ns, self.checkpoint_prefix]
        else:
            weights = ['initial weights', self.seed]
        key = json.dumps(as_plain(dict(
            dataset=self.dataset_cfg, backbone=model_cfg.get(self.backbone),
            feature=self.feature, modality=self.modality, weights=weights,
            files=self._files_digest(filenames))),
            sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        folder = self.cache_dir or osp.join(work_dir, 'feature_cache')
        return osp.join(folder, f'{tag}_{self.backbone}_{digest}.npz')

    def features(self, model_cfg: dict, checkpoint: Optional[str], dataset,
                 recordings: dict, work_dir: str,
                 tag: str) -> Tuple[Tensor, Optional[dict], dict]:
        """Clip features for one set of weights, from the cache when
        possible.  Returns ``(features (N, T, C), load report, timing)``;
        ``timing['bad_inputs']`` is the bad-input state of the extraction
        (:meth:`BadInputCounter.state_dict`, kept in the cache too)."""
        cache_file = self._cache_file(
            work_dir, tag, model_cfg, checkpoint,
            recordings['filenames']) if self.cache else None
        if cache_file and osp.isfile(cache_file):
            with np.load(cache_file, allow_pickle=False) as data:
                if list(data['filenames']) == recordings['filenames'] \
                        and 'bad_inputs' in data:
                    print_log(f'{tag}: features from the cache {cache_file}',
                              logger='current')
                    report = json.loads(str(data['load_report']))
                    return torch.from_numpy(data['features']), report, dict(
                        cached=True, extract_s=0.0, cache_file=cache_file,
                        bad_inputs=json.loads(str(data['bad_inputs'])))
        start = time.perf_counter()
        backbone, preprocessor, report = self.build_backbone(
            model_cfg, checkpoint)
        print_log(f'{tag}: extracting {self.feature} features of '
                  f'{len(dataset)} recordings', logger='current')
        counter = BadInputCounter()
        feats = self.extract(backbone, preprocessor, dataset, counter)
        elapsed = time.perf_counter() - start
        print_log(f'{tag}: {counter.format()}', logger='current',
                  level=logging.WARNING if counter.counts else logging.INFO)
        if cache_file:
            with atomic_write(cache_file, 'wb') as f:
                np.savez(f, features=feats.numpy(),
                         filenames=np.array(recordings['filenames']),
                         load_report=json.dumps(report),
                         bad_inputs=json.dumps(counter.state_dict()))
        return feats, report, dict(cached=False, extract_s=elapsed,
                                   cache_file=cache_file,
                                   bad_inputs=counter.state_dict())

    # --------------------------------------------------------------- run
    def run(self, model_cfg: dict, checkpoint: Optional[str] = None,
            work_dir: str = '.', compare_random: Optional[bool] = None,
            dump: Optional[str] = None) -> dict:
        """Evaluate ``checkpoint`` (and, with ``compare_random``, the initial
        weights) and return the results (see :func:`cross_validate_svm`;
        per weight set under ``'pretrained'`` / ``'random_init'``, without
        the score tensors, which go to the dump files).

        Args:
            model_cfg: the ``model`` config (only ``model[backbone]`` and
                ``model.data_preprocessor`` are built).
            checkpoint: weights to evaluate; None evaluates the initial
                weights only.
            work_dir: folder of the cache and the score dumps.
            compare_random: overrides the constructor's ``compare_random``.
            dump: also write the per-recording scores of the checkpoint
                here (``.npz``, or ``.pkl``/``.pickle``).
        """
        start = time.perf_counter()
        if checkpoint is not None:
            check_checkpoint_file(checkpoint)  # before any work
        compare = self.compare_random if compare_random is None else \
            compare_random
        dataset = self.build_dataset()
        recs = self.recordings(dataset)
        runs: List[Tuple[str, Optional[str]]] = []
        if checkpoint is not None:
            runs.append(('pretrained', checkpoint))
        if compare or checkpoint is None:
            runs.append(('random_init', None))
        num_classes = int(self.num_classes or int(recs['labels'].max()) + 1)
        results = dict(
            protocol=type(self).__name__, name=self.name,
            checkpoint=checkpoint, backbone=self.backbone,
            feature=self.feature, num_recordings=len(dataset),
            num_classes=num_classes, test_folds=self.folds,
            C_grid=self.C_grid, svm=as_plain(self.svm_cfg),
            svm_iters=self.svm_iters, val_strategy=self.val_strategy)
        for tag, ckpt in runs:
            feats, report, timing = self.features(model_cfg, ckpt, dataset,
                                                  recs, work_dir, tag)
            results.setdefault('num_clips', feats.shape[1])
            results.setdefault('feature_dim', feats.shape[2])
            svm_start = time.perf_counter()
            print_log(f'{tag}: fitting the SVM on {len(self.folds)} folds',
                      logger='current')
            cv = cross_validate_svm(
                feats, recs['labels'], recs['folds'], self.folds,
                C_grid=self.C_grid, svm_cfg=self.svm_cfg,
                svm_iters=self.svm_iters, val_strategy=self.val_strategy,
                val_fraction=self.val_fraction, num_classes=num_classes,
                topk=self.topk, seed=self.seed, progress=self.progress)
            timing['svm_s'] = time.perf_counter() - svm_start
            scores = cv.pop('scores')
            cv['load_report'] = report
            bad = BadInputCounter()
            bad.load_state_dict(timing.pop('bad_inputs'))
            cv['bad_inputs'] = dict(bad.state_dict(), skipped=bad.skipped,
                                    adjusted=bad.adjusted,
                                    summary=bad.format())
            cv['timing'] = timing
            results[tag] = cv
            files = []
            if self.dump_scores:
                files.append(osp.join(work_dir, f'{tag}_scores.npz'))
            if dump and tag == runs[0][0]:
                files.append(dump)
            for path in files:
                self.dump(path, scores, recs)
            print_log(f'{tag}: top-1 {100 * cv["mean"]["top1"]:.2f} '
                      f'+- {100 * cv["std"]["top1"]:.2f} %', logger='current')
        if 'pretrained' in results and 'random_init' in results:
            results['top1_gain'] = results['pretrained']['mean']['top1'] - \
                results['random_init']['mean']['top1']
        results['time_s'] = time.perf_counter() - start
        return results

    def dump(self, path: str, scores: Tensor, recs: dict) -> None:
        """Per-recording test scores ``(N, K)``, predictions, labels, folds
        and file names (only recordings of the test folds)."""
        keep = ~torch.isnan(scores).any(dim=1)
        data = dict(filenames=np.array(recs['filenames'])[keep.numpy()],
                    labels=recs['labels'][keep].numpy(),
                    folds=recs['folds'][keep].numpy(),
                    scores=scores[keep].float().numpy(),
                    predictions=scores[keep].argmax(1).numpy())
        if path.endswith('.npz'):
            with atomic_write(path, 'wb') as f:
                np.savez(f, **data)
        elif path.endswith(('.pkl', '.pickle')):
            from mmengine.fileio import dump as mm_dump
            write_bytes_atomic(path, mm_dump(
                {k: v.tolist() for k, v in data.items()}, file_format='pkl'))
        else:
            raise ValueError(f'score dumps are .npz or .pkl files, got '
                             f'{path}')


def format_results_table(results: dict) -> str:
    """A text table of per-fold top-1 and mean +- std (percent) of every
    weight set in protocol ``results``."""
    tags = [t for t in ('pretrained', 'random_init') if t in results]
    if not tags:
        raise ValueError('no evaluated weights in the results')
    folds = list(results[tags[0]]['folds'])
    header = ['weights'] + [f'fold {k}' for k in folds] + \
        ['mean +- std', 'C per fold']
    rows = []
    for tag in tags:
        r = results[tag]
        rows.append([tag.replace('_', ' ')] +
                    [f'{100 * r["folds"][k]["top1"]:.1f}' for k in folds] +
                    [f'{100 * r["mean"]["top1"]:.2f} +- '
                     f'{100 * r["std"]["top1"]:.2f}',
                     ','.join(f'{r["selection"][k]["C"]:g}' for k in folds)])
    widths = [max(len(str(row[i])) for row in [header] + rows)
              for i in range(len(header))]
    lines = [f'{results.get("name", "protocol")}: top-1 accuracy (%) of '
             f'{results.get("feature")} features, '
             f'{results.get("num_recordings")} recordings']
    for row in [header] + rows:
        lines.append('  '.join(str(c).rjust(w) if i else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    if 'top1_gain' in results:
        lines.append(f'pretrained - random init: '
                     f'{100 * results["top1_gain"]:+.2f} points')
    # The same recordings are read for every weight set: one report.
    bad = results[tags[0]].get('bad_inputs')
    if bad is not None:
        lines.append(bad['summary'])
    return '\n'.join(lines)
