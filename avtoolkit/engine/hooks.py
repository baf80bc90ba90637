"""Training hooks: loss sanity, per-group learning rates, throughput."""
import math
import time
from typing import Optional, Sequence

import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook

from avtoolkit.registry import HOOKS


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

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None):
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
