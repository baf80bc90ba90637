"""AVClassifier, VisualClassifier and MLPClsHead: shapes of the V/A/M
settings, losses, view pooling, and loading pretraining checkpoints."""
import copy
import os.path as osp

import pytest
import torch
from mmaction.structures import ActionDataSample
from mmengine.config import Config

from avtoolkit.checkpoint import WeightsMismatchError, read_state_dict
from avtoolkit.models.classifiers import AVClassifier, VisualClassifier
from avtoolkit.models.heads.cls_head import MLPClsHead
from avtoolkit.registry import MODELS

B, T, V, K = 2, 3, 3, 5
D = 128  # width of the tiny neck


pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def tiny_cfg(repo_root):
    """The tiny AVBERT pretraining model config (configs/_base_)."""
    path = osp.join(repo_root, 'configs', '_base_', 'models', 'avbert_tiny.py')
    return Config.fromfile(path).model.to_dict()


def classifier_cfg(tiny_cfg, **kwargs):
    cfg = {k: copy.deepcopy(v) for k, v in tiny_cfg.items()
           if k not in ('sampler', 'mep_head', 'cpp_head', 'mask_generator')}
    cfg.update(type='AVClassifier', num_classes=K)
    cfg.update(kwargs)
    return cfg


def video(batch=B, views=None, frames=8, size=32):
    shape = (batch, ) + ((views, ) if views else ()) + (T, 3, frames, size,
                                                       size)
    return torch.randn(shape)


def audio(batch=B):
    return torch.randn(batch, T, 1, 64, 101)


def samples(labels):
    return [ActionDataSample().set_gt_labels(label) for label in labels]


@pytest.fixture(scope='module')
def pretrain_ckpt(tiny_cfg, tmp_path_factory):
    """A tiny AVBERT pretraining checkpoint as mmengine writes it
    (``state_dict`` + ``meta``), and the model it came from."""
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(tiny_cfg))
    model.init_weights()
    path = str(tmp_path_factory.mktemp('ckpt') / 'iter_10.pth')
    torch.save(dict(meta=dict(iter=10), state_dict=model.state_dict()), path)
    return path, model


# ------------------------------------------------------------------- head
def test_mlp_head_shapes_and_depth():
    head = MLPClsHead(16, 7, hidden_channels=32, num_layers=2, act='relu',
                      dropout=0.0)
    assert head(torch.randn(4, 16)).shape == (4, 7)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == \
        [(16, 32), (32, 32), (32, 7)]
    linear = MLPClsHead(16, 7, num_layers=0)
    assert [m for m in linear.modules()
            if isinstance(m, torch.nn.Linear)] == [linear.fc_cls]
    with pytest.raises(ValueError, match='expects \\(N, 16\\)'):
        head(torch.randn(4, 15))
    with pytest.raises(ValueError, match='act'):
        MLPClsHead(16, 7, act='tanh')
    with pytest.raises(ValueError, match='num_layers'):
        MLPClsHead(16, 7, num_layers=-1)
    with pytest.raises(ValueError, match='norm'):
        MLPClsHead(16, 7, norm='group')
    with pytest.raises(ValueError, match='norm'):
        MLPClsHead(16, 7, norm=dict(type='BN1d'))
    assert isinstance(MLPClsHead(16, 7, norm=True).mlp[0], torch.nn.LayerNorm)
    assert len(MLPClsHead(16, 7, norm=False).mlp) == 6


_PATTERNS = torch.randn(4, 16, generator=torch.Generator().manual_seed(7))
_OFFSET = 3.0 * torch.randn(16, generator=torch.Generator().manual_seed(8))


def _offset_features(n, generator):
    """Class signal a few percent of a large offset shared by every sample
    (what pooled encoder features look like)."""
    labels = torch.arange(n) % 4
    x = _OFFSET + 0.05 * _PATTERNS[labels] + 0.01 * torch.randn(
        n, 16, generator=generator)
    return x, labels


def _fit_head(norm, steps=150):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = _offset_features(64, g)
    head = MLPClsHead(16, 4, hidden_channels=32, num_layers=2, norm=norm,
                      dropout=0.0)
    opt = torch.optim.AdamW(head.parameters(), lr=5e-3)
    for _ in range(steps):
        idx = torch.randint(0, 64, (8, ), generator=g)
        loss = torch.nn.functional.cross_entropy(head(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    xt, yt = _offset_features(32, torch.Generator().manual_seed(1))
    with torch.no_grad():
        return (head(xt).argmax(1) == yt).float().mean().item(), head, xt


def test_mlp_head_batch_norm_learns_a_signal_under_a_shared_offset():
    acc_batch, head, xt = _fit_head('batch')
    acc_none, _, _ = _fit_head(None)
    assert isinstance(head.mlp[0], torch.nn.BatchNorm1d)
    assert head.mlp[0].weight is None            # no affine parameters
    assert acc_batch >= 0.9
    assert acc_none <= 0.5                       # stuck on the offset
    # test time uses the running statistics: a sample's logits do not
    # depend on the rest of its batch
    with torch.no_grad():
        assert torch.allclose(head(xt)[:1], head(xt[:1]), atol=1e-6)


# -------------------------------------------------------- V / A / M shapes
@pytest.mark.parametrize('modality,feature_dim', [('visual', D),
                                                  ('audio', D),
                                                  ('multimodal', 2 * D)])
def test_settings_forward_shapes(tiny_cfg, modality, feature_dim):
    torch.manual_seed(0)
    model = MODELS.build(classifier_cfg(tiny_cfg, modality=modality))
    assert isinstance(model, AVClassifier)
    assert model.feat_dim == feature_dim
    assert (model.visual_backbone is None) == (modality == 'audio')
    assert (model.audio_backbone is None) == (modality == 'visual')
    # only the inputs of the setting are given
    inputs = {}
    if modality != 'audio':
        inputs['video'] = video()
    if modality != 'visual':
        inputs['audio'] = audio()
    model.train()
    losses = model(inputs, samples([1, 4]), mode='loss')
    assert losses['loss_cls'].shape == () and losses['loss_cls'] > 0
    losses['loss_cls'].backward()
    assert model.head.fc_cls.weight.grad is not None
    no_grad = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    if modality == 'multimodal':
        # every trainable parameter takes part (DDP needs no unused-parameter
        # search); the mask embeddings of pretraining are frozen
        assert no_grad == []
        assert not model.neck.embeddings['visual_tokens'].mask_token \
            .requires_grad
    else:
        assert no_grad and all(n.startswith('neck.embeddings.')
                               for n in no_grad)
    model.eval()
    with torch.no_grad():
        out = model(inputs, samples([1, 4]), mode='predict')
    assert len(out) == B
    for sample in out:
        score = sample.pred_scores.item
        assert score.shape == (K, )
        assert torch.allclose(score.sum(), torch.tensor(1.0), atol=1e-5)
        assert sample.pred_labels.item.item() == int(score.argmax())


def test_unimodal_settings_ignore_the_other_input(tiny_cfg):
    torch.manual_seed(0)
    model = MODELS.build(classifier_cfg(tiny_cfg, modality='visual'))
    model.eval()
    vid = video()
    with torch.no_grad():
        alone = model({'video': vid}, mode='predict')
        both = model({'video': vid, 'audio': audio()}, mode='predict')
    for a, b in zip(alone, both):
        assert torch.allclose(a.pred_scores.item, b.pred_scores.item)
    with pytest.raises(ValueError, match="needs inputs \\['video'\\]"):
        model({'audio': audio()}, mode='predict')
    multimodal = MODELS.build(classifier_cfg(tiny_cfg))
    with pytest.raises(ValueError, match="needs inputs \\['audio'\\]"):
        multimodal({'video': vid}, mode='predict')


def test_views_are_pooled_per_sample(tiny_cfg):
    """(B, V, T, ...) video: every view is scored with the shared audio, and
    predict pools the view probabilities (mean or max)."""
    torch.manual_seed(0)
    views = video(views=V)
    aud = audio()
    for reduce in ('mean', 'max'):
        model = MODELS.build(classifier_cfg(tiny_cfg, view_reduce=reduce))
        model.eval()
        with torch.no_grad():
            pooled = model({'video': views, 'audio': aud}, mode='predict')
            per_view = torch.stack([
                torch.stack([
                    s.pred_scores.item for s in model(
                        {'video': views[:, v], 'audio': aud},
                        mode='predict')
                ]) for v in range(V)
            ], dim=1)                                   # (B, V, K)
        expected = per_view.mean(1) if reduce == 'mean' else \
            per_view.max(1).values
        got = torch.stack([s.pred_scores.item for s in pooled])
        assert torch.allclose(got, expected, atol=1e-5)


def test_multi_label_loss_and_scores(tiny_cfg):
    torch.manual_seed(0)
    model = MODELS.build(classifier_cfg(tiny_cfg, multi_label=True,
                                        view_reduce='max'))
    inputs = {'video': video(), 'audio': audio()}
    onehot = torch.zeros(B, K)
    onehot[0, [0, 3]] = 1
    onehot[1, 2] = 1
    # one-hot float labels (the datasets' multi_class format) and index
    # lists give the same targets
    model.eval()
    with torch.no_grad():
        hot = model(inputs, samples(list(onehot)), mode='loss')
        idx = model(inputs, samples([[0, 3], [2]]), mode='loss')
        logits, _ = model._encode_views(inputs)
    assert torch.allclose(hot['loss_cls'], idx['loss_cls'])
    assert torch.allclose(
        hot['loss_cls'],
        torch.nn.functional.binary_cross_entropy_with_logits(logits, onehot))
    assert 'acc_top1' not in hot
    with torch.no_grad():
        out = model(inputs, mode='predict')
    score = out[0].pred_scores.item
    assert score.shape == (K, ) and ((score > 0) & (score < 1)).all()
    with pytest.raises(ValueError, match='5 entries'):
        model(inputs, samples([torch.ones(4), torch.ones(4)]), mode='loss')


def test_bad_arguments(tiny_cfg):
    with pytest.raises(ValueError, match='modality'):
        MODELS.build(classifier_cfg(tiny_cfg, modality='both'))
    with pytest.raises(ValueError, match='unknown features'):
        MODELS.build(classifier_cfg(tiny_cfg, feature='cls'))
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(classifier_cfg(tiny_cfg, num_classes=None))
    with pytest.raises(ValueError, match='view_reduce'):
        MODELS.build(classifier_cfg(tiny_cfg, view_reduce='median'))
    with pytest.raises(ValueError, match='audio_backbone'):
        MODELS.build(classifier_cfg(tiny_cfg, audio_backbone=None))
    late = classifier_cfg(tiny_cfg)
    late['neck'] = dict(late['neck'], fusion='late')
    with pytest.raises(ValueError, match='late-fusion'):
        MODELS.build(late)
    model = MODELS.build(classifier_cfg(tiny_cfg))
    with pytest.raises(ValueError, match='one class index'):
        model({'video': video(), 'audio': audio()}, samples([[1, 2], [3, 0]]),
              mode='loss')
    with pytest.raises(ValueError, match='outside'):
        model({'video': video(), 'audio': audio()}, samples([1, K]),
              mode='loss')


def test_feature_choice_sets_the_head_width(tiny_cfg):
    model = MODELS.build(classifier_cfg(
        tiny_cfg, modality='visual', feature=['y_summary', 'x_mean']))
    assert model.feat_dim == 2 * D
    assert model.head.in_channels == 2 * D
    model.eval()
    with torch.no_grad():
        out = model({'video': video()}, mode='predict')
    assert out[0].pred_scores.item.shape == (K, )


# --------------------------------------------------------- weight loading
@pytest.mark.parametrize('modality', ['multimodal', 'visual', 'audio'])
def test_pretrained_encoder_loads_without_missing_keys(
        tiny_cfg, pretrain_ckpt, modality):
    path, source = pretrain_ckpt
    model = MODELS.build(classifier_cfg(tiny_cfg, modality=modality,
                                        pretrained=path))
    head_before = model.head.fc_cls.weight.detach().clone()
    model.init_weights()
    report = model.load_pretrained(path)
    assert report.missing == [] and report.shape_mismatch == []
    assert report.unexpected == []
    # every encoder tensor of the model came from the checkpoint
    own = model.state_dict()
    encoder = [k for k in own if k.startswith(model.encoder_prefixes)]
    assert sorted(report.loaded) == sorted(encoder)
    reference = source.state_dict()
    for key in encoder:
        assert torch.equal(own[key], reference[key]), key
    # the pretraining heads (and, for V/A, the unused backbone) are ignored
    assert any(k.startswith('mep_head.') for k in report.ignored)
    assert any(k.startswith('cpp_head.') for k in report.ignored)
    if modality == 'visual':
        assert any(k.startswith('audio_backbone.') for k in report.ignored)
    # the classifier is not in the checkpoint: it keeps its own init
    assert not any(k.startswith('head.') for k in report.loaded)
    assert head_before.shape == model.head.fc_cls.weight.shape


def test_pretrained_checkpoint_missing_encoder_keys_is_refused(
        tiny_cfg, pretrain_ckpt, tmp_path):
    path, _ = pretrain_ckpt
    state = read_state_dict(path)
    partial = {k: v for k, v in state.items() if not k.startswith('neck.')}
    bad = str(tmp_path / 'no_neck.pth')
    torch.save({'state_dict': partial}, bad)
    model = MODELS.build(classifier_cfg(tiny_cfg, pretrained=bad))
    with pytest.raises(WeightsMismatchError, match='missing.*neck\\.'):
        model.init_weights()
    # non-strict: loads the backbones and reports the missing neck
    report = model.load_pretrained(bad, strict=False)
    assert report.missing and all(k.startswith('neck.')
                                  for k in report.missing)
    with pytest.raises(FileNotFoundError, match='absent.pth'):
        model.load_pretrained(str(tmp_path / 'absent.pth'))


def test_pretrained_checkpoint_of_another_architecture_is_refused(
        tiny_cfg, pretrain_ckpt, tmp_path):
    """Shapes that differ mean another architecture: refused even when not
    strict (the model is left as it was); keys the model lacks under the
    encoder prefixes are refused when strict, reported otherwise."""
    path, _ = pretrain_ckpt
    state = read_state_dict(path)
    name = next(k for k in state if k.startswith('neck.')
                and state[k].dim() == 2)
    wider = dict(state)
    wider[name] = torch.zeros(state[name].shape[0] + 1, state[name].shape[1])
    bad = str(tmp_path / 'wider.pth')
    torch.save({'state_dict': wider}, bad)
    model = MODELS.build(classifier_cfg(tiny_cfg))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for strict in (True, False):
        with pytest.raises(WeightsMismatchError, match='shapes.*wider.pth'
                           '|wider.pth.*shapes') as info:
            model.load_pretrained(bad, strict=strict)
        assert info.value.report.shape_mismatch[0].startswith(name)
    assert all(torch.equal(v, before[k])
               for k, v in model.state_dict().items())

    extra = dict(state)
    extra['neck.not_in_the_model.weight'] = torch.zeros(3)
    torch.save({'state_dict': extra}, bad)
    with pytest.raises(WeightsMismatchError,
                       match='unexpected.*neck.not_in_the_model'):
        model.load_pretrained(bad)
    report = model.load_pretrained(bad, strict=False)
    assert report.unexpected == ['neck.not_in_the_model.weight']
    assert report.missing == []


def test_mmengine_pretrained_init_cfg(tiny_cfg, pretrain_ckpt):
    path, source = pretrain_ckpt
    model = MODELS.build(classifier_cfg(
        tiny_cfg, init_cfg=dict(type='Pretrained', checkpoint=path)))
    model.init_weights()
    own, ref = model.state_dict(), source.state_dict()
    encoder = [k for k in own if k.startswith(model.encoder_prefixes)]
    assert encoder and all(torch.equal(own[k], ref[k]) for k in encoder)


# ------------------------------------------------------ VisualClassifier
def visual_cfg(tiny_cfg, **kwargs):
    cfg = dict(type='VisualClassifier',
               backbone=copy.deepcopy(tiny_cfg['visual_backbone']['cnn']),
               in_channels=tiny_cfg['visual_backbone']['feat_dim'],
               num_classes=K)
    cfg.update(kwargs)
    return cfg


def test_visual_classifier_views_and_loss(tiny_cfg):
    torch.manual_seed(0)
    model = MODELS.build(visual_cfg(tiny_cfg, clip_chunk_size=4))
    assert isinstance(model, VisualClassifier)
    model.eval()
    clips = video(views=V, frames=16)                  # (B, V, T, ...)
    with torch.no_grad():
        logits = model({'video': clips})
        out = model({'video': clips}, mode='predict')
    assert logits.shape == (B * V * T, K)
    expected = logits.softmax(1).view(B, V * T, K).mean(1)
    got = torch.stack([s.pred_scores.item for s in out])
    assert torch.allclose(got, expected, atol=1e-5)
    model.train()
    single = torch.randn(B, 1, 3, 16, 32, 32)           # training layout
    losses = model({'video': single}, samples([0, 3]), mode='loss')
    assert losses['loss_cls'] > 0 and 'acc_top1' in losses
    with pytest.raises(ValueError, match='inputs\\["video"\\] only'):
        model({'video': single, 'audio': audio()}, mode='predict')
    with pytest.raises(ValueError, match='in_channels'):
        bad = MODELS.build(visual_cfg(tiny_cfg, in_channels=81))
        bad({'video': single})


def test_visual_classifier_loads_the_pretrained_cnn(tiny_cfg, pretrain_ckpt):
    path, source = pretrain_ckpt
    model = MODELS.build(visual_cfg(tiny_cfg, pretrained=path))
    model.init_weights()
    report = model.load_pretrained(path)
    assert report.missing == [] and report.shape_mismatch == []
    own, ref = model.state_dict(), source.state_dict()
    cnn_keys = [k for k in own if k.startswith('cnn.')]
    assert sorted(report.loaded) == sorted(cnn_keys)
    for key in cnn_keys:
        assert torch.equal(own[key], ref['visual_backbone.' + key]), key
    # the projection into the Transformers and everything else is ignored
    assert 'visual_backbone.proj.weight' in report.ignored


def test_demo_configs_build_and_load_the_demo_checkpoint(repo_root,
                                                         pretrain_ckpt):
    path, _ = pretrain_ckpt
    for name in ('ucf101_visual_ft', 'kinetics_sounds_mid', 'charades_mid',
                 'kinetics_sounds_mid_audio', 'charades_mid_visual'):
        cfg = Config.fromfile(osp.join(repo_root, 'configs', 'downstream',
                                       'demo', name + '.py'))
        assert cfg.pretrained is None and cfg.model.pretrained is None
        cfg.model.pretrained = path
        model = MODELS.build(cfg.model)
        report = model.load_pretrained(path)
        assert report.missing == [] and report.loaded, name
