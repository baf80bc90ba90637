"""Tests of the AVBERT Transformers: SharedLowRankTransformer and its parts."""
import itertools

import pytest
import torch
from torch import nn

from avtoolkit.models.necks import (FactorizedLinear,
                                    SharedLowRankTransformer,
                                    TransformerLayer,
                                    orthogonal_from_generator)
from avtoolkit.models.structures import AVOutputs

B, T, D, HEADS, FFN, RANK, LAYERS = 2, 5, 32, 4, 64, 8, 2


def tiny(**kwargs):
    cfg = dict(embed_dim=D, num_layers=LAYERS, num_heads=HEADS, ffn_dim=FFN,
               rank=RANK, max_seq_len=8)
    cfg.update(kwargs)
    return SharedLowRankTransformer(**cfg)


def inputs(seed=0, batch=B, length=T):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, length, D, generator=gen),
            torch.randn(batch, length, D, generator=gen))


def a_mask(batch=B, length=T):
    mask = torch.zeros(batch, length, dtype=torch.bool)
    mask[0, 1] = mask[0, 3] = mask[1, 0] = True
    return mask


def all_outputs(out: AVOutputs):
    return [t for t in (out.y_v, out.y_a, out.z) if t is not None]


SHARING = [('none', False), ('none', True), ('all', False), ('all', True),
           ('part', False), ('part', True)]


# ------------------------------------------------------------------- shapes
@pytest.mark.parametrize('fusion', ['mid', 'early', 'late'])
@pytest.mark.parametrize('share_transformers,share_layers', SHARING)
def test_output_shapes(fusion, share_transformers, share_layers):
    neck = tiny(fusion=fusion, share_transformers=share_transformers,
                share_layers=share_layers)
    x_v, x_a = inputs()
    out = neck(x_v, x_a, mask=a_mask())
    assert isinstance(out, AVOutputs)
    assert out.x_v is x_v and out.x_a is x_a
    assert out.num_clips == T
    if fusion == 'early':
        assert out.y_v is None and out.y_a is None
    else:
        assert out.y_v.shape == (B, T + 1, D)
        assert out.y_a.shape == (B, T + 1, D)
    if fusion == 'late':
        assert out.z is None and out.z_v is None and out.z_a is None
    else:
        assert out.z.shape == (B, 2 * T + 2, D)
        assert torch.equal(out.z_v, out.z[:, :T + 1])
        assert torch.equal(out.z_a, out.z[:, T + 1:])
        z_bos_v, z_bos_a = out.summary_multimodal
        assert torch.equal(z_bos_v, out.z[:, 0])
        assert torch.equal(z_bos_a, out.z[:, T + 1])
    for t in all_outputs(out):
        assert torch.isfinite(t).all()


def test_default_is_paper_model():
    neck = SharedLowRankTransformer()
    assert (neck.fusion, neck.share_transformers, neck.share_layers,
            neck.rank, neck.depth) == ('mid', 'part', True, 128, 6)
    layer = neck.transformers['shared'].layers[0]
    assert not layer.norm_first
    assert layer.norm1.eps == 1e-12 and layer.num_heads == 12
    assert layer.ffn1.out_features == 3072


@pytest.mark.parametrize('share_transformers', ['none', 'all', 'part'])
def test_missing_modality_mid(share_transformers):
    neck = tiny(share_transformers=share_transformers).eval()
    x_v, x_a = inputs()
    full = neck(x_v, x_a)
    only_v = neck(x_v, None)
    assert only_v.y_a is None and only_v.x_a is None
    assert only_v.y_v.shape == (B, T + 1, D)
    assert only_v.z.shape == (B, T + 1, D)
    assert only_v.z_modalities == ('visual', )
    assert only_v.z_a is None and torch.equal(only_v.z_v, only_v.z)
    # The unimodal Transformers do not see the other modality.
    torch.testing.assert_close(only_v.y_v, full.y_v)
    only_a = neck(None, x_a)
    assert only_a.y_v is None and only_a.z_v is None
    assert only_a.z_a.shape == (B, T + 1, D)
    torch.testing.assert_close(only_a.y_a, full.y_a)
    # The multimodal half differs: it no longer attends to the visual half.
    assert not torch.allclose(only_a.z_a, full.z_a)


def test_missing_modality_late_and_early():
    x_v, x_a = inputs()
    late = tiny(fusion='late').eval()
    out = late(None, x_a)
    assert out.y_v is None and out.z is None
    torch.testing.assert_close(out.y_a, late(x_v, x_a).y_a)
    early = tiny(fusion='early')
    with pytest.raises(ValueError, match='early fusion'):
        early(x_v, None)
    with pytest.raises(ValueError, match='early fusion'):
        early(None, x_a)


# -------------------------------------------------------------- bad inputs
def test_bad_inputs():
    neck = tiny()
    x_v, x_a = inputs()
    with pytest.raises(ValueError, match='at least one'):
        neck(None, None)
    with pytest.raises(ValueError, match='max_seq_len'):
        neck(*inputs(length=9))
    with pytest.raises(ValueError, match=r'\(B, T, 32\)'):
        neck(torch.randn(B, T, D + 1), x_a)
    with pytest.raises(ValueError, match='same'):
        neck(x_v, x_a[:, :-1])
    with pytest.raises(TypeError, match='bool'):
        neck(x_v, x_a, mask=torch.zeros(B, T))
    with pytest.raises(ValueError, match='mask must have shape'):
        neck(x_v, x_a, mask=torch.zeros(B, T + 1, dtype=torch.bool))
    with pytest.raises(TypeError, match='floating'):
        neck(x_v.long(), x_a)
    with pytest.raises(ValueError, match='fusion'):
        tiny(fusion='middle')
    with pytest.raises(ValueError, match='share_transformers'):
        tiny(share_transformers='some')
    with pytest.raises(ValueError, match='rank'):
        tiny(rank=0)
    with pytest.raises(ValueError, match='divisible'):
        tiny(num_heads=5)
    with pytest.raises(ValueError, match='dropout'):
        tiny(dropout=1.5)


def test_max_seq_len_boundary():
    neck = tiny(max_seq_len=6)
    out = neck(*inputs(length=6))
    assert out.z.shape == (B, 14, D)
    with pytest.raises(ValueError, match='T=7 clips exceed max_seq_len=6'):
        neck(*inputs(length=7))


# --------------------------------------------------------- parameter counts
def _layer_count(dim, ffn, rank, groups):
    """Parameters of one factorized layer (three maps of q/k/v, out, FFN)."""
    def fact(n_in, n_out):
        return n_out * rank + n_out + groups * (rank * n_in + rank * rank)
    return (4 * fact(dim, dim) + fact(dim, ffn) + fact(ffn, dim) + 4 * dim)


@pytest.mark.parametrize('cfg,expected', [
    (dict(share_transformers='part', share_layers=True), 3_843_840),
    (dict(share_transformers='none', share_layers=False), 127_581_696),
    (dict(share_transformers='none', share_layers=True), 21_263_616),
    (dict(share_transformers='all', share_layers=True), 7_087_872),
    (dict(share_transformers='part', share_layers=False), 23_063_040),
    (dict(fusion='early'), _layer_count(768, 3072, 128, 1)),
    (dict(fusion='late'), _layer_count(768, 3072, 128, 2)),
])
def test_full_size_transformer_layer_counts(cfg, expected):
    neck = SharedLowRankTransformer(**cfg)
    assert sum(p.numel() for p in neck.transformers.parameters()) == expected
    # The layers and the embeddings are disjoint parts of the neck.
    layer_ids = {id(p) for p in neck.transformers.parameters()}
    emb_ids = {id(p) for p in neck.embeddings.parameters()}
    assert not layer_ids & emb_ids
    assert layer_ids | emb_ids == {id(p) for p in neck.parameters()}


def test_dense_none_is_plain_linear():
    neck = tiny(share_transformers='none', share_layers=False)
    assert not any(isinstance(m, FactorizedLinear) for m in neck.modules())
    layer = neck.transformers['visual'].layers[0]
    for name in ('qkv', 'out_proj', 'ffn1', 'ffn2'):
        assert type(getattr(layer, name)) is nn.Linear
    assert set(neck.transformers) == {'visual', 'audio', 'multimodal'}
    assert len(neck.transformers['visual'].layers) == LAYERS


def test_all_shares_one_module():
    neck = tiny(share_transformers='all', share_layers=False)
    assert list(neck.transformers) == ['shared']
    assert len(neck.transformers['shared'].layers) == LAYERS


# -------------------------------------------------- equivalence with torch
@pytest.mark.parametrize('norm_first', [False, True])
def test_dense_layer_matches_torch_encoder_layer(norm_first):
    torch.manual_seed(0)
    ours = TransformerLayer(D, HEADS, FFN, dropout=0.0, attn_dropout=0.0,
                            norm_first=norm_first, layer_norm_eps=1e-12)
    ref = nn.TransformerEncoderLayer(
        D, HEADS, FFN, dropout=0.0, activation='gelu', layer_norm_eps=1e-12,
        batch_first=True, norm_first=norm_first)
    with torch.no_grad():
        # Make every weight distinct from our init before copying.
        for p in ours.parameters():
            p.normal_(0, 0.3)
        ref.self_attn.in_proj_weight.copy_(ours.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(ours.qkv.bias)
        ref.self_attn.out_proj.weight.copy_(ours.out_proj.weight)
        ref.self_attn.out_proj.bias.copy_(ours.out_proj.bias)
        ref.linear1.weight.copy_(ours.ffn1.weight)
        ref.linear1.bias.copy_(ours.ffn1.bias)
        ref.linear2.weight.copy_(ours.ffn2.weight)
        ref.linear2.bias.copy_(ours.ffn2.bias)
        for name in ('norm1', 'norm2'):
            getattr(ref, name).weight.copy_(getattr(ours, name).weight)
            getattr(ref, name).bias.copy_(getattr(ours, name).bias)
    ours.train()
    ref.train()  # dropout 0; keeps torch off its inference fast path
    x = torch.randn(3, 7, D)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 5:] = True
    expected = ref(x, src_key_padding_mask=pad)
    got = ours(x.unsqueeze(0),
               attn_mask=(~pad)[:, None, None, :]).squeeze(0)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_factorized_map_matches_formula():
    torch.manual_seed(0)
    lin = FactorizedLinear(12, 20, rank=4, num_groups=3, num_maps=2)
    with torch.no_grad():
        lin.bias.normal_()
        lin.sigma_generator.normal_()
    rot = orthogonal_from_generator(lin.sigma_generator)
    x = torch.randn(2, 6, 12)
    for fold in (False, True):
        out = lin(x, lin.prepare(rot, slice(1, 3), fold))
        assert out.shape == (2, 2, 6, 20)
        for g, i in itertools.product(range(2), range(2)):
            v = lin.weight_v[g + 1, i]
            h = x[g] @ v.T
            h = h / h.norm(dim=-1, keepdim=True)
            want = h @ rot[g + 1, i].T @ lin.weight_u[i].T + lin.bias[i]
            torch.testing.assert_close(out[i, g], want, rtol=1e-5,
                                       atol=1e-5)
    single = FactorizedLinear(12, 20, rank=4, num_groups=3)
    rot1 = orthogonal_from_generator(single.sigma_generator)
    assert single(x[:1], single.prepare(rot1, slice(2, 3),
                                        False)).shape == (1, 6, 20)
    with pytest.raises(ValueError, match='contiguous'):
        single.prepare(rot1, slice(2, 2), False)
    with pytest.raises(ValueError, match='expected input'):
        single(x, single.prepare(rot1, slice(2, 3), False))


def test_fold_and_per_token_rotation_agree():
    x_v, x_a = inputs()
    neck = tiny(fold_rotations=True).eval()
    folded = neck(x_v, x_a)
    neck.fold_rotations = False
    applied = neck(x_v, x_a)
    for a, b in zip(all_outputs(folded), all_outputs(applied)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_private_parts_select_the_right_transformer():
    """Group 0 (visual) weights only affect the visual Transformer, etc."""
    x_v, x_a = inputs()
    neck = tiny().eval()
    before = neck(x_v, x_a)
    with torch.no_grad():
        neck.transformers['shared'].layers[0].ffn1.weight_v[1].mul_(-1.7)
    after = neck(x_v, x_a)
    torch.testing.assert_close(after.y_v, before.y_v)
    assert not torch.allclose(after.y_a, before.y_a)
    with torch.no_grad():
        neck.transformers['shared'].layers[0].ffn1.weight_v[1].div_(-1.7)
        gen = neck.transformers['shared'].layers[0].qkv.sigma_generator[2]
        gen.add_(torch.randn_like(gen))  # a symmetric change would not count
    again = neck(x_v, x_a)
    torch.testing.assert_close(again.y_v, before.y_v)
    torch.testing.assert_close(again.y_a, before.y_a)
    assert not torch.allclose(again.z, before.z)


# ------------------------------------------------------------- orthogonality
def test_sigma_stays_orthogonal_after_training_steps():
    torch.manual_seed(0)
    neck = tiny()
    layer = neck.transformers['shared'].layers[0]
    start = {n: m.sigma().detach().clone()
             for n, m in layer.named_modules()
             if isinstance(m, FactorizedLinear)}
    opt = torch.optim.Adam(neck.parameters(), lr=0.05)
    x_v, x_a = inputs()
    target = torch.randn(B, 2 * T + 2, D)
    for _ in range(5):
        opt.zero_grad()
        out = neck(x_v, x_a, mask=a_mask())
        loss = ((out.z - target)**2).mean() + out.y_v.mean() - out.y_a.mean()
        loss.backward()
        opt.step()
    eye = torch.eye(RANK)
    for name, module in layer.named_modules():
        if not isinstance(module, FactorizedLinear):
            continue
        sigma = module.sigma()
        assert sigma.dtype == torch.float32
        err = (sigma.transpose(-1, -2) @ sigma - eye).norm(dim=(-2, -1))
        assert err.max() < 1e-4, name
        # The rotations were trained, not frozen.
        assert (sigma - start[name]).abs().max() > 1e-3, name


def test_sigma_is_float32_under_autocast():
    neck = tiny()
    x_v, x_a = inputs()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        sigmas = neck.compute_sigmas()
        out = neck(x_v, x_a)
    assert all(s.dtype == torch.float32 for s in sigmas)
    assert out.z.shape == (B, 2 * T + 2, D)
    assert torch.isfinite(out.z.float()).all()


@pytest.mark.parametrize('share_layers', [True, False])
def test_sigma_computed_once_per_forward(monkeypatch, share_layers):
    calls = []
    original = torch.linalg.matrix_exp

    def counting(x):
        calls.append(tuple(x.shape))
        return original(x)

    monkeypatch.setattr(torch.linalg, 'matrix_exp', counting)
    neck = tiny(share_layers=share_layers)
    x_v, x_a = inputs()
    out = neck(x_v, x_a)
    assert len(calls) == 1
    # One batch with every Σ: 4 maps per layer (q/k/v fused) x 6 matrices.
    num_layers = 1 if share_layers else LAYERS
    assert calls[0] == (num_layers * 3 * 6, RANK, RANK)
    calls.clear()
    out.z.sum().backward()
    assert len(calls) == 0
    dense = tiny(share_transformers='none')
    dense(x_v, x_a)
    assert len(calls) == 0


# ------------------------------------------------------------------ masking
@pytest.mark.parametrize('fusion', ['mid', 'early', 'late'])
def test_masked_inputs_do_not_leak(fusion):
    neck = tiny(fusion=fusion).eval()
    x_v, x_a = inputs()
    mask = a_mask()
    base = neck(x_v, x_a, mask=mask)
    # Change the raw inputs of both modalities at the masked clips only.
    noise_v, noise_a = inputs(seed=1)
    changed = neck(torch.where(mask[..., None], noise_v * 10, x_v),
                   torch.where(mask[..., None], noise_a * 10, x_a),
                   mask=mask)
    for a, b in zip(all_outputs(base), all_outputs(changed)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # The same change without the mask does reach the outputs.
    unmasked = neck(torch.where(mask[..., None], noise_v * 10, x_v),
                    torch.where(mask[..., None], noise_a * 10, x_a))
    for a, b in zip(all_outputs(neck(x_v, x_a)), all_outputs(unmasked)):
        assert not torch.allclose(a, b)


def test_mask_applies_to_both_modalities_before_time_embedding():
    neck = tiny()
    x_v, x_a = inputs()
    mask = a_mask()
    for modality, x in (('visual', x_v), ('audio', x_a)):
        tokens = neck.embeddings[f'{modality}_tokens']
        out = tokens(x, mask)
        assert out.shape == (B, T + 1, D)
        # BOS at 0, never masked, even if every clip is.
        assert torch.equal(out[:, 0], tokens.bos.expand(B, D))
        full = tokens(x, torch.ones(B, T, dtype=torch.bool))
        assert torch.equal(full[:, 0], tokens.bos.expand(B, D))
        assert torch.equal(out[:, 1:][mask],
                           tokens.mask_token.expand(int(mask.sum()), D))
        assert torch.equal(out[:, 1:][~mask], x[~mask])
    # Each modality has its own mask embedding.
    assert not torch.equal(neck.embeddings['visual_tokens'].mask_token,
                           neck.embeddings['audio_tokens'].mask_token)


def test_changing_only_one_modality_at_masked_clip_has_no_effect():
    neck = tiny().eval()
    x_v, x_a = inputs()
    mask = a_mask()
    base = neck(x_v, x_a, mask=mask)
    x_a2 = x_a.clone()
    x_a2[mask] = 50.0
    out = neck(x_v, x_a2, mask=mask)
    for a, b in zip(all_outputs(base), all_outputs(out)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_padding_mask_hides_padded_clips():
    neck = tiny().eval()
    x_v, x_a = inputs()
    pad = torch.zeros(B, T, dtype=torch.bool)
    pad[0, 3:] = True
    base = neck(x_v, x_a, padding_mask=pad)
    x_v2, x_a2 = x_v.clone(), x_a.clone()
    x_v2[0, 3:] = 7.0
    x_a2[0, 3:] = -7.0
    out = neck(x_v2, x_a2, padding_mask=pad)
    keep = torch.ones(B, T + 1, dtype=torch.bool)
    keep[0, 4:] = False  # sequence positions 4.. are clips 3..
    torch.testing.assert_close(out.y_v[keep], base.y_v[keep])
    torch.testing.assert_close(out.y_a[keep], base.y_a[keep])
    torch.testing.assert_close(out.z_v[keep], base.z_v[keep])
    torch.testing.assert_close(out.z_a[keep], base.z_a[keep])
    assert out.padding_mask is pad


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize('fusion,share_transformers,share_layers', [
    ('mid', 'part', True), ('mid', 'part', False), ('mid', 'none', False),
    ('mid', 'all', True), ('early', 'part', True), ('late', 'part', True),
    ('late', 'none', True)
])
def test_gradients_reach_every_parameter(fusion, share_transformers,
                                         share_layers):
    torch.manual_seed(0)
    neck = tiny(fusion=fusion, share_transformers=share_transformers,
                share_layers=share_layers)
    x_v, x_a = inputs()
    out = neck(x_v, x_a, mask=a_mask())
    loss = sum((t * torch.randn_like(t)).sum() for t in all_outputs(out))
    loss.backward()
    for name, p in neck.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- structures
def test_avoutputs_helpers():
    z = torch.arange(2 * 12 * 3, dtype=torch.float).view(2, 12, 3)
    out = AVOutputs(z=z)
    assert torch.equal(out.z_v, z[:, :6]) and torch.equal(out.z_a, z[:, 6:])
    assert out.num_clips == 5
    detached = out.apply(lambda t: t * 2)
    assert torch.equal(detached.z, z * 2) and detached.y_v is None
    assert out.summary_unimodal == (None, None)
    audio_only = AVOutputs(z=z[:, :6], z_modalities=('audio', ))
    assert audio_only.z_v is None and torch.equal(audio_only.z_a, z[:, :6])
    with pytest.raises(ValueError, match='holds no tensor'):
        AVOutputs().num_clips
