"""CPP head: derangements, pair construction, loss and accuracy."""
import math

import pytest
import torch
from torch import nn

from avtoolkit.models.heads import CPPHead
from avtoolkit.models.structures import AVOutputs
from avtoolkit.models.utils import make_derangement, sample_positions
from avtoolkit.registry import MODELS


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


class _Recorder(nn.Module):
    """Stands in for a classifier: records its input, returns fixed logits.

    ``logit_fn`` maps the input ``[2, B, 1 + P, 2D]`` to logits
    ``[2, B, 1 + P, 1]``.
    """

    def __init__(self, logit_fn=None):
        super().__init__()
        self.logit_fn = logit_fn
        self.seen = None

    def forward(self, pairs):
        self.seen = pairs.detach().clone()
        if self.logit_fn is None:
            return pairs.sum(-1, keepdim=True) * 0.0
        return self.logit_fn(pairs)


def _outputs(batch=4, seq_len=6, dim=8, seed=0):
    gen = _gen(seed)
    y_v = torch.randn(batch, seq_len + 1, dim, generator=gen)
    y_a = torch.randn(batch, seq_len + 1, dim, generator=gen)
    z = torch.randn(batch, 2 * seq_len + 2, dim, generator=gen)
    z_neg = torch.randn(batch, 2 * seq_len + 2, dim, generator=gen)
    return y_v, y_a, z, z_neg


def _av(y_v=None, y_a=None, z=None, z_neg=None):
    return AVOutputs(y_v=y_v, y_a=y_a, z=z, z_mismatched=z_neg)


@pytest.mark.parametrize('n', list(range(2, 41)) + [97, 256])
def test_derangement_has_no_fixed_point(n):
    gen = _gen(n)
    for _ in range(25):
        perm = make_derangement(n, gen)
        assert perm.dtype == torch.long and perm.shape == (n, )
        assert torch.equal(perm.sort().values, torch.arange(n))
        assert not (perm == torch.arange(n)).any()


def test_derangement_small_cases_and_randomness():
    assert make_derangement(2, _gen()).tolist() == [1, 0]
    seen = {tuple(make_derangement(5, _gen(s)).tolist()) for s in range(60)}
    assert len(seen) > 10
    assert torch.equal(make_derangement(9, _gen(3)),
                       make_derangement(9, _gen(3)))
    for n in (0, 1):
        with pytest.raises(ValueError):
            make_derangement(n)


def test_sample_positions_range_and_distinct():
    pos = sample_positions(500, 30, 2, _gen(1))
    assert pos.shape == (500, 2) and pos.dtype == torch.long
    assert int(pos.min()) >= 1 and int(pos.max()) <= 30
    assert (pos[:, 0] != pos[:, 1]).all()
    assert set(pos.flatten().tolist()) == set(range(1, 31))
    assert sample_positions(3, 4, 0).shape == (3, 0)
    with pytest.raises(ValueError):
        sample_positions(3, 4, 5)


def test_registry_and_defaults():
    head = MODELS.build(dict(type='CPPHead'))
    assert isinstance(head, CPPHead)
    assert head.num_positions == 2
    assert isinstance(head.heads['uni'], nn.Sequential)
    assert head.heads['multi'][0].in_features == 2 * 768
    linear = CPPHead(in_channels=8, hidden_channels=None)
    assert isinstance(linear.heads['uni'], nn.Linear)
    with pytest.raises(ValueError):
        CPPHead(classifiers=('uni', 'late'))


def test_zero_logits_give_log2_terms():
    y_v, y_a, z, z_neg = _outputs()
    perm = make_derangement(4, _gen())
    head = CPPHead(in_channels=8)
    head.heads['uni'] = _Recorder()
    head.heads['multi'] = _Recorder()
    out = head.loss(_av(y_v, y_a, z, z_neg), perm, generator=_gen())
    # Summary term + position term, each log 2.
    for name in ('uni', 'multi'):
        assert out[f'loss_cpp_{name}'].item() == pytest.approx(2 * math.log(2))
        # Logit 0 reads "different videos": negatives right, positives wrong.
        assert out[f'acc_cpp_{name}'].item() == pytest.approx(0.5)
    head.num_positions = 0
    out = head.loss(_av(y_v, y_a, z, z_neg), perm, generator=_gen())
    assert out['loss_cpp_uni'].item() == pytest.approx(math.log(2))


def test_pairs_are_built_from_the_right_embeddings():
    batch, seq_len, dim = 4, 6, 8
    y_v, y_a, z, z_neg = _outputs(batch, seq_len, dim)
    perm = torch.tensor([2, 0, 3, 1])
    positions = torch.tensor([[1, 6], [2, 3], [6, 5], [4, 1]])
    head = CPPHead(in_channels=dim)
    head.heads['uni'] = _Recorder()
    head.heads['multi'] = _Recorder()
    head.loss(_av(y_v, y_a, z, z_neg), perm, positions)
    uni, multi = head.heads['uni'].seen, head.heads['multi'].seen
    assert uni.shape == multi.shape == (2, batch, 3, 2 * dim)
    half = seq_len + 1
    for b in range(batch):
        for j, t in enumerate([0] + positions[b].tolist()):
            assert torch.equal(uni[0, b, j], torch.cat([y_v[b, t], y_a[b, t]]))
            assert torch.equal(uni[1, b, j],
                               torch.cat([y_v[b, t], y_a[perm[b], t]]))
            assert torch.equal(multi[0, b, j],
                               torch.cat([z[b, t], z[b, half + t]]))
            assert torch.equal(multi[1, b, j],
                               torch.cat([z_neg[b, t], z_neg[b, half + t]]))


def test_accuracy_and_loss_hand_made():
    """A classifier that multiplies one visual and one audio channel."""
    batch, seq_len, dim = 4, 3, 2
    y_v = torch.zeros(batch, seq_len + 1, dim)
    y_a = torch.zeros(batch, seq_len + 1, dim)
    y_v[..., 0] = torch.tensor([1.0, 1.0, -1.0, 2.0]).view(batch, 1)
    y_a[..., 0] = torch.tensor([1.0, -1.0, -1.0, 1.0]).view(batch, 1)
    perm = torch.tensor([1, 2, 3, 0])
    head = CPPHead(in_channels=dim, classifiers=('uni', ))
    head.heads['uni'] = _Recorder(
        lambda s: (s[..., 0] * s[..., dim]).unsqueeze(-1))
    out = head.loss(_av(y_v, y_a), perm=perm, generator=_gen())
    # Matched logits v_b * a_b: 1, -1, 1, 2 -> right, wrong, right, right.
    # Mismatched v_b * a_perm[b]: -1, -1, -1, 2 -> right, right, right, wrong.
    assert out['acc_cpp_uni'].item() == pytest.approx(6 / 8)
    matched = torch.tensor([1.0, -1.0, 1.0, 2.0])
    mismatched = torch.tensor([-1.0, -1.0, -1.0, 2.0])
    bce = torch.cat([nn.functional.softplus(-matched),
                     nn.functional.softplus(mismatched)]).mean()
    # Every position carries the same values: both terms are equal.
    assert out['loss_cpp_uni'].item() == pytest.approx(2 * bce.item(),
                                                       rel=1e-6)


def test_gradients_reach_every_input():
    y_v, y_a, z, z_neg = [t.requires_grad_() for t in _outputs()]
    head = CPPHead(in_channels=8, hidden_channels=16)
    out = head.loss(_av(y_v, y_a, z, z_neg), make_derangement(4, _gen()),
                    generator=_gen())
    (out['loss_cpp_uni'] + out['loss_cpp_multi']).backward()
    for t in (y_v, y_a, z, z_neg):
        assert t.grad is not None and t.grad.abs().sum() > 0
    for p in head.parameters():
        assert p.grad is not None


def test_contract_errors_and_dtype():
    y_v, y_a, z, z_neg = _outputs()
    head = CPPHead(in_channels=8)
    with pytest.raises(ValueError, match='perm is required'):
        head.loss(_av(y_v, y_a, z, z_neg), None)
    with pytest.raises(ValueError, match='z and z_mismatched'):
        head.loss(_av(y_v, y_a, z), perm=make_derangement(4))
    with pytest.raises(ValueError, match='2T \\+ 2'):
        head.loss(_av(y_v, y_a, z[:, 1:], z_neg[:, 1:]), make_derangement(4))
    with pytest.raises(ValueError, match='2T \\+ 2'):
        head.loss(_av(y_v, y_a, z[:, 2:], z_neg[:, 2:]), make_derangement(4))
    with pytest.raises(ValueError, match='positions'):
        head.loss(_av(y_v, y_a, z, z_neg), make_derangement(4),
                  positions=torch.ones(4, 3, dtype=torch.long))
    multi_only = CPPHead(in_channels=8, classifiers=('multi', ))
    out = multi_only.loss(_av(z=z, z_neg=z_neg), perm=make_derangement(4))
    assert set(out) == {'loss_cpp_multi', 'acc_cpp_multi'}
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = head.loss(_av(y_v, y_a, z, z_neg), make_derangement(4))
    assert all(v.dtype == torch.float32 for v in out.values())


def _correspondence_batch(gen, batch=32, seq_len=4, dim=8):
    """Audio = visual + noise in matched videos (the two sides interact)."""
    y_v = torch.randn(batch, seq_len + 1, dim, generator=gen)
    y_a = y_v + 0.3 * torch.randn(batch, seq_len + 1, dim, generator=gen)
    return y_v, y_a


def test_hidden_layer_learns_correspondence_a_linear_one_cannot():
    """The reason for the default hidden layer (see CPPHead's docstring)."""
    torch.manual_seed(0)
    accuracy = {}
    for hidden in (32, None):
        head = CPPHead(in_channels=8, hidden_channels=hidden,
                       classifiers=('uni', ))
        optim = torch.optim.Adam(head.parameters(), lr=1e-2)
        gen = _gen(8)
        for _ in range(80):
            y_v, y_a = _correspondence_batch(gen)
            perm = make_derangement(y_v.shape[0], gen)
            loss = head.loss(_av(y_v, y_a), perm,
                             generator=gen)['loss_cpp_uni']
            optim.zero_grad()
            loss.backward()
            optim.step()
        with torch.no_grad():
            y_v, y_a = _correspondence_batch(_gen(99), batch=512)
            gen = _gen(100)
            perm = make_derangement(512, gen)
            accuracy[hidden] = head.loss(
                _av(y_v, y_a), perm, generator=gen)['acc_cpp_uni'].item()
    assert accuracy[32] > 0.85
    assert accuracy[None] < 0.6
