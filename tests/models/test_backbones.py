"""Tests of the visual / audio CNNs and the clip-sequence encoder.

Full-size CNNs are built (and parameter-counted) but only run on tiny inputs;
training-mode comparisons use narrow audio ResNets to stay fast on two cores.
"""
import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from avtoolkit.models.backbones import AudioResNet, ClipSequenceEncoder
from avtoolkit.registry import MODELS

CFG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    '_base_', 'models')

# (config file, variable, tiny input (B, T, *clip), CNN feat_dim)
VARIANTS = {
    'visual_slowfast_r50': ('visual_backbone', (2, 2, 3, 8, 16, 16), 2304),
    'visual_resnet3d_release': ('visual_backbone', (2, 2, 3, 4, 16, 16), 2048),
    'audio_resnet50': ('audio_backbone', (2, 2, 1, 16, 24), 1024),
    'audio_resnet50_release': ('audio_backbone', (2, 2, 1, 16, 16), 1024),
}


def load_base(name):
    """The single variable that ``configs/_base_/models/<name>.py`` defines."""
    cfg = Config.fromfile(osp.join(CFG_DIR, f'{name}.py'))
    key = VARIANTS[name][0]
    assert list(cfg.keys()) == [key], f'{name}.py must define only {key}'
    return copy.deepcopy(cfg[key])


def count(module):
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------
# Parameter counts computed from the architecture tables, independently of the
# modules: bias-free convolutions, BN with weight and bias.
# ---------------------------------------------------------------------------
def conv(c_in, c_out, *kernel):
    return c_in * c_out * math.prod(kernel)


def bn(c):
    return 2 * c


def bottleneck_stage(c_in, planes, blocks, kt=1):
    """A stage of bottlenecks [kt x 1 x 1, planes; 3x3, planes; 1x1, 4 planes]
    with a projection shortcut in its first block (kt=1 for 2D)."""
    total = 0
    for i in range(blocks):
        cin = c_in if i == 0 else 4 * planes
        total += conv(cin, planes, kt) + bn(planes)
        total += conv(planes, planes, 3, 3) + bn(planes)
        total += conv(planes, 4 * planes) + bn(4 * planes)
        if i == 0:
            total += conv(cin, 4 * planes) + bn(4 * planes)
    return total


R50_BLOCKS = (3, 4, 6, 3)


def expected_slowfast_r50():
    # Fast pathway: width 8, stem 5x7x7, temporal kernel 3 in every stage.
    fast = conv(3, 8, 5, 7, 7) + bn(8)
    c_in = 8
    for i, n in enumerate(R50_BLOCKS):
        fast += bottleneck_stage(c_in, 8 * 2**i, n, kt=3)
        c_in = 32 * 2**i
    # Slow pathway: width 64, stem 1x7x7, temporal kernels 1, 1, 3, 3.  Each
    # stage input is concatenated with a time-strided 5x1x1 lateral from the
    # fast pathway carrying 2x the fast channels (no BN on laterals).
    slow = conv(3, 64, 1, 7, 7) + bn(64)
    fast_out = [8, 32, 64, 128]  # fast channels entering each lateral
    c_in = 64
    for i, n in enumerate(R50_BLOCKS):
        lateral = 2 * fast_out[i]
        slow += conv(fast_out[i], lateral, 5, 1, 1)
        slow += bottleneck_stage(c_in + lateral, 64 * 2**i, n,
                                 kt=(1, 1, 3, 3)[i])
        c_in = 256 * 2**i
    return slow + fast


def expected_resnet3d_release():
    total = conv(3, 64, 5, 7, 7) + bn(64)
    c_in = 64
    for i, n in enumerate(R50_BLOCKS):
        total += bottleneck_stage(c_in, 64 * 2**i, n, kt=(1, 1, 3, 3)[i])
        c_in = 256 * 2**i
    return total


def expected_audio_resnet50(separable=False, width=32):
    if separable:
        total = conv(1, width, 9, 1) + bn(width) + conv(width, width, 1, 9) \
            + bn(width)
    else:
        total = conv(1, width, 9, 9) + bn(width)
    c_in = width
    for i, n in enumerate(R50_BLOCKS):
        total += bottleneck_stage(c_in, width * 2**i, n)
        c_in = 4 * width * 2**i
    return total


def projection(feat_dim, embed_dim=768):
    return feat_dim * embed_dim + embed_dim + 2 * embed_dim


EXPECTED_CNN = {
    'visual_slowfast_r50': expected_slowfast_r50,
    'visual_resnet3d_release': expected_resnet3d_release,
    'audio_resnet50': lambda: expected_audio_resnet50(False),
    'audio_resnet50_release': lambda: expected_audio_resnet50(True),
}


@pytest.fixture(scope='module')
def encoders():
    """Full-size encoders of every config, built once."""
    torch.manual_seed(0)
    built = {}
    for name in VARIANTS:
        enc = MODELS.build(load_base(name))
        # The CNN's own initialization (the encoder's init_weights, which also
        # reaches it, is tested below; it logs every parameter).
        enc.cnn.init_weights()
        built[name] = enc
    return built


def test_parameter_counts_full_size(encoders):
    counts = {}
    for name, enc in encoders.items():
        expected = EXPECTED_CNN[name]()
        counts[name] = count(enc.cnn)
        print(f'{name}: CNN {counts[name]:,} parameters (expected '
              f'{expected:,}), encoder {count(enc):,}')
        assert counts[name] == expected
        assert count(enc) == expected + projection(VARIANTS[name][2])
    # mmaction2's SlowFast-R50 with these settings is known to have ~33.6M.
    assert round(counts['visual_slowfast_r50'] / 1e6, 1) == 33.6
    assert counts['visual_slowfast_r50'] == 33_557_288
    assert counts['visual_resnet3d_release'] == 31_672_128
    assert counts['audio_resnet50'] == 5_890_528
    assert counts['audio_resnet50_release'] == 5_897_504


@pytest.mark.parametrize('name', list(VARIANTS))
def test_encoder_shapes(encoders, name):
    _, shape, feat_dim = VARIANTS[name]
    enc = encoders[name].eval()
    assert enc.feat_dim == feat_dim and enc.embed_dim == 768
    x = torch.randn(*shape)
    with torch.no_grad():
        out = enc(x)
    assert out.shape == (shape[0], shape[1], 768)
    assert torch.isfinite(out).all()
    # LayerNorm output: zero mean over D for every clip.
    assert out.mean(-1).abs().max() < 1e-4
    # Clips are encoded independently: sequence position matters, not order.
    with torch.no_grad():
        flipped = enc(x.flip(1))
    torch.testing.assert_close(flipped, out.flip(1), atol=1e-5, rtol=1e-4)


def test_slowfast_pathways_and_kernels(encoders):
    """Table 3: slow 1x7x7 stem, temporal kernels 1/1/3/3; fast width 8, 5x7x7
    stem, temporal kernel 3 everywhere; alpha=8 frame rates."""
    sf = encoders['visual_slowfast_r50'].eval().cnn
    assert sf.slow_path.conv1.conv.kernel_size == (1, 7, 7)
    assert sf.fast_path.conv1.conv.kernel_size == (5, 7, 7)
    assert sf.fast_path.conv1.conv.out_channels == 8
    for i, name in enumerate(sf.slow_path.res_layers):
        slow_block = getattr(sf.slow_path, name)[0]
        fast_block = getattr(sf.fast_path, name)[0]
        assert slow_block.conv1.conv.kernel_size[0] == (1, 1, 3, 3)[i]
        assert fast_block.conv1.conv.kernel_size[0] == 3
        assert slow_block.conv3.conv.out_channels == 256 * 2**i
        assert fast_block.conv3.conv.out_channels == 32 * 2**i
    with torch.no_grad():
        slow, fast = sf(torch.randn(1, 3, 32, 16, 16))
    # T_s = 4, T_f = 32 for a 32-frame clip.
    assert slow.shape[:3] == (1, 2048, 4)
    assert fast.shape[:3] == (1, 256, 32)


def test_release_resnet3d_kernels(encoders):
    """Release: temporal kernels 5 (stem, stride 2) / 1 / 1 / 3 / 3."""
    r3d = encoders['visual_resnet3d_release'].eval().cnn
    assert r3d.conv1.conv.kernel_size == (5, 7, 7)
    assert r3d.conv1.conv.stride == (2, 2, 2)
    assert r3d.conv1.conv.out_channels == 64
    for i, name in enumerate(r3d.res_layers):
        for block in getattr(r3d, name):
            assert block.conv1.conv.kernel_size == ((1, 1, 3, 3)[i], 1, 1)
            assert block.conv2.conv.kernel_size == (1, 3, 3)
    with torch.no_grad():
        out = r3d(torch.randn(1, 3, 8, 16, 16))
    # Only the stem halves time (no temporal pooling after res2).
    assert out.shape[:3] == (1, 2048, 4)


def _assert_table3_stages(cnn, width=32):
    for i, name in enumerate(cnn.res_layers):
        layer = getattr(cnn, name)
        assert len(layer) == R50_BLOCKS[i]
        for j, block in enumerate(layer):
            assert block.conv1.conv.kernel_size == (1, 1)
            assert block.conv1.conv.out_channels == width * 2**i
            assert block.conv2.conv.kernel_size == (3, 3)
            assert block.conv2.conv.out_channels == width * 2**i
            assert block.conv3.conv.kernel_size == (1, 1)
            assert block.conv3.conv.out_channels == 4 * width * 2**i
            # BN + ReLU after the 1x1 and the 3x3, BN only after the last 1x1.
            assert block.conv1.with_norm and block.conv1.with_activation
            assert block.conv2.with_norm and block.conv2.with_activation
            assert block.conv3.with_norm and not block.conv3.with_activation
            expected = cnn.strides[i] if j == 0 else (1, 1)
            assert block.conv2.conv.stride == expected
    assert cnn.feat_dim == 32 * width


def _pooling_modules(module):
    pools = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
             nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool2d,
             nn.AdaptiveMaxPool2d)
    return [n for n, m in module.named_modules() if isinstance(m, pools)]


def test_audio_resnet_paper_architecture(encoders):
    cnn = encoders['audio_resnet50'].eval().cnn
    assert isinstance(cnn, AudioResNet)
    stem = cnn.conv1.conv
    assert isinstance(stem, nn.Conv2d)
    assert stem.in_channels == 1 and stem.out_channels == 32
    assert stem.kernel_size == (9, 9) and stem.stride == (1, 1)
    assert stem.padding == (4, 4)
    assert cnn.conv1.with_norm and cnn.conv1.with_activation
    assert _pooling_modules(cnn) == []
    assert cnn.strides == ((1, 1), (2, 2), (2, 2), (2, 2))
    _assert_table3_stages(cnn)
    # Paper input: 128 mel bins x 220 frames (1 s); no stem pooling, so only
    # the three stage strides reduce it: 128/8 = 16, ceil(220/8) = 28.
    with torch.no_grad():
        out = cnn(torch.randn(1, 1, 128, 220))
    assert out.shape == (1, 1024, 16, 28)


def test_audio_resnet_release_architecture(encoders):
    cnn = encoders['audio_resnet50_release'].eval().cnn
    first, second = cnn.conv1
    assert first.conv.kernel_size == (9, 1) and first.conv.stride == (1, 1)
    assert (first.conv.in_channels, first.conv.out_channels) == (1, 32)
    assert second.conv.kernel_size == (1, 9) and second.conv.stride == (1, 1)
    assert (second.conv.in_channels, second.conv.out_channels) == (32, 32)
    assert all(m.with_norm and m.with_activation for m in (first, second))
    assert _pooling_modules(cnn) == []
    assert cnn.strides == ((2, 2), ) * 4
    _assert_table3_stages(cnn)
    with torch.no_grad():
        out = cnn(torch.randn(1, 1, 80, 128))
    assert out.shape == (1, 1024, 5, 8)


def test_audio_resnet_input_and_arg_errors():
    cnn = AudioResNet(base_channels=8)
    with pytest.raises(ValueError, match='rank 4'):
        cnn(torch.randn(1, 16, 16))
    with pytest.raises(ValueError, match='input channel'):
        cnn(torch.randn(1, 2, 16, 16))
    with pytest.raises(KeyError, match='depth'):
        AudioResNet(depth=34)
    with pytest.raises(ValueError, match='stem_type'):
        AudioResNet(stem_type='parallel')
    with pytest.raises(ValueError, match='one stride per stage'):
        AudioResNet(strides=(1, 2, 2))
    with pytest.raises(ValueError, match='odd'):
        AudioResNet(stem_kernel=8)


def test_audio_resnet_frozen_and_norm_eval():
    cnn = AudioResNet(base_channels=8, frozen_stages=2, norm_eval=False)
    cnn.train()
    for p in cnn.conv1.parameters():
        assert not p.requires_grad
    assert not any(p.requires_grad for p in cnn.layer2.parameters())
    assert all(p.requires_grad for p in cnn.layer3.parameters())
    assert not cnn.layer1[0].conv1.bn.training
    assert cnn.layer3[0].conv1.bn.training
    cnn = AudioResNet(base_channels=8, norm_eval=True).train()
    assert not any(m.training for m in cnn.modules()
                   if isinstance(m, nn.BatchNorm2d))
    assert cnn.training


def test_audio_resnet_init_weights():
    cnn = AudioResNet(base_channels=8)
    cnn.init_weights()
    for layer in (cnn.layer1, cnn.layer4):
        for block in layer:
            assert torch.all(block.conv3.bn.weight == 0)
            assert torch.all(block.conv1.bn.weight == 1)
    # Kaiming normal, fan-out: std sqrt(2 / (out * k * k)) for the stem.
    w = cnn.conv1.conv.weight
    assert abs(w.std().item() - math.sqrt(2 / (8 * 81))) < 0.02


def small_audio_encoder(**kwargs):
    """Narrow audio ResNet-50 (width 8) for training-mode comparisons."""
    cfg = dict(
        type='ClipSequenceEncoder',
        cnn=dict(type='AudioResNet', base_channels=8, strides=(1, 2, 2, 2)),
        feat_dim=256,
        embed_dim=32,
        clip_ndim=3)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_feat_dim_mismatch_raises(encoders):
    enc = small_audio_encoder(feat_dim=1024)
    with pytest.raises(ValueError, match='gives 256 channels.*feat_dim'):
        enc(torch.randn(1, 2, 1, 16, 16))
    # SlowFast configured as if only the slow pathway counted.
    cfg = load_base('visual_slowfast_r50')
    cfg['feat_dim'] = 2048
    enc = MODELS.build(cfg).eval()
    with pytest.raises(ValueError, match='gives 2304 channels'):
        with torch.no_grad():
            enc(torch.randn(1, 1, 3, 8, 16, 16))


def test_encoder_input_and_arg_errors():
    enc = small_audio_encoder()
    with pytest.raises(ValueError, match='rank 3'):
        enc(torch.randn(2, 1, 16, 16))  # (B, 1, F, T): the T axis is missing
    with pytest.raises(ValueError, match='clip of rank >= 1'):
        enc(torch.randn(2, 3))
    with pytest.raises(TypeError, match='tensor'):
        enc([torch.randn(1, 1, 1, 16, 16)])
    with pytest.raises(ValueError, match='valid_mask'):
        enc(torch.randn(1, 2, 1, 16, 16), valid_mask=torch.ones(2, 1).bool())
    with pytest.raises(ValueError, match='valid_mask'):
        enc(torch.randn(1, 2, 1, 16, 16), valid_mask=torch.ones(1, 2))
    with pytest.raises(ValueError, match='clip_chunk_size'):
        small_audio_encoder(clip_chunk_size=0)
    with pytest.raises(ValueError, match='feat_dim'):
        small_audio_encoder(feat_dim=0)
    with pytest.raises(TypeError, match='cnn'):
        ClipSequenceEncoder(cnn='AudioResNet', feat_dim=1024)


def test_encoder_accepts_module_and_plain_cnn_output():
    """A CNN given as a module, returning an already pooled (N, C) tensor."""
    cnn = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    enc = ClipSequenceEncoder(cnn=cnn, feat_dim=5, embed_dim=4)
    out = enc(torch.randn(3, 2, 3, 4))
    assert out.shape == (3, 2, 4)


def _record_batch_sizes(enc):
    sizes = []
    handle = enc.cnn.register_forward_pre_hook(
        lambda module, args: sizes.append(args[0].shape[0]))
    return sizes, handle


@pytest.mark.parametrize('name,chunk,expected_calls', [
    ('visual_slowfast_r50', 3, [3, 1]),
    ('audio_resnet50', 1, [1, 1, 1, 1]),
])
def test_chunking_matches_unchunked(encoders, name, chunk, expected_calls):
    enc = encoders[name].eval()
    x = torch.randn(*VARIANTS[name][1])
    with torch.no_grad():
        full = enc(x)
        enc.clip_chunk_size = chunk
        try:
            sizes, handle = _record_batch_sizes(enc)
            chunked = enc(x)
            handle.remove()
        finally:
            enc.clip_chunk_size = None
    assert sizes == expected_calls
    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-4)


def _train_step(enc, x, weight):
    enc.train()
    enc.zero_grad()
    out = enc(x)
    # LayerNorm outputs sum to a constant, so weight them before reducing.
    (out * weight).sum().backward()
    grads = {n: p.grad.clone() for n, p in enc.named_parameters()}
    stats = {n: b.clone() for n, b in enc.named_buffers()}
    return out.detach(), grads, stats


@pytest.mark.parametrize('chunk', [None, 2])
def test_with_cp_matches_plain_training_step(chunk):
    torch.manual_seed(1)
    plain = small_audio_encoder(clip_chunk_size=chunk)
    plain.init_weights()
    # Non-zero residual branches so that every weight gets a gradient.
    for m in plain.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    ckpt = copy.deepcopy(plain)
    ckpt.with_cp = True
    x = torch.randn(2, 2, 1, 16, 16)
    weight = torch.randn(2, 2, 32)

    out_p, grads_p, stats_p = _train_step(plain, x, weight)
    calls, handle = _record_batch_sizes(ckpt)
    out_c, grads_c, stats_c = _train_step(ckpt, x, weight)
    handle.remove()

    n_chunks = 1 if chunk is None else 2
    # Checkpointing re-runs the CNN once per chunk in the backward pass.
    assert len(calls) == 2 * n_chunks
    torch.testing.assert_close(out_c, out_p)
    assert grads_p.keys() == grads_c.keys()
    for n in grads_p:
        torch.testing.assert_close(grads_c[n], grads_p[n], msg=n)
    # BN running statistics are updated once per forward, not again by the
    # recomputation.
    for n in stats_p:
        torch.testing.assert_close(stats_c[n], stats_p[n], msg=n)
    counters = [v for n, v in stats_c.items() if 'num_batches_tracked' in n]
    assert counters and all(int(c) == n_chunks for c in counters)


def test_with_cp_inactive_without_autograd():
    enc = small_audio_encoder(with_cp=True).eval()
    calls, handle = _record_batch_sizes(enc)
    with torch.no_grad():
        enc(torch.randn(1, 2, 1, 16, 16))
    handle.remove()
    assert calls == [2]


@pytest.mark.parametrize('name', ['visual_slowfast_r50', 'audio_resnet50'])
def test_gradients_reach_every_cnn_parameter(name):
    """Full-size CNNs at their default (PyTorch) initialization."""
    torch.manual_seed(2)
    enc = MODELS.build(load_base(name)).train()
    x = torch.randn(1, *VARIANTS[name][1][1:])
    out = enc(x)
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in enc.cnn.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []
    assert enc.proj.weight.grad is not None


def test_valid_mask_skips_padding(encoders):
    enc = encoders['audio_resnet50'].eval()
    x = torch.randn(2, 3, 1, 16, 24)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    with torch.no_grad():
        full = enc(x)
        sizes, handle = _record_batch_sizes(enc)
        masked = enc(x, valid_mask=mask)
        none = enc(x, valid_mask=torch.zeros(2, 3, dtype=torch.bool))
        handle.remove()
    assert sizes == [3]  # only the valid clips ran; the all-False call none
    torch.testing.assert_close(masked[mask], full[mask], atol=1e-5, rtol=1e-4)
    assert torch.all(masked[~mask] == 0)
    assert none.shape == (2, 3, 768) and torch.all(none == 0)


def test_init_weights_reaches_the_cnn():
    enc = small_audio_encoder()
    block = enc.cnn.layer1[0]
    assert torch.all(block.conv3.bn.weight == 1)  # PyTorch default
    enc.init_weights()
    assert torch.all(block.conv3.bn.weight == 0)  # zero-init residual
    assert abs(enc.proj.weight.std().item() - 0.02) < 0.005
    assert torch.all(enc.proj.bias == 0)


@pytest.mark.parametrize('visual,audio', [
    ('visual_slowfast_r50', 'audio_resnet50'),
    ('visual_resnet3d_release', 'audio_resnet50_release'),
])
def test_base_configs_combine_by_inheritance(tmp_path, visual, audio):
    """A visual and an audio base file can be inherited together and their
    variables referenced from the child config."""
    child = tmp_path / 'child.py'
    child.write_text(
        f"_base_ = [{osp.join(CFG_DIR, visual + '.py')!r}, "
        f"{osp.join(CFG_DIR, audio + '.py')!r}]\n"
        'model = dict(visual={{_base_.visual_backbone}}, '
        'audio={{_base_.audio_backbone}})\n')
    cfg = Config.fromfile(str(child))
    assert cfg.model.visual.feat_dim == VARIANTS[visual][2]
    assert cfg.model.audio.feat_dim == 1024
    assert cfg.model.visual.embed_dim == cfg.model.audio.embed_dim == 768
    assert cfg.visual_backbone.type == 'ClipSequenceEncoder'
    enc = MODELS.build(cfg.model.audio)
    assert isinstance(enc.cnn, AudioResNet)
