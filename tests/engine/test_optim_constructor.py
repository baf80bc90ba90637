"""GroupedOptimWrapperConstructor: named groups, multipliers, no-decay."""
import pytest
import torch
from mmengine.registry import DefaultScope
from torch import nn

from avtoolkit.engine.optim_constructor import group_sizes
from avtoolkit.registry import OPTIM_WRAPPER_CONSTRUCTORS


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
        self.neck = nn.Module()
        self.neck.sigma_generator = nn.Parameter(torch.zeros(2, 3, 3))
        self.neck.proj = nn.Linear(4, 4)
        self.neck.norm = nn.LayerNorm(4)
        self.time_embed = nn.Parameter(torch.zeros(5, 4))
        self.frozen = nn.Parameter(torch.zeros(3), requires_grad=False)


def build(paramwise_cfg):
    cfg = dict(type='GroupedOptimWrapperConstructor',
               optim_wrapper_cfg=dict(
                   type='OptimWrapper',
                   optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4,
                                  betas=(0.9, 0.98), amsgrad=True)),
               paramwise_cfg=paramwise_cfg)
    with DefaultScope.overwrite_default_scope('avtoolkit'):
        return OPTIM_WRAPPER_CONSTRUCTORS.build(cfg)(Net())


def test_orthogonal_group_gets_a_tenth_of_the_rate():
    wrapper = build(dict(groups=[dict(name='orthogonal',
                                      keys=['sigma_generator'],
                                      lr_mult=0.1)]))
    groups = {g['name']: g for g in wrapper.optimizer.param_groups}
    assert list(groups) == ['orthogonal', 'default']
    assert groups['orthogonal']['lr'] == pytest.approx(1e-5)
    assert groups['default']['lr'] == pytest.approx(1e-4)
    assert groups['default']['amsgrad'] is True
    assert groups['default']['betas'] == (0.9, 0.98)
    sizes = group_sizes(wrapper.optimizer.param_groups)
    assert sizes['orthogonal'] == 18
    # the frozen parameter is left out entirely
    total = sum(p.numel() for p in Net().parameters() if p.requires_grad)
    assert sum(sizes.values()) == total


def test_no_decay_for_norms_biases_and_embeddings():
    wrapper = build(dict(groups=[dict(name='orthogonal',
                                      keys=['sigma_generator'],
                                      lr_mult=0.1, decay_mult=0.0)],
                         no_decay_norm=True, no_decay_bias=True,
                         no_decay_keys=['time_embed']))
    groups = {g['name']: g for g in wrapper.optimizer.param_groups}
    assert set(groups) == {'orthogonal', 'default', 'default_no_decay'}
    assert groups['orthogonal']['weight_decay'] == 0.0
    assert groups['default']['weight_decay'] == pytest.approx(1e-4)
    assert groups['default_no_decay']['weight_decay'] == 0.0
    no_decay_ids = {id(p) for p in groups['default_no_decay']['params']}
    net_names = dict(Net().named_parameters())
    # conv weight and linear weight decay; norms, biases, embeddings do not
    assert len(groups['default']['params']) == 2
    assert len(no_decay_ids) == len(net_names) - 1 - 1 - 2  # frozen, sigma


def test_bad_group_spec_is_refused():
    with pytest.raises(ValueError, match='name'):
        build(dict(groups=[dict(keys=['x'])]))
    with pytest.raises(ValueError, match='unknown paramwise_cfg'):
        build(dict(custom_keys={}))
