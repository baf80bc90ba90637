"""Negative samplers: contract, CANS statistics, baselines, global pool."""
import os
import subprocess
import sys
import textwrap
from statistics import NormalDist

import numpy as np
import pytest
import torch

from avtoolkit.models.samplers import (CANSSampler, CurrentMiniBatchSampler,
                                       CurrentSequenceSampler)
from avtoolkit.models.utils import gather_sequences
from avtoolkit.registry import NEGATIVE_SAMPLERS


def _features(batch, seq_len, dim=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, seq_len, dim, generator=gen)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _oracle(features, interval=0.95, method='gaussian'):
    """Independent numpy version of CANS steps 1-3.

    Returns (normalised distances with nan on the diagonal, inside mask,
    gap to the interval), each (N, N).
    """
    x = features.reshape(-1, features.shape[-1]).double().numpy()
    n = x.shape[0]
    z = NormalDist().inv_cdf((1 + interval) / 2) if interval < 1 else 0.0
    dist = np.sqrt(((x[:, None, :] - x[None, :, :])**2).sum(-1))
    norm = np.full((n, n), np.nan)
    lo = np.empty(n)
    hi = np.empty(n)
    for i in range(n):
        others = np.delete(np.arange(n), i)
        d = dist[i, others]
        d = (d - d.min()) / max(d.max() - d.min(), 1e-12)
        norm[i, others] = d
        if interval >= 1:
            lo[i], hi[i] = -np.inf, np.inf
        elif method == 'gaussian':
            lo[i] = d.mean() - z * d.std()
            hi[i] = d.mean() + z * d.std()
        else:
            lo[i], hi[i] = np.quantile(d, [(1 - interval) / 2,
                                           (1 + interval) / 2])
    with np.errstate(invalid='ignore'):
        gap = np.maximum(lo[:, None] - norm, norm - hi[:, None]).clip(0)
        inside = gap == 0
    return norm, inside, gap


ALL_CONFIGS = [
    dict(type='CANSSampler', mode='similar', num_negatives=7),
    dict(type='CANSSampler', mode='dissimilar', num_negatives=7,
         interval_method='percentile'),
    dict(type='CANSSampler', num_negatives=7, chunk_size=512),
    dict(type='CurrentSequenceSampler'),
    dict(type='CurrentSequenceSampler', num_negatives=1),
    dict(type='CurrentMiniBatchSampler', num_negatives=7),
    dict(type='CurrentMiniBatchSampler', num_negatives=None),
]


def _self_index(batch, seq_len):
    return torch.arange(batch * seq_len).view(batch, seq_len, 1)


@pytest.mark.parametrize('cfg', ALL_CONFIGS, ids=lambda c: str(c))
@pytest.mark.parametrize('batch,seq_len', [(1, 2), (2, 3), (4, 30),
                                           (100, 30)])
def test_contract(cfg, batch, seq_len):
    cfg = dict(cfg)
    n = batch * seq_len
    k = cfg.get('num_negatives', None)
    if k is not None:
        limit = seq_len - 1 if cfg['type'] == 'CurrentSequenceSampler' \
            else n - 1
        cfg['num_negatives'] = min(k, limit)
    sampler = NEGATIVE_SAMPLERS.build(cfg)
    features = _features(batch, seq_len, dim=8)
    idx, pool = sampler(features, _gen())
    assert pool is features
    expected_k = sampler.num_outputs(n, seq_len)
    assert idx.shape == (batch, seq_len, expected_k)
    assert idx.dtype == torch.long
    assert idx.device == features.device
    assert int(idx.min()) >= 0 and int(idx.max()) < n
    assert not (idx == _self_index(batch, seq_len)).any()
    flat = idx.reshape(n, -1).sort(dim=1).values
    assert (flat[:, 1:] != flat[:, :-1]).all(), 'negatives must be distinct'


def test_registry_builds_all_samplers():
    for cfg, cls in [(dict(type='CANSSampler'), CANSSampler),
                     (dict(type='CurrentSequenceSampler'),
                      CurrentSequenceSampler),
                     (dict(type='CurrentMiniBatchSampler'),
                      CurrentMiniBatchSampler)]:
        assert isinstance(NEGATIVE_SAMPLERS.build(cfg), cls)
    assert CANSSampler().num_negatives == 32
    assert 'mode=' in repr(CANSSampler())


@pytest.mark.parametrize('kwargs', [
    dict(mode='closest'),
    dict(interval=0.0),
    dict(interval=1.5),
    dict(interval_method='iqr'),
    dict(num_negatives=0),
    dict(num_negatives=None),
    dict(power=0.0),
    dict(min_weight=0.0),
    dict(chunk_size=0),
    dict(on_small_pool='pad'),
])
def test_cans_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        CANSSampler(**kwargs)


def test_features_must_be_3d():
    with pytest.raises(ValueError, match='B, T, D'):
        CANSSampler()(torch.randn(10, 4))


def test_similar_prefers_near_and_dissimilar_far():
    """Share of picks among the nearer half of the other clips."""
    features = _features(4, 30, dim=32, seed=1)
    x = features.reshape(-1, 32)
    dist = torch.cdist(x, x)
    dist.fill_diagonal_(float('nan'))
    near = dist < dist.nanmedian(dim=1, keepdim=True).values
    share = {}
    for mode in ('similar', 'dissimilar'):
        for method in ('gaussian', 'percentile'):
            sampler = CANSSampler(mode=mode, num_negatives=16,
                                  interval_method=method)
            gen = _gen(3)
            picks = [sampler(features, gen).indices.reshape(120, -1)
                     for _ in range(5)]
            share[mode, method] = torch.stack(
                [near.gather(1, p).float().mean() for p in picks]).mean()
    for method in ('gaussian', 'percentile'):
        # Measured: about 0.62 vs 0.36 over 9600 picks each (sd ~0.005).
        assert share['similar', method] > 0.55
        assert share['dissimilar', method] < 0.45
        assert share['similar', method] - share['dissimilar', method] > 0.15


@pytest.mark.parametrize('method', ['gaussian', 'percentile'])
@pytest.mark.parametrize('interval', [0.95, 0.6])
@pytest.mark.parametrize('mode', ['similar', 'dissimilar'])
def test_outside_interval_never_picked(method, interval, mode):
    features = _features(4, 30, dim=16, seed=2)
    _, inside, _ = _oracle(features, interval, method)
    survivors = inside.sum(1).min()
    k = 16
    assert survivors >= k  # the fallback must not be involved here
    sampler = CANSSampler(mode=mode, num_negatives=k, interval=interval,
                          interval_method=method)
    inside = torch.from_numpy(inside)
    discarded = (~inside).sum() - 120  # the diagonal is not a candidate
    assert discarded > 0
    gen = _gen(4)
    for _ in range(5):
        idx = sampler(features, gen).indices.reshape(120, k)
        assert inside.gather(1, idx).all()


@pytest.mark.parametrize('interval', [0.3, 0.8, 0.99])
@pytest.mark.parametrize('method', ['gaussian', 'percentile'])
def test_interval_bounds_match_oracle(method, interval):
    features = _features(3, 20, dim=8, seed=5)
    x = features.reshape(-1, 8)
    rows = torch.arange(60)
    sampler = CANSSampler(interval_method=method, interval=interval)
    norm = sampler.normalized_distances(x, x, rows)
    lo, hi = sampler.interval_bounds(norm, rows)
    ref_norm, _, _ = _oracle(features, interval, method)
    # The bounds leave the distances as they were (nan at the positive).
    np.testing.assert_allclose(norm.numpy(), ref_norm, atol=1e-5)
    z = NormalDist().inv_cdf((1 + interval) / 2)
    q = [(1 - interval) / 2, (1 + interval) / 2]
    for i in range(60):
        d = np.delete(ref_norm[i], i)
        if method == 'gaussian':
            ref = (d.mean() - z * d.std(), d.mean() + z * d.std())
        else:
            ref = np.quantile(d, q)
        assert lo[i, 0].item() == pytest.approx(ref[0], abs=1e-5)
        assert hi[i, 0].item() == pytest.approx(ref[1], abs=1e-5)


@pytest.mark.parametrize('mode', ['similar', 'dissimilar'])
@pytest.mark.parametrize('method', ['gaussian', 'percentile'])
def test_candidate_weights_follow_the_documented_rule(mode, method):
    """Weights (1 - n)^p + floor (similar) or n^p + floor on survivors only."""
    features = _features(2, 20, dim=8, seed=6)
    norm, inside, _ = _oracle(features, 0.9, method)
    sampler = CANSSampler(mode=mode, interval=0.9, interval_method=method,
                          power=2.0, min_weight=0.05)
    x = features.reshape(40, 8)
    weights, gap = sampler.candidate_weights(x, x, torch.arange(40))
    weights = weights.double().numpy()
    # Every survivor keeps a chance, nothing else has one.
    np.testing.assert_array_equal(weights > 0, inside)
    assert (weights[inside] >= 0.05).all()
    score = 1 - norm if mode == 'similar' else norm
    np.testing.assert_allclose(weights[inside], score[inside]**2 + 0.05,
                               atol=1e-5)
    assert (gap.diagonal().isnan()).all()


def test_single_draws_match_the_weights():
    """With K = 1 the pick frequencies estimate w / sum(w)."""
    features = _features(1, 8, dim=4, seed=14)
    sampler = CANSSampler(mode='similar', num_negatives=1, interval=1.0)
    x = features.reshape(8, 4)
    weights, _ = sampler.candidate_weights(x, x, torch.arange(8))
    expected = weights / weights.sum(dim=1, keepdim=True)
    gen = _gen(15)
    draws = 1000
    counts = torch.zeros(8, 8)
    for _ in range(draws):
        counts.scatter_add_(1, sampler(features, gen).indices.reshape(8, 1),
                            torch.ones(8, 1))
    # Standard deviation of a frequency is about 0.011 here.
    assert (counts / draws - expected).abs().max() < 0.05
    assert (counts.diagonal() == 0).all()


def test_nearest_survivors_drawn_more_often_with_similar():
    features = _features(2, 20, dim=8, seed=8)
    norm, inside, _ = _oracle(features)
    row = 0
    cand = np.flatnonzero(inside[row])
    order = cand[np.argsort(norm[row, cand])]
    nearest, farthest = order[:5], order[-5:]
    counts = {}
    for mode in ('similar', 'dissimilar'):
        counts[mode] = torch.zeros(40)
        sampler = CANSSampler(mode=mode, num_negatives=3)
        gen = _gen(9)
        for _ in range(100):
            counts[mode].index_add_(0,
                                    sampler(features, gen).indices[0, row],
                                    torch.ones(3))
    near, far = counts['similar'][nearest], counts['similar'][farthest]
    assert near.sum() > 2 * far.sum()
    near, far = counts['dissimilar'][nearest], counts['dissimilar'][farthest]
    assert far.sum() > 2 * near.sum()


def test_positive_never_picked_with_identical_features():
    """Degenerate distances (all equal) still exclude the positive."""
    features = torch.ones(3, 4, 8)
    for sampler in (CANSSampler(num_negatives=11),
                    CANSSampler(num_negatives=11,
                                interval_method='percentile'),
                    CurrentMiniBatchSampler(num_negatives=11)):
        idx = sampler(features, _gen()).indices
        assert not (idx == _self_index(3, 4)).any()
        assert torch.equal(idx.sort(dim=-1).values.reshape(12, 11)[0],
                           torch.arange(1, 12))


def test_fewer_candidates_than_k_fill_nearest_to_interval():
    features = _features(2, 20, dim=8, seed=10)
    k = 30
    _, inside, gap = _oracle(features, interval=0.5)
    survivors = inside.sum(1)
    assert survivors.max() < k  # every positive needs the fallback
    sampler = CANSSampler(num_negatives=k, interval=0.5)
    idx = sampler(features, _gen(11)).indices.reshape(40, k).numpy()
    for i in range(40):
        picked = set(idx[i].tolist())
        assert i not in picked and len(picked) == k
        cand = set(np.flatnonzero(inside[i]).tolist())
        assert cand <= picked
        rest = [j for j in range(40) if j != i and j not in cand]
        by_gap = sorted(rest, key=lambda j: gap[i, j])
        assert picked - cand == set(by_gap[:k - len(cand)])


def test_pool_smaller_than_k_raises_or_repeats():
    features = _features(1, 10, dim=8)
    for sampler in (CANSSampler(num_negatives=12),
                    CurrentMiniBatchSampler(num_negatives=12),
                    CurrentSequenceSampler(num_negatives=12)):
        with pytest.raises(ValueError, match='num_negatives=12'):
            sampler(features, _gen())
    for sampler in (CANSSampler(num_negatives=12, on_small_pool='repeat'),
                    CurrentMiniBatchSampler(num_negatives=12,
                                            on_small_pool='repeat'),
                    CurrentSequenceSampler(num_negatives=12,
                                           on_small_pool='repeat')):
        idx = sampler(features, _gen()).indices
        assert idx.shape == (1, 10, 12)
        assert not (idx == _self_index(1, 10)).any()
        for i in range(10):
            counts = torch.bincount(idx[0, i], minlength=10)
            assert counts[i] == 0
            others = torch.cat([counts[:i], counts[i + 1:]])
            assert int(others.min()) >= 1 and int(others.max()) <= 2


def test_single_clip_pool_always_raises():
    features = _features(1, 1)
    for sampler in (CANSSampler(num_negatives=1, on_small_pool='repeat'),
                    CurrentMiniBatchSampler(num_negatives=None),
                    CurrentSequenceSampler()):
        with pytest.raises(ValueError):
            sampler(features)


def test_current_sequence_stays_inside_sequence():
    batch, seq_len = 5, 12
    features = _features(batch, seq_len)
    seq_of = torch.arange(batch).view(batch, 1, 1)
    everyone = CurrentSequenceSampler()(features).indices
    assert everyone.shape == (batch, seq_len, seq_len - 1)
    for b, t in [(0, 0), (2, 5), (4, 11)]:
        expected = [b * seq_len + j for j in range(seq_len) if j != t]
        assert everyone[b, t].tolist() == expected
    some = CurrentSequenceSampler(num_negatives=4)(features, _gen()).indices
    for idx in (everyone, some):
        assert (idx // seq_len == seq_of).all()
        assert not (idx == _self_index(batch, seq_len)).any()


def test_current_minibatch_is_uniform():
    features = _features(2, 10)
    sampler = CurrentMiniBatchSampler(num_negatives=5)
    gen = _gen(12)
    counts = torch.zeros(20, 20)
    for _ in range(400):
        idx = sampler(features, gen).indices.reshape(20, 5)
        counts.scatter_add_(1, idx, torch.ones(20, 5))
    assert (counts.diagonal() == 0).all()
    off = counts[~torch.eye(20, dtype=torch.bool)]
    expected = 400 * 5 / 19  # 105 per pair, sd about 9.6
    assert (off - expected).abs().max() < 0.45 * expected
    torch.testing.assert_close(off.reshape(20, 19).mean(1),
                               torch.full((20, ), expected))
    everyone = CurrentMiniBatchSampler(num_negatives=None)(features).indices
    assert everyone[1, 3].tolist() == [j for j in range(20) if j != 13]


@pytest.mark.parametrize('cfg', ALL_CONFIGS, ids=lambda c: str(c))
def test_generator_determinism(cfg):
    sampler = NEGATIVE_SAMPLERS.build(cfg)
    features = _features(4, 30)
    first = sampler(features, _gen(21)).indices
    assert torch.equal(first, sampler(features, _gen(21)).indices)
    if sampler.num_negatives is not None:  # otherwise nothing is random
        assert not torch.equal(first, sampler(features, _gen(22)).indices)


def test_chunked_cans_keeps_invariants():
    features = _features(3, 20, dim=8, seed=13)
    _, inside, _ = _oracle(features)
    inside = torch.from_numpy(inside)
    for chunk in (1, 7, 60, 1000):
        sampler = CANSSampler(num_negatives=10, chunk_size=chunk)
        idx = sampler(features, _gen()).indices.reshape(60, 10)
        assert inside.gather(1, idx).all()
        assert not (idx == torch.arange(60).view(60, 1)).any()
    full = CurrentMiniBatchSampler(num_negatives=None)(features).indices
    chunked = CurrentMiniBatchSampler(num_negatives=None,
                                      chunk_size=7)(features).indices
    assert torch.equal(full, chunked)


def test_low_precision_and_no_graph():
    features = _features(2, 10, dim=8).requires_grad_()
    for dtype in (torch.float16, torch.bfloat16):
        idx = CANSSampler(num_negatives=4)(features.to(dtype),
                                           _gen()).indices
        assert idx.dtype == torch.long and not idx.requires_grad
    idx, pool = CANSSampler(num_negatives=4)(features, _gen())
    assert not idx.requires_grad and features.grad is None
    # The pool is the features themselves, gradient path included.
    assert pool is features


def test_gather_sequences_is_identity_without_process_group():
    features = _features(2, 5).requires_grad_()
    pool, first = gather_sequences(features)
    assert pool is features and first == 0
    plain, plain_pool = CANSSampler(num_negatives=4)(features, _gen(5))
    gathered, gathered_pool = CANSSampler(
        num_negatives=4, gather_across_ranks=True)(features, _gen(5))
    assert torch.equal(plain, gathered)
    assert plain_pool is features and gathered_pool is features


_DIST_SCRIPT = textwrap.dedent('''
    import sys
    import torch
    import torch.distributed as dist
    from avtoolkit.models.samplers import (CANSSampler,
                                           CurrentSequenceSampler)
    from avtoolkit.models.utils import gather_sequences

    rank, init = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group('gloo', init_method=init, rank=rank,
                            world_size=2)
    T, D = 5, 8
    everything = torch.randn(5, T, D,
                             generator=torch.Generator().manual_seed(0))
    sizes = [2, 3]  # uneven on purpose
    first = sum(sizes[:rank])
    local = everything[first:first + sizes[rank]].clone().requires_grad_()

    pool, got_first = gather_sequences(local)
    assert got_first == first, (got_first, first)
    assert torch.equal(pool.detach(), everything)
    (pool * torch.arange(1., 6.).view(5, 1, 1)).sum().backward()
    expected = torch.arange(1., 6.)[first:first + sizes[rank]]
    assert torch.equal(local.grad, expected.view(-1, 1, 1).expand_as(local))

    n_local, n_total = sizes[rank] * T, 5 * T
    own = (first * T + torch.arange(n_local)).view(sizes[rank], T, 1)
    local.grad = None
    idx, sampled_pool = CANSSampler(num_negatives=12,
                                    gather_across_ranks=True)(
        local, torch.Generator().manual_seed(rank))
    # The sampler returns the pool it gathered; its local rows keep the
    # gradient path into this rank's features.
    assert torch.equal(sampled_pool.detach(), everything)
    (sampled_pool * torch.arange(1., 6.).view(5, 1, 1)).sum().backward()
    assert torch.equal(local.grad, expected.view(-1, 1, 1).expand_as(local))
    assert idx.shape == (sizes[rank], T, 12)
    assert int(idx.min()) >= 0 and int(idx.max()) < n_total
    assert not (idx == own).any()
    other_rank = (idx < first * T) | (idx >= (first + sizes[rank]) * T)
    assert other_rank.any(), 'the global pool must be used'

    seq, seq_pool = CurrentSequenceSampler(gather_across_ranks=True)(local)
    assert torch.equal(seq_pool.detach(), everything)
    seq_of = (first + torch.arange(sizes[rank])).view(-1, 1, 1)
    assert (seq // T == seq_of).all()
    dist.destroy_process_group()
    print('rank', rank, 'ok')
''')


def test_gather_across_two_gloo_ranks(tmp_path):
    init = f'file://{tmp_path}/rendezvous'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    procs = [
        subprocess.Popen([sys.executable, '-c', _DIST_SCRIPT, str(r), init],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, text=True) for r in range(2)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    for rank, (proc, (out, err)) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f'rank {rank} failed:\n{err[-3000:]}'
        assert f'rank {rank} ok' in out
