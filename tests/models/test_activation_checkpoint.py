"""Activation checkpointing in a whole AVBERT training step (tiny model).

Checkpointing trades compute for memory and must not change the step:
the losses, every parameter gradient and the BatchNorm running statistics
have to match those of the same model without checkpointing.  Covered:
``ClipSequenceEncoder.with_cp`` (each CNN chunk recomputed as a whole, with
and without ``clip_chunk_size``) and mmaction's per-block ``with_cp`` inside
the SlowFast pathways.
"""
import copy

import pytest
import torch
from torch import nn

from avtoolkit.registry import MODELS

B, T = 2, 5


@pytest.fixture(scope='module')
def tiny_cfg(narrow_avbert_cfg):
    return narrow_avbert_cfg(num_negatives=4)


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (B, T, 3, 8, 16, 16), dtype=torch.uint8,
                          generator=g)
    audio = torch.randn(B, T, 1, 32, 51, generator=g)
    return dict(inputs=dict(video=video, audio=audio))


def _build(cfg, with_cp=False, chunk=None, cnn_with_cp=False):
    cfg = copy.deepcopy(cfg)
    for name in ('visual_backbone', 'audio_backbone'):
        cfg[name].update(with_cp=with_cp, clip_chunk_size=chunk)
    if cnn_with_cp:
        for path in ('slow_pathway', 'fast_pathway'):
            cfg.visual_backbone.cnn[path]['with_cp'] = True
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    # Non-zero last BN of the residual branches, so that every CNN weight
    # gets a gradient.
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    return model.train()


def _step(model, data, seed=3):
    """Losses, gradients and BN buffers after forward + backward."""
    torch.manual_seed(seed)  # mask, derangement, negatives, dropout
    batch = model.data_preprocessor(data, True)
    losses = model(**batch, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.grad is not None}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    return {k: v.detach() for k, v in losses.items()}, grads, buffers


def _copy_weights(src, dst):
    dst.load_state_dict(src.state_dict())


def _assert_same(ref, other, check_buffers=True):
    losses_r, grads_r, buffers_r = ref
    losses_o, grads_o, buffers_o = other
    assert losses_r.keys() == losses_o.keys()
    for k in losses_r:
        torch.testing.assert_close(losses_o[k], losses_r[k], msg=k)
    assert grads_r.keys() == grads_o.keys()
    for n in grads_r:
        torch.testing.assert_close(grads_o[n], grads_r[n], msg=n)
    if check_buffers:
        assert buffers_r.keys() == buffers_o.keys()
        for n in buffers_r:
            torch.testing.assert_close(buffers_o[n], buffers_r[n], msg=n)


@pytest.mark.parametrize('chunk', [None, 4])
def test_encoder_checkpointing_gives_the_same_step(tiny_cfg, chunk):
    plain = _build(tiny_cfg, chunk=chunk)
    ckpt = _build(tiny_cfg, with_cp=True, chunk=chunk)
    _copy_weights(plain, ckpt)
    data = _data()
    ref = _step(plain, data)
    got = _step(ckpt, data)
    # Every parameter of the model takes part in the step.
    assert len(ref[1]) == sum(1 for _ in plain.parameters())
    _assert_same(ref, got)
    # The BN statistics were updated by the step, once per chunk.
    counts = {int(v) for n, v in got[2].items()
              if n.endswith('num_batches_tracked')}
    n_chunks = 1 if chunk is None else -(-B * T // chunk)
    assert counts == {n_chunks}


def test_checkpointing_saves_cnn_activations(tiny_cfg):
    """Less is kept for the backward pass with checkpointing on."""
    from avtoolkit.benchmarks.memory import saved_activation_bytes

    data = _data()
    saved = {}
    for with_cp in (False, True):
        model = _build(tiny_cfg, with_cp=with_cp)
        batch = model.data_preprocessor(data, True)
        torch.manual_seed(3)
        saved[with_cp] = saved_activation_bytes(
            model, lambda m=model, b=batch: m(**b, mode='loss'))
    assert saved[True] < 0.5 * saved[False]


def test_mmaction_block_checkpointing_gives_the_same_gradients(tiny_cfg):
    plain = _build(tiny_cfg)
    ckpt = _build(tiny_cfg, cnn_with_cp=True)
    _copy_weights(plain, ckpt)
    assert any(getattr(m, 'with_cp', False) is True
               for m in ckpt.visual_backbone.cnn.modules())
    data = _data()
    ref = _step(plain, data)
    got = _step(ckpt, data)
    # mmaction recomputes its blocks with reentrant checkpointing, which
    # runs BatchNorm forward a second time in training mode: the running
    # statistics of the visual CNN are updated twice per step, so only the
    # losses and gradients are compared.
    _assert_same(ref, got, check_buffers=False)
