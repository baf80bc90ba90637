"""Checks of the optimizer's numbers before training starts.

A learning rate given as text (``--cfg-options optim_wrapper.optimizer.lr=
fast``) or too large for float32 arithmetic used to fail deep inside torch
(``'<' not supported between 'str' and 'float'``, ``can't multiply sequence
by non-int``, ``value cannot be converted to type float without
overflow``), after the data was prepared.  :func:`check_optimizer_numbers`
names the key instead.
"""
import math
from typing import Any, Iterator, Mapping, Tuple

__all__ = ['MAX_LR', 'OptimizerConfigError', 'check_optimizer_numbers']

# Adam-style optimizers divide the rate by ``1 - beta1 ** step`` (0.1 at the
# first step with beta1 = 0.9) and compute in float32, whose largest value is
# about 3.4e38; a rate above this bound overflows there.
MAX_LR = 1e36
# Keys of an optimizer config (and of its parameter groups) that hold
# numbers, and whether they must be positive.
NUMERIC_KEYS = {
    'lr': True, 'lr_mult': False, 'decay_mult': False, 'weight_decay': False,
    'momentum': False, 'eps': True, 'alpha': False, 'dampening': False,
}


class OptimizerConfigError(ValueError):
    """An optimizer setting that is not a usable number."""


def _numbers(cfg: Any, prefix: str) -> Iterator[Tuple[str, str, Any]]:
    """``(dotted key, key name, value)`` of the numeric settings under
    ``cfg`` (dicts and lists of dicts, e.g. parameter groups)."""
    if isinstance(cfg, Mapping):
        for key, value in cfg.items():
            path = f'{prefix}.{key}'
            if key in NUMERIC_KEYS or key == 'betas':
                yield path, key, value
            elif isinstance(value, (Mapping, list, tuple)):
                yield from _numbers(value, path)
    elif isinstance(cfg, (list, tuple)):
        for index, value in enumerate(cfg):
            yield from _numbers(value, f'{prefix}.{index}')


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_optimizer_numbers(cfg: Mapping) -> None:
    """Check the numeric settings of ``cfg.optim_wrapper`` (the optimizer
    and its parameter groups).

    Raises:
        OptimizerConfigError: naming the key, the value and the rule.
    """
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, Mapping):
        return
    problems = []
    for path, key, value in _numbers(wrapper, 'optim_wrapper'):
        values = value if key == 'betas' else [value]
        if key == 'betas' and not (isinstance(value, (list, tuple))
                                   and len(value) == 2):
            problems.append(f'{path}={value!r}: betas must be two numbers')
            continue
        for item in values:
            if not _is_number(item) or not math.isfinite(item):
                problems.append(f'{path}={value!r}: not a finite number')
                break
            if key == 'betas' and not 0 <= item < 1:
                problems.append(f'{path}={value!r}: betas must lie in [0, 1)')
                break
            if NUMERIC_KEYS.get(key) and item <= 0:
                problems.append(f'{path}={value!r}: must be positive')
                break
            if key in ('lr', 'weight_decay', 'momentum', 'lr_mult',
                       'decay_mult') and item < 0:
                problems.append(f'{path}={value!r}: must not be negative')
                break
            if key == 'lr' and item > MAX_LR:
                problems.append(
                    f'{path}={value!r}: above {MAX_LR:g}; the optimizer\'s '
                    'float32 arithmetic overflows (float32 ends near 3.4e38)')
                break
    if problems:
        raise OptimizerConfigError(
            'optimizer settings that cannot be used:\n  - '
            + '\n  - '.join(problems))
