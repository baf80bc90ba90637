"""AVBERT: the pretraining algorithm on a tiny configuration."""
import copy

import pytest
import torch

from avtoolkit.models.utils import MaskGenerator
from avtoolkit.registry import MODELS

B, T = 4, 4


@pytest.fixture(scope='module')
def tiny_cfg(narrow_avbert_cfg):
    return narrow_avbert_cfg(num_negatives=6)


def build(cfg, **neck):
    cfg = copy.deepcopy(cfg)
    cfg.neck.update(neck)
    return MODELS.build(cfg)


def batch(seed=0):
    """Clips with a coarse per-clip pattern plus noise.

    Pure noise would give every clip nearly the same globally pooled CNN
    feature; the coarse pattern makes clips tell apart.
    """
    g = torch.Generator().manual_seed(seed)
    video = 2 * torch.randn(B, T, 3, 1, 4, 4, generator=g)
    video = video.repeat_interleave(4, -1).repeat_interleave(4, -2)
    video = video.expand(-1, -1, -1, 8, -1, -1) + 0.5 * torch.randn(
        B, T, 3, 8, 16, 16, generator=g)
    audio = 2 * torch.randn(B, T, 1, 4, 1, generator=g)
    audio = audio.repeat_interleave(8, -2).expand(-1, -1, -1, -1, 51) + \
        0.5 * torch.randn(B, T, 1, 32, 51, generator=g)
    return dict(video=video.contiguous(), audio=audio.contiguous())


def test_loss_terms_and_accuracies(tiny_cfg):
    torch.manual_seed(0)
    model = build(tiny_cfg)
    losses = model(batch(), mode='loss')
    expected = {f'{p}_mep_{s}' for p in ('loss', 'acc') for s in 'v a av'.split()}
    expected |= {f'{p}_cpp_{c}' for p in ('loss', 'acc') for c in ('uni',
                                                                'multi')}
    assert set(losses) == expected
    for key, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), key
        assert value.dtype == torch.float32, key
    # accuracies are logged, not trained
    assert not any(v.requires_grad for k, v in losses.items()
                   if k.startswith('acc'))


def test_every_parameter_gets_a_gradient(tiny_cfg):
    torch.manual_seed(0)
    model = build(tiny_cfg)
    losses = model(batch(), mode='loss')
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_mismatched_pass_equals_separate_runs(tiny_cfg):
    torch.manual_seed(0)
    neck = build(tiny_cfg).neck.eval()
    g = torch.Generator().manual_seed(1)
    x_v = torch.randn(B, T, 32, generator=g)
    x_a = torch.randn(B, T, 32, generator=g)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, 1] = True
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        joint = neck(x_v, x_a, mask=mask, mismatch_perm=perm)
        matched = neck(x_v, x_a, mask=mask)
        # y_a of the permuted videos, fed with the visual side unpermuted
        permuted = neck(x_v, x_a[perm], mask=mask)
    torch.testing.assert_close(joint.z, matched.z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(joint.z_mismatched, permuted.z, atol=1e-5,
                               rtol=1e-5)
    assert not torch.allclose(joint.z_mismatched, joint.z, atol=1e-3)


@pytest.mark.parametrize('fusion,streams,classifiers', [
    ('early', ('av', ), ('multi', )),
    ('late', ('v', 'a'), ('uni', )),
])
def test_other_fusions(tiny_cfg, fusion, streams, classifiers):
    cfg = copy.deepcopy(tiny_cfg)
    cfg.neck.fusion = fusion
    cfg.mep_head.streams = streams
    cfg.cpp_head.classifiers = classifiers
    losses = MODELS.build(cfg)(batch(), mode='loss')
    assert {k for k in losses if k.startswith('loss')} == \
        {f'loss_mep_{s}' for s in streams} | \
        {f'loss_cpp_{c}' for c in classifiers}
    # the default heads ask for outputs this fusion does not produce
    cfg = copy.deepcopy(tiny_cfg)
    cfg.neck.fusion = fusion
    with pytest.raises(ValueError, match='fusion has no output'):
        MODELS.build(cfg)


def test_mask_generator_is_built_through_the_registry(tiny_cfg):
    # The configs give no type: MaskGenerator is the default.
    assert 'type' not in tiny_cfg.mask_generator
    masker = build(tiny_cfg).mask_generator
    assert type(masker) is MaskGenerator
    assert (masker.ratio, masker.mode, masker.min_masked) == (0.15, 'fixed',
                                                              1)
    cfg = copy.deepcopy(tiny_cfg)
    cfg.mask_generator = dict(type='MaskGenerator', ratio=0.5,
                              mode='bernoulli')
    masker = MODELS.build(cfg).mask_generator
    assert (masker.ratio, masker.mode) == (0.5, 'bernoulli')
    cfg.mask_generator = None
    assert MODELS.build(cfg).mask_generator.ratio == 0.15
    cfg.mask_generator = dict(type='NoSuchMaskGenerator')
    with pytest.raises(KeyError, match='NoSuchMaskGenerator'):
        MODELS.build(cfg)


def test_bad_inputs(tiny_cfg):
    model = build(tiny_cfg)
    with pytest.raises(ValueError, match='audio'):
        model(dict(video=batch()['video']), mode='loss')
    single = {k: v[:1] for k, v in batch().items()}
    with pytest.raises(ValueError, match='two sequences'):
        model(single, mode='loss')


def test_predict_names_the_models_that_predict(tiny_cfg):
    """AVBERT has no prediction head; its error names the fine-tuning
    classifiers (it used to send the user to AVBERT itself)."""
    with pytest.raises(ValueError, match='^AVBERT has no prediction head.*'
                       'AVClassifier, VisualClassifier'):
        build(tiny_cfg)(batch(), mode='predict')


@pytest.mark.parametrize('seed', [0])
def test_tiny_model_overfits_a_fixed_batch(tiny_cfg, seed):
    """Every loss term falls and both accuracies rise well above chance.

    An overfit-one-batch check: the batch and its random draws (masks,
    negatives, mismatched pairs) are the same at every step, and the
    optimizer is the recipe's AMSGrad variant of AdamW.  With fresh draws at
    every step and plain AdamW, whether the visual MEP loss fell within 300
    steps depended on float rounding, not on the seed: torch's CPU kernel
    level (ATEN_CPU_CAPABILITY default vs avx2) and the thread count gave
    last/first ratios from 0.47 to 0.93 against the 0.85 bound for the same
    seed, and fixed draws with plain AdamW up to 1.21 (measurements in
    docs/reliability.md).
    """
    torch.manual_seed(seed)
    cfg = copy.deepcopy(tiny_cfg)
    cfg.neck.update(dropout=0.0, attn_dropout=0.0)
    model = MODELS.build(cfg)
    data = batch(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, amsgrad=True)
    history = []
    for _ in range(300):
        torch.manual_seed(1000 + seed)  # the same draws at every step
        losses = model(data, mode='loss')
        loss = sum(v for k, v in losses.items() if k.startswith('loss'))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append({k: float(v) for k, v in losses.items()})

    def mean(key, part):
        return sum(h[key] for h in part) / len(part)

    first, last = history[:20], history[-20:]
    for key in history[0]:
        if key.startswith('loss'):
            assert mean(key, last) < 0.85 * mean(key, first), key
    chance_mep = 1 / (cfg.sampler.num_negatives + 1)
    for stream in ('v', 'a', 'av'):
        assert mean(f'acc_mep_{stream}', last) > 2 * chance_mep, stream
    for classifier in ('uni', 'multi'):
        assert mean(f'acc_cpp_{classifier}', last) > 0.75, classifier
