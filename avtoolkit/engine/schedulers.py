"""Learning-rate schedule of the AVBERT recipes.

Appendix A.4 of the paper: linear warm-up over the first 6% of iterations,
then linear decay (to zero at the end of training).  The schedule is defined
by ratios of the run's length, so it stays right when the length changes:
``tools/train.py`` fills ``total_iters`` from ``train_cfg.max_iters`` when the
config leaves it ``None``.
"""
from typing import Optional

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import _ParamScheduler

from avtoolkit.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class WarmupLinearDecayLR(LRSchedulerMixin, _ParamScheduler):
    """``lr(i) = base * (i + 1) / W`` for ``i < W``, then
    ``base * (N - i) / (N - W)``, with ``W = round(warmup_ratio * N)``.

    Iteration-based (``by_epoch=False``).  Every parameter group keeps its own
    base rate, so group multipliers (e.g. 0.1 for orthogonal parameters) hold
    throughout.

    Args:
        optimizer: the wrapped optimizer.
        warmup_ratio: share of the iterations spent warming up (0.06).
        total_iters: training length N; ``None`` must be filled in before
            building (``tools/train.py`` uses ``train_cfg.max_iters``).
        end_factor: factor reached at the last iteration's end (0.0).
    """

    def __init__(self, optimizer, warmup_ratio: float = 0.06,
                 total_iters: Optional[int] = None, end_factor: float = 0.0,
                 last_step: int = -1, verbose: bool = False, **kwargs):
        if total_iters is None:
            raise ValueError(
                'WarmupLinearDecayLR needs total_iters; tools/train.py fills '
                'it from train_cfg.max_iters, otherwise set it in the config')
        if not 0 <= warmup_ratio < 1:
            raise ValueError('warmup_ratio must be in [0, 1)')
        if kwargs.pop('by_epoch', False):
            raise ValueError('WarmupLinearDecayLR is iteration-based')
        self.total_iters = int(total_iters)
        self.warmup_iters = int(round(warmup_ratio * self.total_iters))
        self.end_factor = end_factor
        super().__init__(optimizer, begin=0,
                         end=self.total_iters, last_step=last_step,
                         by_epoch=False, verbose=verbose)

    def factor(self, step: int) -> float:
        if step < self.warmup_iters:
            return (step + 1) / self.warmup_iters
        span = max(self.total_iters - self.warmup_iters, 1)
        remaining = (self.total_iters - step) / span
        return self.end_factor + (1.0 - self.end_factor) * remaining

    def _get_value(self):
        factor = self.factor(self.last_step)
        return [base * factor for base in self.base_values]


def fill_schedule_lengths(cfg) -> None:
    """Set ``total_iters`` of length-relative schedulers from the train loop."""
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    max_iters = (cfg.get('train_cfg') or {}).get('max_iters')
    for scheduler in schedulers:
        if scheduler.get('type') == 'WarmupLinearDecayLR' and \
                scheduler.get('total_iters') is None:
            if max_iters is None:
                raise ValueError('WarmupLinearDecayLR without total_iters '
                                 'needs train_cfg.max_iters')
            scheduler['total_iters'] = max_iters
