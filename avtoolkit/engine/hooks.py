"""Training hooks: loss sanity, per-group learning rates, throughput."""
import math
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook

from avtoolkit.registry import HOOKS
from avtoolkit.utils.atomic import write_json_atomic


class NonFiniteError(RuntimeError):
    """Training produced NaN or infinite values; the message names them and
    the last good checkpoint."""


class NonFiniteLossError(NonFiniteError):
    """Raised when a training loss term is NaN or infinite."""


class NonFiniteGradientError(NonFiniteError):
    """Raised when gradients are NaN or infinite right before an optimizer
    step (and the hook is set to stop, or too many steps in a row were
    skipped)."""


class NonFiniteParameterError(NonFiniteError):
    """Raised instead of saving a checkpoint whose weights are NaN or
    infinite."""


def nonfinite_tensors(named_tensors) -> List[str]:
    """Names of the floating point tensors holding a NaN or an infinity, in
    the order given (``named_tensors``: ``(name, tensor)`` pairs; ``None``
    and integer tensors are passed over)."""
    bad = []
    for name, tensor in named_tensors:
        if isinstance(tensor, torch.Tensor) and (
                tensor.is_floating_point() or tensor.is_complex()) and \
                not bool(torch.isfinite(tensor).all()):
            bad.append(name)
    return bad


def last_good_checkpoint_advice(runner) -> str:
    """The sentence of the non-finite errors that names the checkpoint to
    go back to."""
    last = runner.message_hub.get_info('last_ckpt', None)
    if not last:
        return 'No checkpoint was saved yet.'
    return (f'The last good checkpoint is {last}; resume from it with '
            f'--resume {last} after lowering the learning rate or enabling '
            'gradient clipping.')


def _all_finite(tensors: List[torch.Tensor]) -> bool:
    """Whether every tensor is free of NaN and infinity, with one
    synchronisation per device (the largest magnitude of each tensor is
    NaN or infinite exactly when the tensor holds such a value)."""
    by_device: Dict[torch.device, List[torch.Tensor]] = {}
    for tensor in tensors:
        by_device.setdefault(tensor.device, []).append(tensor)
    for group in by_device.values():
        if hasattr(torch.nn.utils, 'get_total_norm'):
            peak = torch.nn.utils.get_total_norm(group, float('inf'))
        else:  # torch < 2.6
            peak = torch.stack([t.detach().abs().max().float()
                                for t in group if t.numel()] or
                               [torch.zeros(())]).max()
        if not bool(torch.isfinite(peak)):
            return False
    return True


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Keep NaN and infinity out of the weights: check the losses of every
    iteration and the gradients right before every optimizer step.

    Losses: runs before the checkpoint hook of the same iteration, so the
    weights of a failed iteration are never saved and the last checkpoint
    stays the last good one; the error names the offending terms and that
    checkpoint.

    Gradients: a loss can be finite while its gradients are not (an
    overflow in the backward pass, a square root at zero).  The hook
    registers a step pre-hook on every optimizer, which sees the gradients
    after the optim wrapper has all-reduced and clipped them, right before
    the update.  When one of them holds a NaN or an infinity the update is
    skipped (every gradient of that optimizer is dropped, which torch's
    optimizers treat as "no update"; weights and optimizer state stay as
    they were), the skip is counted (``nonfinite_grad_steps`` in the message
    hub's runtime info, saved with checkpoints; a warning with the first
    offending parameters; the scalar ``train/nonfinite_grad_steps`` for the
    visualizer) and, depending on ``grad_action``, the run goes on or
    stops.  With fp16 dynamic loss scaling the AMP scaler skips such steps
    before the optimizer sees them; this check then only sees unscaled,
    finite gradients.

    Args:
        patience: consecutive iterations with a non-finite loss tolerated
            before stopping (1 stops at the first).
        check_grads: check gradients before each optimizer step.
        grad_action: ``'skip'`` (default): skip the update and go on;
            ``'stop'``: stop the run at the first non-finite gradient
            (before the update and before any checkpoint of that
            iteration).
        max_skipped_steps: with ``'skip'``, stop once this many consecutive
            optimizer steps were skipped (the run is not recovering).
    """

    priority = 'ABOVE_NORMAL'
    GRAD_ACTIONS = ('skip', 'stop')

    def __init__(self, patience: int = 1, check_grads: bool = True,
                 grad_action: str = 'skip', max_skipped_steps: int = 10):
        if patience < 1:
            raise ValueError('patience must be at least 1')
        if grad_action not in self.GRAD_ACTIONS:
            raise ValueError(f'grad_action must be one of '
                             f'{self.GRAD_ACTIONS}, got {grad_action!r}')
        if max_skipped_steps < 1:
            raise ValueError('max_skipped_steps must be at least 1')
        self.patience = patience
        self.check_grads = bool(check_grads)
        self.grad_action = grad_action
        self.max_skipped_steps = max_skipped_steps
        self._bad_iters = 0
        self._skips_in_a_row = 0
        self._handles = []
        self._param_names: Dict[int, str] = {}
        # Parameters with non-finite gradients found during this iteration.
        self._bad_grads: List[str] = []

    # ---------------------------------------------------------- gradients
    @staticmethod
    def _optimizers(runner):
        wrapper = runner.optim_wrapper
        wrappers = wrapper.optim_wrappers.values() if hasattr(
            wrapper, 'optim_wrappers') else [wrapper]
        return [w.optimizer for w in wrappers]

    def before_train(self, runner) -> None:
        if not self.check_grads:
            return
        model = runner.model.module if hasattr(runner.model, 'module') \
            else runner.model
        self._param_names = {id(p): n for n, p in model.named_parameters()}
        for optimizer in self._optimizers(runner):
            self._handles.append(
                optimizer.register_step_pre_hook(self._before_step))

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _before_step(self, optimizer, args, kwargs) -> None:
        params = [p for group in optimizer.param_groups
                  for p in group['params'] if p.grad is not None]
        if _all_finite([p.grad for p in params]):
            self._skips_in_a_row = 0
            return
        self._bad_grads += nonfinite_tensors(
            (self._param_names.get(id(p), f'<parameter {i}>'), p.grad)
            for i, p in enumerate(params))
        for group in optimizer.param_groups:
            for p in group['params']:
                p.grad = None  # torch's optimizers leave these untouched

    def _after_skipped_step(self, runner) -> None:
        names, self._bad_grads = self._bad_grads, []
        total = runner.message_hub.get_info('nonfinite_grad_steps', 0) + 1
        runner.message_hub.update_info('nonfinite_grad_steps', total)
        runner.visualizer.add_scalars(
            {'train/nonfinite_grad_steps': total}, step=runner.iter + 1)
        shown = ', '.join(names[:5]) + (
            f' and {len(names) - 5} more' if len(names) > 5 else '')
        self._skips_in_a_row += 1
        where = (f'Non-finite gradients at iteration {runner.iter + 1} in '
                 f'{len(names)} parameters ({shown})')
        if self.grad_action == 'stop':
            raise NonFiniteGradientError(
                f'{where}. Training stopped before the update and before '
                'saving this state. ' + last_good_checkpoint_advice(runner))
        if self._skips_in_a_row >= self.max_skipped_steps:
            raise NonFiniteGradientError(
                f'{where}: {self._skips_in_a_row} optimizer steps in a row '
                'skipped (max_skipped_steps), training stopped. '
                + last_good_checkpoint_advice(runner))
        runner.logger.warning(
            f'{where}; the optimizer step was skipped ({total} skipped so '
            'far in this run).')

    # -------------------------------------------------------------- losses
    def after_train_iter(self, runner, batch_idx: int,
                         data_batch=None, outputs: Optional[dict] = None):
        self._check_losses(runner, outputs)
        if self._bad_grads:
            self._after_skipped_step(runner)

    def _check_losses(self, runner, outputs: Optional[dict]) -> None:
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
        self._bad_grads = []
        terms = ', '.join(f'{k}={v}' for k, v in bad.items())
        raise NonFiniteLossError(
            f'Non-finite loss at iteration {runner.iter + 1}: {terms}. '
            'Training stopped before saving this state. '
            + last_good_checkpoint_advice(runner))


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
    all ranks and writes ``WORK_DIR/bad_inputs_<mode>.json``.  Validation
    and test counts start from zero at every run (the JSON holds the last
    run's); training counts run over the whole training.

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

    def _start(self, mode: str) -> None:
        from avtoolkit.datasets.bad_input import BadInputCounter
        # Each validation or test run reports what it met (the totals of the
        # previous one were also summed over ranks already).
        self.counters[mode] = BadInputCounter()

    def before_val_epoch(self, runner) -> None:
        self._start('val')

    def before_test_epoch(self, runner) -> None:
        self._start('test')

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
