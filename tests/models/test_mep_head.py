"""MEP head (InfoNCE) and the mask generator."""
import math

import pytest
import torch

from avtoolkit.models.heads import MEPHead
from avtoolkit.models.losses import InfoNCELoss, info_nce
from avtoolkit.models.structures import AVOutputs
from avtoolkit.models.utils import MaskGenerator, generate_mask
from avtoolkit.models.samplers import CurrentMiniBatchSampler
from avtoolkit.registry import MODELS, TASK_UTILS


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _batch(batch=3, seq_len=10, dim=16, k=6, seed=0, scale=1.0):
    """Targets, predictions, mask and per-modality negatives."""
    gen = _gen(seed)
    x_v = torch.randn(batch, seq_len, dim, generator=gen) * scale
    x_a = torch.randn(batch, seq_len, dim, generator=gen) * scale
    preds = {
        'v': torch.randn(batch, seq_len, dim, generator=gen) * scale,
        'a': torch.randn(batch, seq_len, dim, generator=gen) * scale,
        'av': torch.randn(batch, 2 * seq_len, dim, generator=gen) * scale,
    }
    mask = MaskGenerator(ratio=0.3)(batch, seq_len, gen)
    sampler = CurrentMiniBatchSampler(num_negatives=k)
    neg = {'v': sampler(x_v, gen).indices, 'a': sampler(x_a, gen).indices}
    return {'v': x_v, 'a': x_a}, preds, mask, neg


def _outputs(targets, preds, mask):
    """AVOutputs holding ``targets`` as x, ``preds`` as the clip outputs.

    The BOS outputs are zeros; ``preds['av']`` (B, 2T, D) fills the clip
    rows of both halves of z, visual half first.
    """

    def with_bos(x):
        return torch.cat([x.new_zeros(x.shape[0], 1, x.shape[2]), x], dim=1)

    out = AVOutputs(x_v=targets.get('v'), x_a=targets.get('a'), mask=mask)
    if 'v' in preds:
        out.y_v = with_bos(preds['v'])
    if 'a' in preds:
        out.y_a = with_bos(preds['a'])
    if 'av' in preds:
        half = preds['av'].shape[1] // 2
        out.z = torch.cat([with_bos(preds['av'][:, :half]),
                           with_bos(preds['av'][:, half:])], dim=1)
    return out


def _perfect_head(dim, scale):
    """FFN(o) = scale * o exactly (GELU(u) - GELU(-u) = u) and W_I = I."""
    head = MEPHead(in_channels=dim, proj_channels=dim,
                   hidden_channels=2 * dim)
    eye = torch.eye(dim)
    with torch.no_grad():
        for s in head.streams:
            pred = head.predictors[s]
            pred.fc1.weight.copy_(torch.cat([eye, -eye], dim=0))
            pred.fc1.bias.zero_()
            pred.fc2.weight.copy_(scale * torch.cat([eye, -eye], dim=1))
            pred.fc2.bias.zero_()
            head.target_projs[s].weight.copy_(eye)
    return head


def test_registry_and_defaults():
    head = MODELS.build(dict(type='MEPHead'))
    assert isinstance(head, MEPHead)
    assert head.streams == ('v', 'a', 'av')
    assert head.proj_channels == 256 and head.hidden_channels == 768
    assert head.target_projs['v'].weight.shape == (256, 768)
    assert head.detach_targets
    with pytest.raises(ValueError):
        MEPHead(streams=('v', 'x'))
    with pytest.raises(ValueError):
        MEPHead(av_negatives='cross')


def test_random_embeddings_give_chance_loss():
    """Logits near 0 make every candidate equally likely: log(K + 1)."""
    k = 6
    targets, preds, mask, neg = _batch(k=k, scale=1e-3)
    out = MEPHead(in_channels=16).loss(_outputs(targets, preds, mask), neg)
    for s in ('v', 'a', 'av'):
        assert out[f'loss_mep_{s}'].item() == pytest.approx(
            math.log(k + 1), abs=1e-3)
    both = MEPHead(in_channels=16, av_negatives='both').loss(
        _outputs(targets, preds, mask), neg)
    assert both['loss_mep_av'].item() == pytest.approx(
        math.log(2 * k + 1), abs=1e-3)


def test_perfect_predictor_gives_zero_loss():
    dim, k = 32, 8
    gen = _gen(1)
    x_v = torch.nn.functional.normalize(torch.randn(4, 12, dim,
                                                    generator=gen), dim=-1)
    x_a = torch.nn.functional.normalize(torch.randn(4, 12, dim,
                                                    generator=gen), dim=-1)
    sampler = CurrentMiniBatchSampler(num_negatives=k)
    neg = {'v': sampler(x_v, gen).indices, 'a': sampler(x_a, gen).indices}
    preds = {'v': x_v, 'a': x_a, 'av': torch.cat([x_v, x_a], dim=1)}
    mask = MaskGenerator(ratio=0.5)(4, 12, gen)
    for av_negatives in ('within_modality', 'both'):
        head = _perfect_head(dim, scale=100.0)
        head.av_negatives = av_negatives
        out = head.loss(_outputs({'v': x_v, 'a': x_a}, preds, mask), neg)
        for s in ('v', 'a', 'av'):
            assert out[f'loss_mep_{s}'].item() < 1e-4
            assert out[f'acc_mep_{s}'].item() == 1.0
    # The same head with swapped audio predictions fails on the audio terms.
    swapped = dict(preds, a=x_a.roll(1, dims=1))
    out = _perfect_head(dim, 100.0).loss(
        _outputs({'v': x_v, 'a': x_a}, swapped, mask), neg)
    assert out['loss_mep_a'].item() > 1.0
    assert out['acc_mep_a'].item() < 0.5


def test_loss_uses_masked_positions_only():
    targets, preds, mask, neg = _batch()
    head = MEPHead(in_channels=16)
    preds = {s: p.clone().requires_grad_() for s, p in preds.items()}
    out = head.loss(_outputs(targets, preds, mask), neg)
    sum(v for k, v in out.items() if k.startswith('loss')).backward()
    for s, m in (('v', mask), ('a', mask), ('av', torch.cat([mask, mask],
                                                              dim=1))):
        grad_norm = preds[s].grad.norm(dim=-1)
        assert (grad_norm[~m] == 0).all()
        assert (grad_norm[m] > 0).all()
    # Changing the predictions at unmasked positions leaves the loss as is.
    changed = {s: p.detach().clone() for s, p in preds.items()}
    changed['v'][~mask] = 123.0
    again = head.loss(_outputs(targets, changed, mask), neg)
    assert again['loss_mep_v'].item() == pytest.approx(
        out['loss_mep_v'].item(), rel=1e-6)


@pytest.mark.parametrize('detach', [True, False])
def test_gradient_reaches_targets_only_when_not_detached(detach):
    targets, preds, mask, neg = _batch()
    targets = {m: x.clone().requires_grad_() for m, x in targets.items()}
    preds = {s: p.clone().requires_grad_() for s, p in preds.items()}
    head = MEPHead(in_channels=16, detach_targets=detach)
    out = head.loss(_outputs(targets, preds, mask), neg)
    sum(v for k, v in out.items() if k.startswith('loss')).backward()
    for p in preds.values():
        assert p.grad is not None and p.grad.abs().sum() > 0
    for s in head.streams:
        assert head.target_projs[s].weight.grad.abs().sum() > 0
        assert head.predictors[s].fc1.weight.grad.abs().sum() > 0
    for x in targets.values():
        if detach:
            assert x.grad is None
        else:
            assert x.grad is not None and x.grad.abs().sum() > 0


def test_info_nce_hand_made():
    queries = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    positives = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    pool = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [1.0, -1.0]])
    negatives = torch.tensor([[1, 3], [0, 3], [0, 3]])
    loss, correct = info_nce(queries, positives, pool, negatives)
    # Logits: row 0: pos 3, negs (0, 1) -> right; row 1: pos 2, negs
    # (0, -2) -> right; row 2: pos 1, negs (1, 0) -> a tie, counted wrong.
    assert correct.tolist() == [True, True, False]
    logits = torch.tensor([[3.0, 0.0, 1.0], [2.0, 0.0, -2.0],
                           [1.0, 1.0, 0.0]])
    expected = (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_info_nce_paths_agree():
    """Gathering negatives and scoring the whole pool give the same logits."""
    gen = _gen(2)
    queries = torch.randn(5, 4, generator=gen)
    positives = torch.randn(5, 4, generator=gen)
    pool = torch.randn(10, 4, generator=gen)
    for k in (2, 3):  # 5*2*4 <= 5*10 gathers; 5*3*4 > 5*10 scores the pool
        negatives = torch.randint(0, 10, (5, k), generator=gen)
        loss, correct = info_nce(queries, positives, pool, negatives)
        pos = (queries * positives).sum(1, keepdim=True)
        neg = torch.stack([pool[negatives[i]] @ queries[i]
                           for i in range(5)])
        logits = torch.cat([pos, neg], dim=1)
        ref = (torch.logsumexp(logits, 1) - logits[:, 0]).mean()
        assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
        assert torch.equal(correct, (pos > neg).all(1))


def test_accuracy_on_hand_made_head_case():
    """Perfect head; one position made wrong by a closer negative."""
    dim = 4
    head = _perfect_head(dim, scale=1.0)
    x = torch.eye(dim).view(1, 4, dim)  # clip t is basis vector t
    mask = torch.tensor([[True, True, True, False]])
    neg = torch.tensor([[[1], [2], [3], [0]]])  # one negative each
    preds = x.clone()
    preds[0, 1] = torch.tensor([0.0, 0.2, 0.9, 0.0])  # prefers clip 2
    head.streams = ('v', )
    out = head.loss(_outputs({'v': x}, {'v': preds}, mask), {'v': neg})
    assert out['acc_mep_v'].item() == pytest.approx(2 / 3)
    logits = torch.tensor([[1.0, 0.0], [0.2, 0.9], [1.0, 0.0]])
    ref = (torch.logsumexp(logits, 1) - logits[:, 0]).mean()
    assert out['loss_mep_v'].item() == pytest.approx(ref.item(), rel=1e-5)


def test_joint_pool_layout():
    head = MEPHead(in_channels=8)
    neg_v = torch.tensor([[[1, 2], [0, 2], [0, 1]]])
    neg_a = torch.tensor([[[2, 1], [2, 0], [1, 0]]])
    joint = head._joint_negatives({'v': neg_v, 'a': neg_a}, n_visual=3)
    assert torch.equal(joint, torch.cat([neg_v, neg_a + 3], dim=1))
    head.av_negatives = 'both'
    joint = head._joint_negatives({'v': neg_v, 'a': neg_a}, n_visual=3)
    assert joint.shape == (1, 6, 4)
    assert joint[0, 0].tolist() == [1, 2, 5, 4]
    assert joint[0, 3].tolist() == [5, 4, 1, 2]
    head.av_negatives = 'within_modality'
    with pytest.raises(ValueError, match='as many'):
        head._joint_negatives({'v': neg_v, 'a': neg_a[..., :1]}, 3)


def test_explicit_joint_negatives_override():
    targets, preds, mask, neg = _batch()
    head = MEPHead(in_channels=16)
    outputs = _outputs(targets, preds, mask)
    derived = head.loss(outputs, neg)
    n_v = targets['v'].shape[0] * targets['v'].shape[1]
    explicit = dict(neg, av=torch.cat([neg['v'], neg['a'] + n_v], dim=1))
    again = head.loss(outputs, explicit)
    assert again['loss_mep_av'].item() == pytest.approx(
        derived['loss_mep_av'].item(), rel=1e-6)
    flipped = dict(neg, av=torch.cat([neg['v'] + n_v, neg['a']], dim=1))
    other = head.loss(outputs, flipped)
    assert other['loss_mep_av'].item() != pytest.approx(
        derived['loss_mep_av'].item(), rel=1e-3)


def test_gathered_pool_matches_local_pool():
    """A pool with other ranks' rows in front and shifted indices."""
    targets, preds, mask, neg = _batch(batch=2, seq_len=5)
    head = MEPHead(in_channels=16)
    outputs = _outputs(targets, preds, mask)
    local = head.loss(outputs, neg)
    extra = 3 * 5  # three sequences of another rank before ours
    gen = _gen(3)
    pools = {m: torch.cat([torch.randn(3, 5, 16, generator=gen), x])
             for m, x in targets.items()}
    shifted = {m: i + extra for m, i in neg.items()}
    gathered = head.loss(outputs, shifted, pools=pools)
    for key in local:
        assert gathered[key].item() == pytest.approx(local[key].item(),
                                                     rel=1e-5)


def test_streams_subset_and_shape_checks():
    targets, preds, mask, neg = _batch()
    head = MEPHead(in_channels=16, streams=('v', 'a'))
    out = head.loss(_outputs(targets, {'v': preds['v'], 'a': preds['a']},
                             mask), neg)
    assert set(out) == {'loss_mep_v', 'loss_mep_a', 'acc_mep_v',
                        'acc_mep_a'}
    with pytest.raises(ValueError, match='must all start with'):
        head.loss(_outputs(targets, dict(preds, v=preds['v'][:, 1:]), mask),
                  neg)
    with pytest.raises(ValueError, match='BoolTensor'):
        head.loss(_outputs(targets, preds, mask.long()), neg)
    with pytest.raises(KeyError):
        head.loss(_outputs(targets, {'v': preds['v']}, mask), neg)


def test_no_masked_position_gives_connected_zero():
    targets, preds, mask, neg = _batch()
    head = MEPHead(in_channels=16)
    preds = {s: p.clone().requires_grad_() for s, p in preds.items()}
    out = head.loss(_outputs(targets, preds, torch.zeros_like(mask)), neg)
    total = sum(v for k, v in out.items() if k.startswith('loss'))
    assert total.item() == 0.0
    total.backward()
    for param in head.parameters():
        assert param.grad is not None and (param.grad == 0).all()
    assert out['acc_mep_v'].item() == 0.0


def test_loss_is_float32_under_autocast():
    targets, preds, mask, neg = _batch()
    head = MEPHead(in_channels=16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = head.loss(_outputs(targets, preds, mask), neg)
    for key, value in out.items():
        assert value.dtype == torch.float32, key


def test_z_clips_drop_the_bos_outputs():
    """The predictions of the joint stream: AVOutputs.z_clips."""
    seq_len = 3
    z = torch.arange(2 * seq_len + 2).float().view(1, -1, 1)
    assert AVOutputs(z=z).z_clips.flatten().tolist() == [1, 2, 3, 5, 6, 7]
    with pytest.raises(ValueError):
        AVOutputs(z=torch.zeros(1, 7, 1)).z_clips


def test_loss_is_built_from_config_and_adds_no_state():
    head = MODELS.build(dict(type='MEPHead', in_channels=8,
                             loss=dict(type='InfoNCELoss')))
    assert isinstance(head.loss_module, InfoNCELoss)
    assert isinstance(MEPHead(in_channels=8).loss_module, InfoNCELoss)
    assert all(k.startswith(('predictors.', 'target_projs.'))
               for k in head.state_dict())
    calls = []

    class Recording(InfoNCELoss):
        def forward(self, *args):
            calls.append([a.shape for a in args])
            return super().forward(*args)

    head.loss_module = Recording()
    targets, preds, mask, neg = _batch(dim=8)
    head.loss(_outputs(targets, preds, mask), neg)
    assert len(calls) == 3  # one per stream
    m = int(mask.sum())
    assert calls[0][0] == (m, head.proj_channels)
    assert calls[2][3] == (2 * m, neg['v'].shape[-1])


# -- mask generator --------------------------------------------------------


def test_fixed_mask_counts_and_spread():
    gen = _gen(4)
    masker = TASK_UTILS.build(dict(type='MaskGenerator'))
    assert masker.ratio == 0.15 and masker.mode == 'fixed'
    assert masker.num_masked(30) == 5  # 4.5 rounded half up
    mask = masker(4000, 30, gen)
    assert mask.dtype == torch.bool and mask.shape == (4000, 30)
    assert (mask.sum(1) == 5).all()
    # Every position is chosen with about the same frequency 5 / 30.
    freq = mask.float().mean(0)
    assert (freq - 5 / 30).abs().max() < 0.03
    assert (MaskGenerator(ratio=0.01)(50, 30, gen).sum(1) == 1).all()


def test_bernoulli_mask_mean_and_minimum():
    gen = _gen(5)
    masker = MaskGenerator(mode='bernoulli')
    mask = masker(4000, 30, gen)
    counts = mask.sum(1)
    assert int(counts.min()) >= 1
    expected = masker.expected_masked(30)
    assert expected == pytest.approx(4.5 + 0.85**30, abs=1e-9)
    assert counts.float().mean().item() == pytest.approx(expected, abs=0.15)
    sparse = MaskGenerator(ratio=0.0, mode='bernoulli', min_masked=2)
    assert (sparse(100, 7, gen).sum(1) == 2).all()
    assert sparse.expected_masked(7) == 2.0


def test_mask_determinism_and_errors():
    a = generate_mask(6, 30, generator=_gen(6))
    b = generate_mask(6, 30, generator=_gen(6))
    c = generate_mask(6, 30, generator=_gen(7))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError):
        MaskGenerator(min_masked=4)(2, 3)
    with pytest.raises(ValueError):
        MaskGenerator(ratio=1.5)
    with pytest.raises(ValueError):
        MaskGenerator(mode='span')
