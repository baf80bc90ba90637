"""Optimizer-wrapper constructor with a few named parameter groups.

The AVBERT recipes (appendix A.4 of the paper) need different learning rates
for a handful of parameter families: the orthogonal Σ generators train at a
tenth of the base rate in pretraining, and fine-tuning uses separate rates for
the classifier + CNNs, the orthogonal parameters and the rest.  mmengine's
``DefaultOptimWrapperConstructor`` can express multipliers, but makes one
optimizer group per parameter, which defeats the multi-tensor (``foreach``)
kernels of Adam-style optimizers and makes per-group learning-rate logging
unreadable.  :class:`GroupedOptimWrapperConstructor` instead makes one group
per (family, decay) pair, each with a ``name`` that the logger shows.

Config::

    optim_wrapper = dict(
        constructor='GroupedOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.98),
                       weight_decay=1e-4, amsgrad=True),
        paramwise_cfg=dict(
            groups=[dict(name='orthogonal', keys=[r'sigma_generator'],
                         lr_mult=0.1)],
            no_decay_norm=False, no_decay_bias=False, no_decay_keys=[]))

``keys`` are regular expressions searched in the full parameter name; the first
group whose key matches takes the parameter, otherwise it goes to ``default``.
With ``no_decay_norm`` / ``no_decay_bias`` / ``no_decay_keys`` (e.g. embedding
names) matching parameters of any family get weight decay 0, in a separate
``<family>_no_decay`` group.
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from avtoolkit.registry import OPTIM_WRAPPER_CONSTRUCTORS

_NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class GroupedOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Build an optimizer whose parameters fall into a few named groups."""

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.groups: List[dict] = []
        for group in paramwise_cfg.pop('groups', []):
            group = dict(group)
            unknown = set(group) - {'name', 'keys', 'lr_mult', 'decay_mult'}
            if 'name' not in group or 'keys' not in group or unknown:
                raise ValueError(
                    'each entry of paramwise_cfg.groups needs "name" and '
                    f'"keys" (optional lr_mult, decay_mult); got {group}')
            if group['name'] == 'default':
                raise ValueError('"default" is the name of the group of '
                                 'unmatched parameters')
            group['patterns'] = [re.compile(k) for k in group['keys']]
            self.groups.append(group)
        self.no_decay_norm = paramwise_cfg.pop('no_decay_norm', False)
        self.no_decay_bias = paramwise_cfg.pop('no_decay_bias', False)
        self.no_decay_keys = [
            re.compile(k) for k in paramwise_cfg.pop('no_decay_keys', [])
        ]
        if paramwise_cfg:
            raise ValueError('unknown paramwise_cfg keys for '
                             f'GroupedOptimWrapperConstructor: '
                             f'{sorted(paramwise_cfg)}')
        # The parent keeps optimizer/wrapper configs; its own paramwise
        # machinery is not used (add_params is overridden below).
        super().__init__(optim_wrapper_cfg, paramwise_cfg={'_grouped': True})

    def _family(self, name: str) -> dict:
        for group in self.groups:
            if any(p.search(name) for p in group['patterns']):
                return group
        return dict(name='default', lr_mult=1.0, decay_mult=1.0)

    def _no_decay(self, name: str, module: nn.Module) -> bool:
        leaf = name.rsplit('.', 1)[-1]
        return ((self.no_decay_norm and isinstance(module, _NORMS))
                or (self.no_decay_bias and leaf == 'bias')
                or any(p.search(name) for p in self.no_decay_keys))

    def add_params(self, params: List[dict], module: nn.Module,
                   prefix: str = '', is_dcn_module=None) -> None:
        """Fill ``params`` with one dict per (family, decay) group."""
        base_lr = self.optimizer_cfg.get('lr')
        base_wd = self.optimizer_cfg.get('weight_decay', 0.0)
        buckets: Dict[Tuple[str, bool], dict] = {}
        order = [g['name'] for g in self.groups] + ['default']
        for mod_name, mod in module.named_modules():
            for p_name, param in mod.named_parameters(recurse=False):
                if not param.requires_grad:
                    continue
                name = f'{mod_name}.{p_name}' if mod_name else p_name
                family = self._family(name)
                no_decay = self._no_decay(name, mod)
                key = (family['name'], no_decay)
                if key not in buckets:
                    group = dict(
                        name=family['name'] + ('_no_decay' if no_decay
                                               else ''),
                        params=[])
                    if base_lr is not None:
                        group['lr'] = base_lr * family.get('lr_mult', 1.0)
                    group['weight_decay'] = 0.0 if no_decay else (
                        base_wd * family.get('decay_mult', 1.0))
                    buckets[key] = group
                buckets[key]['params'].append(param)
        for family in order:
            for no_decay in (False, True):
                if (family, no_decay) in buckets:
                    params.append(buckets[(family, no_decay)])
        if not params:
            raise ValueError('the model has no trainable parameters')


def group_sizes(param_groups: Sequence[dict]) -> Dict[str, int]:
    """Number of scalar parameters per named group (for logs and tests)."""
    return {
        g.get('name', str(i)): sum(p.numel() for p in g['params'])
        for i, g in enumerate(param_groups)
    }
