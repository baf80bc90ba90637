"""The loss end of AVBERT pinned against raw-tensor references.

The heads read :class:`AVOutputs`; these tests recompute every term from the
raw tensors (``y_v[:, 1:]``, ``z`` sliced at ``T + 1``, the sampler's
indices into ``x``) with :func:`info_nce` and plain BCE, and require the same
numbers.  The last test replays one training step from the public methods in
the documented order of random draws (mask, perm, neck dropout, visual then
audio negatives, CPP positions) and requires ``AVBERT.loss`` to match.
"""

import pytest
import torch
import torch.nn.functional as F

from avtoolkit.models.heads import CPPHead, MEPHead
from avtoolkit.models.losses import info_nce
from avtoolkit.models.samplers import CANSSampler
from avtoolkit.models.structures import AVOutputs
from avtoolkit.models.utils import (MaskGenerator, make_derangement,
                                    sample_positions)
from avtoolkit.registry import MODELS

B, T, D = 4, 5, 8


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _raw(seed=0, requires_grad=True):
    gen = _gen(seed)
    raw = dict(
        x_v=torch.randn(B, T, D, generator=gen),
        x_a=torch.randn(B, T, D, generator=gen),
        y_v=torch.randn(B, T + 1, D, generator=gen),
        y_a=torch.randn(B, T + 1, D, generator=gen),
        z=torch.randn(B, 2 * T + 2, D, generator=gen),
        z_mismatched=torch.randn(B, 2 * T + 2, D, generator=gen))
    raw = {k: v.requires_grad_(requires_grad) for k, v in raw.items()}
    raw['mask'] = MaskGenerator(ratio=0.4)(B, T, gen)
    return raw


def reference_mep(head, x_v, x_a, y_v, y_a, z, mask, neg, pools=None):
    """The MEP terms from raw tensors (the layout spelled out here)."""
    targets = {'v': x_v, 'a': x_a}
    pools = pools or targets
    dim = x_v.shape[-1]
    half = z.shape[1] // 2
    predictions = {
        'v': y_v[:, 1:],
        'a': y_a[:, 1:],
        'av': torch.cat([z[:, 1:half], z[:, half + 1:]], dim=1)
    }
    out = {}
    for s in head.streams:
        if s == 'av':
            pos = torch.cat([x_v, x_a], dim=1)
            pool_v = pools['v'].reshape(-1, dim)
            pool = torch.cat([pool_v, pools['a'].reshape(-1, dim)])
            stream_mask = torch.cat([mask, mask], dim=1)
            neg_v, neg_a = neg['v'], neg['a'] + pool_v.shape[0]
            if head.av_negatives == 'within_modality':
                negatives = torch.cat([neg_v, neg_a], dim=1)
            else:
                negatives = torch.cat([torch.cat([neg_v, neg_a], dim=2),
                                       torch.cat([neg_a, neg_v], dim=2)],
                                      dim=1)
        else:
            pos, pool = targets[s], pools[s].reshape(-1, dim)
            stream_mask, negatives = mask, neg[s]
        if head.detach_targets:
            pos, pool = pos.detach(), pool.detach()
        sel = stream_mask.reshape(-1).nonzero(as_tuple=True)[0]
        pred = predictions[s]
        queries = head.predictors[s](pred.reshape(-1, pred.shape[-1])[sel])
        proj = head.target_projs[s]
        loss, correct = info_nce(
            queries, proj(pos.reshape(-1, dim)[sel]), proj(pool),
            negatives.reshape(-1, negatives.shape[-1])[sel])
        out[f'loss_mep_{s}'] = loss * head.loss_weight
        out[f'acc_mep_{s}'] = correct.float().mean()
    return out


def reference_cpp(head, y_v, y_a, z, z_neg, perm, positions):
    """The CPP terms from raw tensors (z split at T + 1 here)."""
    half = z.shape[1] // 2
    idx = torch.cat([positions.new_zeros(positions.shape[0], 1), positions],
                    dim=1)
    idx = idx.unsqueeze(-1).expand(-1, -1, y_v.shape[-1])

    def pairs(vis, aud):
        return torch.cat([vis.gather(1, idx), aud.gather(1, idx)], dim=-1)

    sides = {
        'uni': ((y_v, y_a), (y_v, y_a[perm])),
        'multi': ((z[:, :half], z[:, half:]),
                  (z_neg[:, :half], z_neg[:, half:])),
    }
    out = {}
    for name in head.classifiers:
        matched, mismatched = (pairs(*s) for s in sides[name])
        logits = head.heads[name](torch.stack([matched, mismatched]))
        logits = logits.squeeze(-1).float()
        labels = torch.zeros_like(logits)
        labels[0] = 1.0
        per_pair = F.binary_cross_entropy_with_logits(logits, labels,
                                                      reduction='none')
        loss = per_pair[:, :, 0].mean()
        if per_pair.shape[-1] > 1:
            loss = loss + per_pair[:, :, 1:].mean()
        out[f'loss_cpp_{name}'] = loss * head.loss_weight
        out[f'acc_cpp_{name}'] = ((logits > 0).float() == labels).float(
        ).mean()
    return out


def _assert_same(got, ref):
    assert set(got) == set(ref)
    for key in ref:
        assert torch.equal(got[key], ref[key]), (key, got[key], ref[key])


def _grads(losses, tensors):
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    return torch.autograd.grad(total, tensors, allow_unused=True)


@pytest.mark.parametrize('detach_targets', [True, False])
@pytest.mark.parametrize('av_negatives', ['within_modality', 'both'])
def test_mep_head_matches_raw_reference(detach_targets, av_negatives):
    torch.manual_seed(0)
    head = MEPHead(in_channels=D, proj_channels=6,
                   detach_targets=detach_targets, av_negatives=av_negatives)
    raw = _raw()
    sampler = CANSSampler(num_negatives=5)
    neg, pools = {}, {}
    for m in ('v', 'a'):
        neg[m], pools[m] = sampler(raw[f'x_{m}'], _gen(1))
    outputs = AVOutputs(**raw)
    got = head.loss(outputs, neg, pools)
    ref = reference_mep(head, raw['x_v'], raw['x_a'], raw['y_v'],
                        raw['y_a'], raw['z'], raw['mask'], neg)
    _assert_same(got, ref)
    # The default pool (x itself) is the sampler's local pool.
    _assert_same(head.loss(outputs, neg), ref)
    inputs = [raw[k] for k in ('x_v', 'x_a', 'y_v', 'y_a', 'z')]
    for g, r in zip(_grads(got, inputs), _grads(ref, inputs)):
        if r is None:
            assert g is None
        else:
            assert torch.equal(g, r)
    if detach_targets:
        assert _grads(got, [raw['x_v']])[0] is None


@pytest.mark.parametrize('classifiers', [('uni', 'multi'), ('uni', ),
                                         ('multi', )])
def test_cpp_head_matches_raw_reference(classifiers):
    torch.manual_seed(0)
    head = CPPHead(in_channels=D, hidden_channels=16,
                   classifiers=classifiers)
    raw = _raw()
    perm = make_derangement(B, _gen(2))
    got = head.loss(AVOutputs(**raw), perm, generator=_gen(3))
    positions = sample_positions(B, T, head.num_positions, _gen(3))
    ref = reference_cpp(head, raw['y_v'], raw['y_a'], raw['z'],
                        raw['z_mismatched'], perm, positions)
    _assert_same(got, ref)
    inputs = [raw[k] for k in ('y_v', 'y_a', 'z', 'z_mismatched')]
    for g, r in zip(_grads(got, inputs), _grads(ref, inputs)):
        assert (g is None) == (r is None)
        if r is not None:
            assert torch.equal(g, r)


def test_cpp_head_needs_perm_from_the_caller():
    head = CPPHead(in_channels=D, classifiers=('uni', ))
    with pytest.raises(ValueError, match='perm is required.*derangement'):
        head.loss(AVOutputs(**_raw(requires_grad=False)), None)


def test_avoutputs_layout_helpers():
    raw = _raw(requires_grad=False)
    out = AVOutputs(**raw)
    z, half = raw['z'], T + 1
    assert torch.equal(out.z_v, z[:, :half])
    assert torch.equal(out.z_a, z[:, half:])
    assert torch.equal(out.z_clips,
                       torch.cat([z[:, 1:half], z[:, half + 1:]], dim=1))
    assert torch.equal(out.y_v_clips, raw['y_v'][:, 1:])
    assert torch.equal(out.y_a_clips, raw['y_a'][:, 1:])
    mismatched = out.mismatched
    assert torch.equal(mismatched.z_v, raw['z_mismatched'][:, :half])
    assert torch.equal(mismatched.z_a, raw['z_mismatched'][:, half:])
    assert mismatched.y_v is None and mismatched.num_clips == T
    empty = AVOutputs(x_v=raw['x_v'])
    assert empty.mismatched is None and empty.z_clips is None
    assert empty.y_v_clips is None and empty.y_a_clips is None
    visual_only = AVOutputs(z=z[:, :half], z_modalities=('visual', ))
    assert torch.equal(visual_only.z_clips, z[:, 1:half])
    with pytest.raises(ValueError, match='2T \\+ 2'):
        AVOutputs(z=z[:, 1:]).z_v


# ------------------------------------------------------------ whole step
@pytest.fixture(scope='module')
def tiny_model(narrow_avbert_cfg):
    model = narrow_avbert_cfg(num_negatives=6)
    model.mep_head.detach_targets = False
    torch.manual_seed(0)
    return MODELS.build(model).train()


def _clips(seed=0, batch=4, length=4):
    g = _gen(seed)
    return (torch.randn(batch, length, 3, 8, 16, 16, generator=g),
            torch.randn(batch, length, 1, 32, 51, generator=g))


def test_training_step_matches_the_documented_draw_order(tiny_model):
    model = tiny_model
    video, audio = _clips()
    params = [p for p in model.parameters() if p.requires_grad]

    torch.manual_seed(5)
    losses = model.loss(dict(video=video, audio=audio))
    grads = _grads(losses, params)

    # The same step, by hand: encode, mask, perm, neck (dropout), visual
    # then audio negatives, CPP positions; the heads recomputed from raw
    # tensors.
    torch.manual_seed(5)
    x_v, x_a = model.encode(video, audio)
    batch, length = x_v.shape[:2]
    mask = model.mask_generator(batch, length)
    perm = make_derangement(batch)
    out = model.contextualise(x_v, x_a, mask, perm)
    neg = {m: model.sampler(x).indices for m, x in (('v', x_v), ('a', x_a))}
    ref = reference_mep(model.mep_head, x_v, x_a, out.y_v, out.y_a, out.z,
                        mask, neg)
    positions = sample_positions(batch, length,
                                 model.cpp_head.num_positions)
    ref.update(reference_cpp(model.cpp_head, out.y_v, out.y_a, out.z,
                             out.z_mismatched, perm, positions))
    _assert_same(losses, ref)
    for g, r, p in zip(grads, _grads(ref, params), params):
        assert torch.equal(g, r), p.shape


def test_head_losses_needs_perm_with_cpp(tiny_model):
    video, audio = _clips()
    torch.manual_seed(0)
    out, perm = tiny_model.forward_pretrain(video, audio)
    assert perm is not None
    with pytest.raises(ValueError, match='perm is required'):
        tiny_model.head_losses(out, None)
