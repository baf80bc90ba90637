"""Registries: avtoolkit and mmaction2 types mix in one config, unprefixed."""
import torch
from mmengine.registry import DefaultScope
from torch import nn

from avtoolkit import registry as av_registry


def test_every_registry_is_a_child_of_mmaction():
    import mmaction.registry as mma
    pairs = {
        'MODELS': 'MODELS', 'DATASETS': 'DATASETS', 'TRANSFORMS': 'TRANSFORMS',
        'METRICS': 'METRICS', 'EVALUATOR': 'EVALUATOR', 'HOOKS': 'HOOKS',
        'LOOPS': 'LOOPS', 'OPTIMIZERS': 'OPTIMIZERS',
        'OPTIM_WRAPPERS': 'OPTIM_WRAPPERS',
        'OPTIM_WRAPPER_CONSTRUCTORS': 'OPTIM_WRAPPER_CONSTRUCTORS',
        'PARAM_SCHEDULERS': 'PARAM_SCHEDULERS', 'VISUALIZERS': 'VISUALIZERS',
        'VISBACKENDS': 'VISBACKENDS', 'DATA_SAMPLERS': 'DATA_SAMPLERS',
        'LOG_PROCESSORS': 'LOG_PROCESSORS',
        'WEIGHT_INITIALIZERS': 'WEIGHT_INITIALIZERS',
        'TASK_UTILS': 'TASK_UTILS', 'RUNNERS': 'RUNNERS',
        'MODEL_WRAPPERS': 'MODEL_WRAPPERS', 'FUNCTIONS': 'FUNCTION',
    }
    for ours, theirs in pairs.items():
        child = getattr(av_registry, ours)
        assert child.scope == 'avtoolkit', ours
        assert child.parent is getattr(mma, theirs), ours


def test_mmaction_and_avtoolkit_types_in_one_config():
    @av_registry.MODELS.register_module(force=True)
    class TinyTestHead(nn.Module):
        """A classification head registered only in the avtoolkit scope."""

        def __init__(self, in_channels, num_classes):
            super().__init__()
            self.fc = nn.Linear(in_channels, num_classes)

        def forward(self, feats, **kwargs):
            slow, fast = feats
            pooled = torch.cat([slow.mean((2, 3, 4)), fast.mean((2, 3, 4))], 1)
            return self.fc(pooled)

        def predict(self, feats, data_samples, **kwargs):
            return self(feats)

    cfg = dict(
        type='Recognizer3D',
        backbone=dict(type='ResNet3dSlowFast', pretrained=None,
                      resample_rate=4, speed_ratio=4, channel_ratio=8),
        cls_head=dict(type='TinyTestHead', in_channels=2304, num_classes=5))
    with DefaultScope.overwrite_default_scope('avtoolkit'):
        model = av_registry.MODELS.build(cfg)
    from mmaction.models import (ActionDataPreprocessor, Recognizer3D,
                                 ResNet3dSlowFast)
    assert type(model) is Recognizer3D
    assert type(model.backbone) is ResNet3dSlowFast
    assert type(model.cls_head) is TinyTestHead
    # Recognizer3D builds its default preprocessor from inside our scope.
    assert isinstance(model.data_preprocessor, ActionDataPreprocessor)
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 1, 3, 8, 32, 32))[0]
        scores = model.cls_head(feats)
    assert scores.shape == (1, 5)


def test_unknown_type_names_the_scope():
    import pytest
    with DefaultScope.overwrite_default_scope('avtoolkit'):
        with pytest.raises(KeyError, match='NoSuchModule'):
            av_registry.MODELS.build(dict(type='NoSuchModule'))


def test_default_runtime_uses_avtoolkit_scope(repo_root):
    from mmengine.config import Config
    cfg = Config.fromfile(f'{repo_root}/configs/_base_/default_runtime.py')
    assert cfg.default_scope == 'avtoolkit'
