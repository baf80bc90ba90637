"""Checkpoint conversion: avtoolkit -> mmaction2, authors' release -> ours."""
import os.path as osp
import sys
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from torch import nn

from avtoolkit.checkpoint import ConversionError, UnsafeCheckpointError
from avtoolkit.checkpoint.convert_official import (DEFAULT_RELEASE_CONFIGS,
                                                   build_target_model,
                                                   convert_official_state_dict,
                                                   is_cache_key,
                                                   official_cnn_table)
from avtoolkit.registry import MODELS


@pytest.fixture
def to_mmaction_main(load_tool):
    """``tools/convert/to_mmaction.py`` with an argv list (errors raise)."""
    return load_tool('convert/to_mmaction.py').run


@pytest.fixture
def from_official_main(load_tool):
    """``tools/convert/from_official.py`` with an argv list (errors raise)."""
    return load_tool('convert/from_official.py').run


def randomize_(module, seed):
    """Random BN affine parameters and statistics, so that a weight landing
    in the wrong place changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(
                    torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(
                    torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(
                    int(torch.randint(1, 1000, (1, ), generator=g)))
            elif isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) *
                               (2.0 / m.weight[0].numel())**0.5)
    return module.eval()


def config_path(repo_root, name):
    return osp.join(repo_root, 'configs', '_base_', 'models', name)


@pytest.fixture(scope='module')
def slowfast_encoder():
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(config_path(root, 'visual_slowfast_r50.py'))
    return randomize_(MODELS.build(cfg.visual_backbone), 0), cfg


# ===================================================== avtoolkit -> mmaction
# mmaction2's own SlowFast-R50 recognizer: its backbone has the settings of
# configs/_base_/models/visual_slowfast_r50.py (alpha 8, beta 1/8, Table 3
# kernels), the rest is written as a user of mmaction2 would.
MMACTION_SLOWFAST = dict(
    type='Recognizer3D',
    backbone=Config.fromfile(config_path(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
        'visual_slowfast_r50.py')).visual_backbone.cnn.to_dict(),
    cls_head=dict(
        type='SlowFastHead',
        in_channels=2304,
        num_classes=101,
        spatial_type='avg',
        dropout_ratio=0.5,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[114.75, 114.75, 114.75],
        std=[57.375, 57.375, 57.375],
        format_shape='NCTHW'))


def build_mmaction(cfg):
    from mmaction.registry import MODELS as MMACTION_MODELS
    with DefaultScope.overwrite_default_scope('mmaction'):
        return MMACTION_MODELS.build(cfg)


def write_avtoolkit_checkpoint(path, encoder, role, model_cfg=None,
                               other_cnn=True):
    """An avtoolkit-style checkpoint: the encoder under ``<role>_backbone.``
    plus weights of other parts that the export must leave out."""
    state = {f'{role}_backbone.{k}': v for k, v in
             encoder.state_dict().items()}
    state['neck.transformers.shared.layers.0.qkv.weight_u'] = torch.randn(
        3, 8, 4)
    other = 'audio' if role == 'visual' else 'visual'
    state[f'{other}_backbone.proj.weight'] = torch.randn(4, 3)
    if other_cnn:
        state[f'{other}_backbone.cnn.conv1.conv.weight'] = torch.randn(4, 1, 3)
    meta = dict(epoch=3, iter=300)
    if model_cfg is not None:
        meta['cfg'] = Config(dict(model=model_cfg)).pretty_text
    torch.save(dict(meta=meta, state_dict=state, optimizer={}), path)


def test_slowfast_loads_into_a_plain_mmaction_recognizer(tmp_path,
                                                         slowfast_encoder,
                                                         to_mmaction_main):
    encoder, cfg = slowfast_encoder
    ckpt = tmp_path / 'avtoolkit.pth'
    # the Runner stores the whole config in meta; the exporter reads the
    # visual CNN's config from there when --config is not given
    write_avtoolkit_checkpoint(
        ckpt, encoder, 'visual',
        dict(type='AVBERTEncoder', visual_backbone=cfg.visual_backbone))
    out = tmp_path / 'slowfast_mmaction.pth'
    meta = to_mmaction_main([str(ckpt), str(out)])
    assert meta['backbone_type'] == 'ResNet3dSlowFast'
    assert meta['source_epoch'] == 3

    # tensors and plain values only
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(out)) == []
    saved = torch.load(out, weights_only=True)
    ours = encoder.cnn.state_dict()
    assert set(saved['state_dict']) == {f'backbone.{k}' for k in ours}

    # 1) load_checkpoint on the recognizer's backbone, strictly: no key of
    #    mmaction2's ResNet3dSlowFast may be missing or unexpected
    recognizer = build_mmaction(MMACTION_SLOWFAST)
    load_checkpoint(recognizer.backbone, str(out), strict=True,
                    revise_keys=[(r'^backbone\.', '')])
    theirs = recognizer.backbone.state_dict()
    assert set(theirs) == set(ours)
    for key, value in theirs.items():
        assert torch.equal(value, ours[key]), key

    # 2) what the Runner does for load_from=OUT: load into the whole
    #    recognizer (non-strict, the head stays as initialised), after the
    #    model's own initialisation
    pretrained = build_mmaction(MMACTION_SLOWFAST)
    pretrained.init_weights()
    load_checkpoint(pretrained, str(out), strict=False,
                    revise_keys=[(r'^module\.', '')])
    for key, value in pretrained.backbone.state_dict().items():
        assert torch.equal(value, ours[key]), key

    # same forward: 1 clip, 8 frames (slow pathway gets 1), 32x32
    x = torch.randn(1, 3, 8, 32, 32,
                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = encoder.cnn.eval()(x)
        got = recognizer.backbone.eval()(x)
        got_init = pretrained.backbone.eval()(x)
    assert len(got) == len(expected) == 2
    for a, b, c in zip(expected, got, got_init):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
        assert torch.allclose(a, c, atol=1e-6, rtol=1e-5)
    # and it is not trivially equal: a fresh backbone disagrees
    fresh = build_mmaction(MMACTION_SLOWFAST).backbone.eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(x)[0], expected[0], atol=1e-3)


def test_export_with_explicit_config_and_no_prefix(tmp_path, slowfast_encoder,
                                                   repo_root, to_mmaction_main,
                                                   load_tool):
    encoder, _ = slowfast_encoder
    ckpt = tmp_path / 'avtoolkit.pth'
    write_avtoolkit_checkpoint(ckpt, encoder, 'visual')   # no stored config
    out = tmp_path / 'bare.pth'
    with pytest.raises(ConversionError, match='no --config given'):
        to_mmaction_main([str(ckpt), str(out)])
    # an mmaction2 recognizer config is accepted as the reference too
    rec_cfg = tmp_path / 'mmaction_slowfast.py'
    rec_cfg.write_text(f'model = {MMACTION_SLOWFAST!r}\n')
    to_mmaction_main([str(ckpt), str(out), '--config', str(rec_cfg),
                      '--prefix', ''])
    saved = torch.load(out, weights_only=True)['state_dict']
    assert set(saved) == set(encoder.cnn.state_dict())
    # what the backbone's own pretrained= argument loads (strictly)
    backbone = build_mmaction(dict(MMACTION_SLOWFAST['backbone'],
                                   pretrained=str(out)))
    backbone.init_weights()
    assert torch.equal(backbone.slow_path.conv1.conv.weight,
                       encoder.cnn.slow_path.conv1.conv.weight)

    # OUT is never overwritten silently
    with pytest.raises(FileExistsError, match='--force'):
        to_mmaction_main([str(ckpt), str(out), '--config', str(rec_cfg)])
    assert load_tool('convert/to_mmaction.py').main(
        [str(ckpt), str(out), '--config', str(rec_cfg)]) == 1
    to_mmaction_main([str(ckpt), str(out), '--config', str(rec_cfg),
                      '--force'])
    assert 'backbone.slow_path.conv1.conv.weight' in torch.load(
        out, weights_only=True)['state_dict']

    # a checkpoint whose CNN does not match the config is refused
    rec_cfg.write_text(
        'model = ' + repr(dict(MMACTION_SLOWFAST, backbone=dict(
            MMACTION_SLOWFAST['backbone'],
            fast_pathway=dict(MMACTION_SLOWFAST['backbone']['fast_pathway'],
                              base_channels=16)))) + '\n')
    with pytest.raises(ConversionError, match='shape mismatches'):
        to_mmaction_main([str(ckpt), str(tmp_path / 'x.pth'), '--config',
                          str(rec_cfg)])


def test_release_resnet3d_loads_into_mmaction(tmp_path, repo_root,
                                              to_mmaction_main):
    path = config_path(repo_root, 'visual_resnet3d_release.py')
    encoder = randomize_(MODELS.build(Config.fromfile(path).visual_backbone),
                         4)
    ckpt = tmp_path / 'release.pth'
    write_avtoolkit_checkpoint(ckpt, encoder, 'visual')
    out = tmp_path / 'r3d.pth'
    meta = to_mmaction_main([str(ckpt), str(out), '--config', path])
    assert meta['backbone_type'] == 'ResNet3d'
    # the backbone_cfg stored in meta is what an mmaction2 config needs
    recognizer = build_mmaction(dict(
        type='Recognizer3D', backbone=meta['backbone_cfg'],
        cls_head=dict(type='I3DHead', in_channels=2048, num_classes=101)))
    load_checkpoint(recognizer.backbone, str(out), strict=True,
                    revise_keys=[(r'^backbone\.', '')])
    x = torch.randn(1, 3, 8, 32, 32,
                    generator=torch.Generator().manual_seed(5))
    recognizer.backbone.eval()   # (ResNet3d.train returns None)
    with torch.no_grad():
        assert torch.allclose(recognizer.backbone(x), encoder.cnn(x),
                              atol=1e-6, rtol=1e-5)


def test_audio_export_is_refused(tmp_path, repo_root, to_mmaction_main):
    path = config_path(repo_root, 'audio_resnet50.py')
    encoder = MODELS.build(Config.fromfile(path).audio_backbone)
    ckpt = tmp_path / 'avtoolkit_audio.pth'
    write_avtoolkit_checkpoint(ckpt, encoder, 'audio', other_cnn=False)
    out = tmp_path / 'audio.pth'
    with pytest.raises(ConversionError, match='not an mmaction2 class.*'
                       'ResNetAudio differs'):
        to_mmaction_main([str(ckpt), str(out), '--modality', 'audio',
                          '--config', path])
    # against mmaction2's own audio recognizer the structures differ
    rec_cfg = tmp_path / 'mmaction_audio.py'
    rec_cfg.write_text(
        "model = dict(type='RecognizerAudio', backbone=dict(type="
        "'ResNetAudio', depth=50, pretrained=None, in_channels=1), "
        "cls_head=dict(type='TSNAudioHead', num_classes=50, "
        "in_channels=1024))\n")
    with pytest.raises(ConversionError, match='does not match the '
                       'ResNetAudio'):
        to_mmaction_main([str(ckpt), str(out), '--modality', 'audio',
                          '--config', str(rec_cfg)])
    # and there is no visual CNN in this checkpoint
    with pytest.raises(ConversionError, match='no "visual_backbone.cnn'):
        to_mmaction_main([str(ckpt), str(out), '--config',
                          config_path(repo_root, 'visual_slowfast_r50.py')])
    assert not out.exists()


class Foreign:
    """A class outside the checkpoint allowlist."""


@pytest.mark.parametrize('tool', ['convert/to_mmaction.py',
                                  'convert/from_official.py'])
def test_unusable_inputs_are_one_line_errors(tmp_path, load_tool, capsys,
                                             tool):
    """Both converters read through the one reader: a missing, empty or
    foreign-pickle file is a one-line error naming it; only the tool that
    has --trust suggests it."""
    main = load_tool(tool).main
    out = str(tmp_path / 'out.pth')
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    foreign = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': Foreign()},
               foreign)
    for source, expected in ((tmp_path / 'absent.pth', 'not found'),
                             (empty, 'not a readable checkpoint'),
                             (foreign, 'Foreign')):
        assert main([str(source), out]) == 1
        err = capsys.readouterr().err
        assert err.startswith('error: ') and err.count('\n') == 1
        assert str(source) in err and expected in err
        if source == foreign:
            assert ('--trust' in err) == tool.endswith('from_official.py')
    assert not osp.exists(out)


# =============================================== authors' release -> ours
VISUAL = 'avbert.visual_conv.'
AUDIO = 'avbert.audio_conv.'


@pytest.fixture(scope='module')
def release_model():
    return randomize_(build_target_model(DEFAULT_RELEASE_CONFIGS), 1)


def official_state(model):
    """Official-named tensors made from ``model`` with the table in reverse,
    plus Transformer weights and ``_B`` caches as the release has them."""
    state = {}
    for role, prefix in (('visual', VISUAL), ('audio', AUDIO)):
        cnn = getattr(model, f'{role}_backbone').cnn
        ours = cnn.state_dict()
        for official, key in official_cnn_table(cnn, role).items():
            state[prefix + official] = ours[key].clone()
    g = torch.Generator().manual_seed(2)
    state['avbert.visual_proj.weight'] = torch.randn(768, 2048, generator=g)
    state['avbert.transformer.layer.attention.query.U.weight'] = torch.randn(
        768, 128, generator=g)
    state['avbert.transformer.layer.attention.query.orthogonal_B'] = \
        torch.randn(3, 128, 128, generator=g)
    state['avbert.transformer.layer.ffn.dense.orthogonal_B'] = torch.randn(
        3, 128, 128, generator=g)
    return state


# Written by hand from PySlowFast's module names, independently of the table:
# official key (and its shape in the release) -> our key.
SPOT_CHECKS = {
    VISUAL + 's1.pathway0_stem.conv.weight':
    ((64, 3, 5, 7, 7), 'visual_backbone.cnn.conv1.conv.weight'),
    VISUAL + 's3.pathway0_res2.branch2.b_bn.running_var':
    ((128, ), 'visual_backbone.cnn.layer2.2.conv2.bn.running_var'),
    VISUAL + 's4.pathway0_res0.branch2.a.weight':
    ((256, 512, 3, 1, 1), 'visual_backbone.cnn.layer3.0.conv1.conv.weight'),
    VISUAL + 's5.pathway0_res0.branch1.weight':
    ((2048, 1024, 1, 1, 1), 'visual_backbone.cnn.layer4.0.downsample.conv.'
     'weight'),
    VISUAL + 's4.pathway0_res5.branch2.c_bn.num_batches_tracked':
    ((), 'visual_backbone.cnn.layer3.5.conv3.bn.num_batches_tracked'),
    AUDIO + 's1.pathway0_stem.conv_f.weight':
    ((32, 1, 9, 1), 'audio_backbone.cnn.conv1.0.conv.weight'),
    AUDIO + 's1.pathway0_stem.bn_t.bias':
    ((32, ), 'audio_backbone.cnn.conv1.1.bn.bias'),
    AUDIO + 's2.pathway0_res0.branch1_bn.weight':
    ((128, ), 'audio_backbone.cnn.layer1.0.downsample.bn.weight'),
    AUDIO + 's5.pathway0_res2.branch2.c.weight':
    ((1024, 256, 1, 1), 'audio_backbone.cnn.layer4.2.conv3.conv.weight'),
}


@pytest.fixture
def fake_yacs(monkeypatch):
    """A module standing in for yacs.config, with a dict-based CfgNode."""
    module = types.ModuleType('fake_release_config')

    class CfgNode(dict):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.__dict__['__immutable__'] = False

    class Unknown:
        pass

    for cls in (CfgNode, Unknown):
        cls.__module__ = module.__name__
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def write_official(path, state, cfg_node, entry='model_state', extra=None):
    checkpoint = {
        'epoch': 100,
        entry: state,
        'optimizer_state': {'state': {}, 'param_groups': [
            {'lr': 0.1, 'params': [0, 1]}]},
        'cfg': cfg_node,
    }
    checkpoint.update(extra or {})
    torch.save(checkpoint, path)


def test_official_checkpoint_lands_in_our_release_model(tmp_path,
                                                        release_model,
                                                        fake_yacs, monkeypatch,
                                                        from_official_main):
    state = official_state(release_model)
    # hand-written correspondences, with fresh distinctive tensors
    marks = {}
    g = torch.Generator().manual_seed(3)
    for official, (shape, ours) in SPOT_CHECKS.items():
        assert official in state, official
        assert tuple(state[official].shape) == shape, official
        if official.endswith('num_batches_tracked'):
            mark = torch.tensor(123456)
        else:
            mark = torch.randn(shape, generator=g) + 7.0
        state[official] = mark
        marks[ours] = mark
    ckpt = tmp_path / 'checkpoint.pyth'
    write_official(ckpt, state, fake_yacs.CfgNode(
        TRAIN=fake_yacs.CfgNode(BATCH_SIZE=32), NUM_GPUS=8))
    # the package that defined the config class is not installed here
    monkeypatch.delitem(sys.modules, fake_yacs.__name__)

    out = tmp_path / 'avtoolkit_release.pth'
    meta = from_official_main([str(ckpt), str(out)])
    saved = torch.load(out, weights_only=True)
    converted = saved['state_dict']

    ours = release_model.state_dict()
    cnn_keys = [k for k in ours if '.cnn.' in k]
    assert set(converted) == set(cnn_keys)
    for key in cnn_keys:
        expected = marks.get(key, ours[key])
        assert torch.equal(converted[key], expected), key

    projections = sorted(f'{role}_backbone.{m}.{p}'
                         for role in ('visual', 'audio')
                         for m in ('proj', 'norm') for p in ('weight', 'bias'))
    assert meta['missing_keys'] == projections
    assert meta['unexpected_keys'] == [
        'avbert.transformer.layer.attention.query.U.weight',
        'avbert.visual_proj.weight'
    ]
    assert meta['dropped_cache_keys'] == [
        'avbert.transformer.layer.attention.query.orthogonal_B',
        'avbert.transformer.layer.ffn.dense.orthogonal_B'
    ]
    assert meta['cnn_prefixes'] == {'visual': VISUAL, 'audio': AUDIO}
    assert meta['source_entry'] == 'model_state'
    assert meta['source_epoch'] == 100

    # loads into a fresh model with exactly the reported keys missing
    fresh = build_target_model(DEFAULT_RELEASE_CONFIGS)
    result = fresh.load_state_dict(converted, strict=False)
    assert sorted(result.missing_keys) == projections
    assert result.unexpected_keys == []

    # the projection, under a name found out later, via a rename
    out2 = tmp_path / 'with_proj.pth'
    meta = from_official_main([
        str(ckpt), str(out2), '--rename-prefix',
        'avbert.visual_proj.=visual_backbone.proj.'
    ])
    assert 'visual_backbone.proj.weight' not in meta['missing_keys']
    assert 'avbert.visual_proj.weight' not in meta['unexpected_keys']
    assert torch.equal(
        torch.load(out2, weights_only=True)['state_dict']
        ['visual_backbone.proj.weight'], state['avbert.visual_proj.weight'])

    with pytest.raises(FileExistsError):
        from_official_main([str(ckpt), str(out)])


def test_unknown_objects_need_trust(tmp_path, release_model, fake_yacs, capsys,
                                    from_official_main):
    state = {f'module.{k}': v for k, v in official_state(
        release_model).items()}
    ckpt = tmp_path / 'odd.pyth'
    write_official(ckpt, state, fake_yacs.CfgNode(), entry='state_dict',
                   extra={'odd': fake_yacs.Unknown()})
    out = tmp_path / 'out.pth'
    with pytest.raises(UnsafeCheckpointError,
                       match='fake_release_config.Unknown.*--trust'):
        from_official_main([str(ckpt), str(out)])
    assert not out.exists()
    meta = from_official_main([str(ckpt), str(out), '--trust',
                               '--print-table'])
    assert meta['source_entry'] == 'state_dict'   # and module. stripped
    assert meta['num_mapped'] == len(
        [k for k in release_model.state_dict() if '.cnn.' in k])
    printed = capsys.readouterr().out
    assert (VISUAL + 's1.pathway0_stem.conv.weight -> '
            'visual_backbone.cnn.conv1.conv.weight') in printed


def test_trust_without_the_config_package(tmp_path, release_model, fake_yacs,
                                          monkeypatch, from_official_main):
    ckpt = tmp_path / 'c.pyth'
    write_official(ckpt, official_state(release_model), fake_yacs.CfgNode())
    monkeypatch.delitem(sys.modules, fake_yacs.__name__)
    with pytest.raises(ConversionError, match='yacs'):
        from_official_main([str(ckpt), str(tmp_path / 'o.pth'), '--trust'])


def test_bad_official_checkpoints_are_refused(tmp_path, release_model,
                                              slowfast_encoder):
    state = official_state(release_model)
    state[VISUAL + 's1.pathway0_stem.conv.weight'] = torch.zeros(64, 3, 1, 7,
                                                                 7)
    with pytest.raises(ConversionError, match='do not fit.*conv1.conv.weight'):
        convert_official_state_dict(state, release_model)
    # nothing recognisable
    with pytest.raises(ConversionError, match='no official weight'):
        convert_official_state_dict({'foo.weight': torch.zeros(1)},
                                    release_model)
    # the paper's SlowFast has no released weights to map from
    holder = nn.Module()
    holder.visual_backbone = slowfast_encoder[0]
    with pytest.raises(ConversionError, match='single-pathway'):
        convert_official_state_dict(official_state(release_model), holder)
    # two candidate visual CNNs: the user must choose
    doubled = dict(state)
    doubled['other.s1.pathway0_stem.conv.weight'] = torch.zeros(
        64, 3, 5, 7, 7)
    with pytest.raises(ConversionError, match='--visual-prefix'):
        convert_official_state_dict(doubled, release_model)


def test_cache_names():
    assert is_cache_key('avbert.layer.attention.query.orthogonal_B')
    assert is_cache_key('a.b._B')
    assert is_cache_key('a.b.sigma_B2')
    assert not is_cache_key('s2.pathway0_res0.branch2.b_bn.weight')
    assert not is_cache_key('a.B_matrix')
