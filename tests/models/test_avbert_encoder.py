"""Tests of AVBERTEncoder (CNNs + AVBERT Transformers, no objective)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from torch import nn

from avtoolkit.models.algorithms import AVBERTEncoder
from avtoolkit.models.structures import AVOutputs
from avtoolkit.registry import MODELS
from toy_modules import TinyConv3d  # noqa: F401  (registers it)


B, T, D = 2, 4, 32
VIDEO_SHAPE = (3, 2, 8, 8)  # C, F, H, W
AUDIO_SHAPE = (1, 8, 10)  # 1, mel, frames


@MODELS.register_module(name='TinyClipEncoderForTest', force=True)
class TinyClipEncoder(nn.Module):
    """Stand-in clip sequence encoder: (B, T, *clip) -> (B, T, D)."""

    def __init__(self, clip_numel, embed_dim):
        super().__init__()
        self.proj = nn.Linear(clip_numel, embed_dim)

    def forward(self, x):
        return self.proj(x.flatten(2))


def neck_cfg(**kwargs):
    cfg = dict(type='SharedLowRankTransformer', embed_dim=D, num_layers=2,
               num_heads=4, ffn_dim=64, rank=8, max_seq_len=8)
    cfg.update(kwargs)
    return cfg


def encoder(**neck_kwargs):
    return MODELS.build(
        dict(type='AVBERTEncoder',
             visual_backbone=dict(type='TinyClipEncoderForTest',
                                  clip_numel=3 * 2 * 8 * 8, embed_dim=D),
             audio_backbone=dict(type='TinyClipEncoderForTest',
                                 clip_numel=8 * 10, embed_dim=D),
             neck=neck_cfg(**neck_kwargs)))


def batch():
    return dict(video=torch.randn(B, T, *VIDEO_SHAPE),
                audio=torch.randn(B, T, *AUDIO_SHAPE))


def test_tensor_mode_returns_all_embeddings():
    model = encoder()
    data = batch()
    out = model(data, mode='tensor')
    assert isinstance(out, AVOutputs)
    assert out.x_v.shape == (B, T, D) and out.x_a.shape == (B, T, D)
    assert out.y_v.shape == (B, T + 1, D) and out.y_a.shape == (B, T + 1, D)
    assert out.z.shape == (B, 2 * T + 2, D)
    torch.testing.assert_close(out.x_v, model.visual_backbone(data['video']))
    torch.testing.assert_close(out.x_a, model.audio_backbone(data['audio']))


def test_mask_is_passed_to_the_neck():
    model = encoder().eval()
    data = batch()
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, 2] = True
    out = model(data, mode='tensor', mask=mask)
    assert out.mask is mask
    # x stays the unmasked CNN embedding; the masked clip has no influence.
    changed = dict(data)
    changed['video'] = data['video'].clone()
    changed['video'][:, 2] = 5.0
    out2 = model(changed, mode='tensor', mask=mask)
    assert not torch.allclose(out.x_v, out2.x_v)
    torch.testing.assert_close(out.z, out2.z, rtol=0, atol=0)


def test_single_modality_inputs():
    model = encoder()
    data = batch()
    out = model({'video': data['video']})
    assert out.x_a is None and out.y_a is None
    assert out.z.shape == (B, T + 1, D) and out.z_modalities == ('visual', )
    out = model.extract_feat(audio=data['audio'])
    assert out.y_v is None and out.z_a.shape == (B, T + 1, D)
    early = encoder(fusion='early')
    with pytest.raises(ValueError, match='early fusion'):
        early({'audio': data['audio']})


def test_loss_and_predict_modes_point_to_the_right_models():
    model = encoder()
    with pytest.raises(ValueError, match='AVBERT algorithm'):
        model(batch(), mode='loss')
    with pytest.raises(ValueError, match='AVClassifier, VisualClassifier'):
        model(batch(), mode='predict')
    with pytest.raises(ValueError, match='invalid mode'):
        model(batch(), mode='features')


def test_bad_inputs():
    model = encoder()
    data = batch()
    with pytest.raises(ValueError, match='unknown input keys'):
        model({'video': data['video'], 'text': data['audio']})
    with pytest.raises(TypeError, match='dict'):
        model(data['video'])
    with pytest.raises(ValueError, match='video, audio or both'):
        model({})
    with pytest.raises(ValueError, match='at least one'):
        AVBERTEncoder(neck=neck_cfg())
    no_audio = MODELS.build(
        dict(type='AVBERTEncoder',
             visual_backbone=dict(type='TinyClipEncoderForTest',
                                  clip_numel=3 * 2 * 8 * 8, embed_dim=D),
             neck=neck_cfg()))
    with pytest.raises(ValueError, match='no audio backbone'):
        no_audio(data)
    wrong_dim = MODELS.build(
        dict(type='AVBERTEncoder',
             visual_backbone=dict(type='TinyClipEncoderForTest',
                                  clip_numel=3 * 2 * 8 * 8, embed_dim=D + 1),
             neck=neck_cfg()))
    with pytest.raises(ValueError, match=r'\(B, T, D\)'):
        wrong_dim({'video': data['video']})


def test_mmengine_forward_path_through_data_preprocessor():
    model = encoder()
    data = model.data_preprocessor(
        dict(inputs=batch(), data_samples=None), training=False)
    out = model._run_forward(data, mode='tensor')
    assert isinstance(out, AVOutputs) and out.z.shape == (B, 2 * T + 2, D)


def test_with_clip_sequence_encoder_and_backward():
    model = MODELS.build(
        dict(type='AVBERTEncoder',
             visual_backbone=dict(type='ClipSequenceEncoder',
                                  cnn=dict(type='TinyConv3d'),
                                  feat_dim=6, embed_dim=D),
             audio_backbone=dict(type='TinyClipEncoderForTest',
                                 clip_numel=8 * 10, embed_dim=D),
             neck=neck_cfg()))
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, 1] = True
    out = model(batch(), mask=mask)
    loss = sum((t * torch.randn_like(t)).sum()
               for t in (out.x_v, out.x_a, out.y_v, out.y_a, out.z))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_paper_model_config_builds(repo_root):
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs/_base_/models/avbert_mid_part.py'))
    # the paper model is the pretraining algorithm, a subclass of the encoder
    assert cfg.model.type == 'AVBERT'
    assert cfg.model.sampler.type == 'CANSSampler'
    assert cfg.model.visual_backbone.type == 'ClipSequenceEncoder'
    assert cfg.model.audio_backbone.type == 'ClipSequenceEncoder'
    assert cfg.model.neck.share_transformers == 'part'
    model = MODELS.build(cfg.model)
    assert isinstance(model, AVBERTEncoder)
    assert model.neck.embed_dim == 768
    assert model.visual_backbone.embed_dim == 768
    assert model.audio_backbone.embed_dim == 768
