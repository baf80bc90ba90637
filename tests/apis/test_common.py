"""Pieces shared by the train and test entry points."""
import pytest
from mmengine.config import Config

from avtoolkit.apis.common import apply_pretrained_option


def test_apply_pretrained_option():
    cfg = Config(dict(pretrained='a.pth', model=dict(pretrained=None)))
    apply_pretrained_option(cfg)
    assert cfg.model.pretrained == 'a.pth'
    cfg = Config(dict(pretrained=None, model=dict(pretrained='b.pth')))
    apply_pretrained_option(cfg)
    assert cfg.model.pretrained == 'b.pth'
    cfg = Config(dict(pretrained='a.pth', model=dict(pretrained='b.pth')))
    with pytest.raises(ValueError, match='disagree'):
        apply_pretrained_option(cfg)
