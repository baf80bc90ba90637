"""The component breakdown runs each part of a step through AVBERT's public
methods (tiny model, tiny inputs)."""
import os.path as osp

import pytest
import torch

from avtoolkit.benchmarks.breakdown import COMPONENTS, component_steps
from avtoolkit.benchmarks.train_config import load_benchmark_config
from avtoolkit.benchmarks.train_setup import build_model, synthetic_batch

TINY = {
    'model.neck.embed_dim': 32, 'model.neck.num_heads': 2,
    'model.neck.ffn_dim': 64, 'model.neck.rank': 8,
    'model.visual_backbone.embed_dim': 32,
    'model.audio_backbone.embed_dim': 32, 'model.mep_head.in_channels': 32,
    'model.mep_head.proj_channels': 16, 'model.cpp_head.in_channels': 32,
    'model.cpp_head.hidden_channels': 32, 'model.sampler.num_negatives': 4
}
SHAPES = dict(video=(3, 3, 4, 16, 16), audio=(3, 1, 32, 32))


@pytest.fixture(scope='module')
def built(repo_root):
    cfg = load_benchmark_config(
        osp.join(repo_root, 'configs/pretrain/demo_mid_part.py'), TINY)
    torch.manual_seed(0)
    return build_model(cfg, torch.device('cpu'), 'fp32')


def _record(monkeypatch, model, name, calls):
    method = getattr(model, name)

    def wrapper(*args, **kwargs):
        out = method(*args, **kwargs)
        calls.append((name, args, out))
        return out

    monkeypatch.setattr(model, name, wrapper)


def test_parts_call_the_public_methods(built, monkeypatch):
    model, optim_wrapper = built
    calls = []
    for name in ('encode', 'sample_step', 'contextualise', 'head_losses'):
        _record(monkeypatch, model, name, calls)
    data = synthetic_batch(SHAPES, 2, torch.device('cpu'), seed=0)
    steps = component_steps(model, data, optim_wrapper,
                            torch.device('cpu'), 'fp32')
    assert list(steps) == list(COMPONENTS)
    # Setup: the CNN embeddings, the step's random choices, the neck's
    # outputs that the heads part starts from.
    assert [c[0] for c in calls] == ['encode', 'sample_step',
                                     'contextualise']
    mask, perm = calls[1][2]
    assert mask.shape == (2, 3) and perm is not None  # CPP: a derangement
    del calls[:]

    steps['neck']()
    assert [c[0] for c in calls] == ['contextualise']
    x_v, x_a, neck_mask, neck_perm = calls[0][1]
    assert x_v.requires_grad and x_a.requires_grad
    assert torch.equal(neck_mask, mask) and torch.equal(neck_perm, perm)
    # Both CPP classifiers: the mismatched pass is part of the neck.
    assert calls[0][2].z_mismatched is not None
    del calls[:]

    steps['heads']()
    assert [c[0] for c in calls] == ['head_losses']
    outputs, heads_perm = calls[0][1]
    assert torch.equal(heads_perm, perm)
    assert outputs.x_v.requires_grad and outputs.z_mismatched.requires_grad
    assert set(calls[0][2]) >= {'loss_mep_v', 'loss_mep_a', 'loss_mep_av',
                                'loss_cpp_uni', 'loss_cpp_multi'}
    del calls[:]

    for name in ('preprocess', 'visual_cnn', 'audio_cnn', 'optimizer'):
        steps[name]()
    assert calls == []
    # Every part leaves the gradients cleared.
    assert all(p.grad is None or not p.grad.any()
               for p in model.parameters())
