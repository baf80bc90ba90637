"""Training hooks: loss sanity, per-group learning rates, throughput."""
import math
import time
from typing import Optional, Sequence

import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook

from avtoolkit.registry import HOOKS
from avtoolkit.utils.atomic import write_json_atomic


class NonFiniteLossError(RuntimeError):
    """Raised when a training loss term is NaN or infinite."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training when a loss term is NaN or infinite.

    Runs before the checkpoint hook of the same iteration, so the weights of a
    failed step are never saved and the last checkpoint stays the last good
    one; the error names the offending terms and that checkpoint.

    Args:
        patience: consecutive iterations with a non-finite loss tolerated
            before stopping (1 stops at the first).  With fp16 dynamic loss
            scaling a non-finite *gradient* only skips the step; this hook
            looks at the losses themselves.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, patience: int = 1):
        if patience < 1:
            raise ValueError('patience must be at least 1')
        self.patience = patience
        self._bad_iters = 0

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch=None, outputs: Optional[dict] = None):
        if not outputs:
            return
        bad = {}
        for key, value in outputs.items():
            if 'loss' not in key:
                continue
            number = float(value.detach().float().mean()) if isinstance(
                value, torch.Tensor) else float(value)
            if not math.isfinite(number):
                bad[key] = number
        if not bad:
            self._bad_iters = 0
            return
        self._bad_iters += 1
        if self._bad_iters < self.patience:
            runner.logger.warning(f'non-finite loss at iteration '
                                  f'{runner.iter + 1}: {bad}')
            return
        last = runner.message_hub.get_info('last_ckpt', None)
        terms = ', '.join(f'{k}={v}' for k, v in bad.items())
        raise NonFiniteLossError(
            f'Non-finite loss at iteration {runner.iter + 1}: {terms}. '
            'Training stopped before saving this state. '
            + (f'The last good checkpoint is {last}; resume from it with '
               f'--resume {last} after lowering the learning rate or '
               'enabling gradient clipping.' if last else
               'No checkpoint was saved yet.'))


@HOOKS.register_module()
class ParamGroupLrHook(Hook):
    """Log the learning rate of every optimizer parameter group.

    mmengine's ``RuntimeInfoHook`` logs only the first group's rate as ``lr``;
    this adds ``<group name>_lr`` for each group (the group's ``name`` key, as
    set by ``GroupedOptimWrapperConstructor``, else its index).
    """

    priority = 'BELOW_NORMAL'

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        # Same moment as RuntimeInfoHook's ``lr``: the rate this step uses.
        wrapper = runner.optim_wrapper
        wrappers = wrapper.optim_wrappers.values() if hasattr(
            wrapper, 'optim_wrappers') else [wrapper]
        for optim_wrapper in wrappers:
            for index, group in enumerate(
                    optim_wrapper.optimizer.param_groups):
                name = group.get('name', f'group{index}')
                runner.message_hub.update_scalar(f'train/{name}_lr',
                                                 group['lr'])


@HOOKS.register_module()
class ThroughputHook(Hook):
    """Log training samples per second over all ranks (``samples_per_s``).

    The batch size is read from the first tensor found in the batch's
    ``inputs`` (a tensor, a list of per-sample items, or a dict of tensors).
    """

    priority = 'BELOW_NORMAL'

    def __init__(self):
        self._start = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        self._start = time.perf_counter()

    @staticmethod
    def batch_size(data_batch) -> Optional[int]:
        inputs = data_batch.get('inputs') if isinstance(data_batch,
                                                        dict) else None
        if isinstance(inputs, torch.Tensor):
            return inputs.shape[0]
        if isinstance(inputs, dict):
            for value in inputs.values():
                found = ThroughputHook.batch_size(dict(inputs=value))
                if found:
                    return found
        if isinstance(inputs, Sequence) and not isinstance(inputs, str):
            return len(inputs)
        return None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None):
        if self._start is None:
            return
        elapsed = time.perf_counter() - self._start
        size = self.batch_size(data_batch)
        if size and elapsed > 0:
            runner.message_hub.update_scalar(
                'train/samples_per_s', size * get_world_size() / elapsed)


@HOOKS.register_module()
class ProbeHook(Hook):
    """Linear and k-NN probes of the frozen features during pretraining.

    Extracts features of two labelled sets (``train_dataloader`` fits the
    probes, ``val_dataloader`` scores them) with the model in eval mode and
    logs the accuracies, so a user sees representation quality rise and not
    only the loss fall.  The probes run before training (the architecture
    with its random initial weights: the baseline), every ``interval``
    iterations if set, and after training, where both are printed side by
    side.

    Args:
        train_dataloader, val_dataloader: dataloader configs of labelled
            sequences (``inputs`` dict and data samples with ``gt_labels``).
        features: names from :data:`avtoolkit.models.structures.POOLED_FEATURES`.
        main_feature: the feature of the headline line (default the first).
        interval: iterations between probes during training (None: only
            before and after).
        knn_k: neighbours of the k-NN probe.
        linear_weight_decay: L2 penalty of the linear probe.
    """

    priority = 'LOW'

    def __init__(self, train_dataloader: dict, val_dataloader: dict,
                 features: Sequence[str] = ('x_mean', 'z_summary'),
                 main_feature: Optional[str] = None,
                 interval: Optional[int] = None, knn_k: int = 10,
                 linear_weight_decay: float = 1e-3):
        from avtoolkit.models.structures import POOLED_FEATURES
        unknown = set(features) - set(POOLED_FEATURES)
        if unknown or not features:
            raise ValueError(f'features must be among {POOLED_FEATURES}, got '
                             f'{features}')
        self.loader_cfgs = dict(train=train_dataloader, val=val_dataloader)
        self.features = tuple(features)
        self.main_feature = main_feature or self.features[0]
        if self.main_feature not in self.features:
            raise ValueError('main_feature must be one of features')
        self.interval = interval
        self.knn_k = knn_k
        self.linear_weight_decay = linear_weight_decay
        self._loaders = {}
        self.baseline = None
        self.results = {}

    def _extract(self, runner, split: str):
        from avtoolkit.evaluation.extraction import extract_pooled_features
        if split not in self._loaders:
            self._loaders[split] = runner.build_dataloader(
                self.loader_cfgs[split])
        return extract_pooled_features(runner.model, self._loaders[split],
                                       self.features)

    def _probe(self, runner) -> dict:
        from avtoolkit.evaluation.probes import run_probes
        train_x, train_y = self._extract(runner, 'train')
        val_x, val_y = self._extract(runner, 'val')
        return run_probes(train_x, train_y, val_x, val_y, self.features,
                          knn_k=self.knn_k,
                          linear_weight_decay=self.linear_weight_decay)

    def _log(self, runner, tag: str, results: dict) -> None:
        text = '  '.join(f'{k}: {v:.3f}' for k, v in results.items())
        runner.logger.info(f'probe ({tag}, iteration {runner.iter}): {text}')
        runner.visualizer.add_scalars(
            {f'probe/{k}': v for k, v in results.items()}, step=runner.iter)

    def before_train(self, runner) -> None:
        self.baseline = self._probe(runner)
        self._log(runner, 'initial weights', self.baseline)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.interval and self.every_n_train_iters(runner, self.interval) \
                and runner.iter + 1 < runner.max_iters:
            self._log(runner, 'training', self._probe(runner))

    def after_train(self, runner) -> None:
        self.results = self._probe(runner)
        self._log(runner, 'trained', self.results)
        key = f'{self.main_feature}/linear_top1'
        summary = (f'linear probe on "{self.main_feature}" features: '
                   f'pretrained {self.results[key]:.3f} vs random weights '
                   f'{self.baseline[key]:.3f} '
                   f'({self.results[key] - self.baseline[key]:+.3f})')
        runner.logger.info(summary)
        runner.message_hub.update_info('probe_summary', dict(
            pretrained=self.results, random_init=self.baseline))
        if runner.rank == 0:
            import os.path as osp
            write_json_atomic(osp.join(runner.work_dir, 'probe_results.json'),
                              dict(pretrained=self.results,
                                   random_init=self.baseline,
                                   iteration=runner.iter), indent=2)


@HOOKS.register_module()
class BadInputLoggerHook(Hook):
    """Count, log and save the inputs the datasets skipped.

    Datasets following :class:`avtoolkit.datasets.bad_input.BadInputPolicy`
    replace a bad sample by another and attach a record of the skip to the
    sample they return (``metainfo['bad_inputs']``), which is how counts made
    in dataloader worker processes reach the main process.  This hook adds
    them up per mode, logs the counts (with example file names) every
    ``interval`` iterations when they grew, writes them to the visualizer
    backends, keeps the training counts in the message hub (so they survive
    a resume) and, at the end of training/validation/testing, sums them over
    all ranks and writes ``WORK_DIR/bad_inputs_<mode>.json``.

    Args:
        interval: iterations between log lines (only when counts grew).
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, interval: int = 50):
        from avtoolkit.datasets.bad_input import BadInputCounter
        self.interval = interval
        self.counters = {m: BadInputCounter() for m in ('train', 'val',
                                                         'test')}

    def before_train(self, runner) -> None:
        state = runner.message_hub.get_info('bad_input_counts', None)
        if state:
            self.counters['train'].load_state_dict(state)

    def _after_iter(self, runner, mode: str, batch_idx: int, data_batch,
                    step: int) -> None:
        from avtoolkit.datasets.bad_input import collect_bad_inputs
        counter = self.counters[mode]
        if not counter.update(collect_bad_inputs(data_batch)):
            return
        if mode == 'train':
            runner.message_hub.update_info('bad_input_counts',
                                           counter.state_dict())
        if (batch_idx + 1) % self.interval == 0 and counter.has_news():
            runner.logger.warning(f'[{mode}] {counter.format()}')
            runner.visualizer.add_scalars(
                counter.as_scalars(f'{mode}/bad_input/'), step=step)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._after_iter(runner, 'train', runner.iter, data_batch,
                         runner.iter + 1)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs=None) -> None:
        self._after_iter(runner, 'val', batch_idx, data_batch, runner.iter)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None,
                        outputs=None) -> None:
        self._after_iter(runner, 'test', batch_idx, data_batch, runner.iter)

    def _finish(self, runner, mode: str) -> None:
        import os.path as osp
        counter = self.counters[mode]
        counter.all_reduce()  # collective: every rank calls it
        if runner.rank != 0:
            return
        runner.logger.info(f'[{mode}] final {counter.format()}')
        counter.dump(osp.join(runner.work_dir, f'bad_inputs_{mode}.json'))

    def after_train(self, runner) -> None:
        self._finish(runner, 'train')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._finish(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._finish(runner, 'test')
