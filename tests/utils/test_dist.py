"""avtoolkit.utils.dist: the gloo fallback and the end-of-run teardown."""
import socket

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.config import Config

from avtoolkit.utils.dist import finish_distributed, prepare_distributed


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def single_rank_env(monkeypatch):
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(_free_port()))
    yield
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def test_finish_without_a_group_does_nothing():
    assert not torch_dist.is_initialized()
    finish_distributed()
    assert not torch_dist.is_initialized()


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='the gloo fallback applies to CPU-only machines')
def test_prepare_then_finish_a_single_rank_gloo_group(single_rank_env):
    cfg = Config(dict(model=dict(type='X')))
    prepare_distributed(cfg, 'pytorch')
    assert torch_dist.is_initialized()
    assert torch_dist.get_backend() == 'gloo'
    assert cfg.env_cfg['dist_cfg']['backend'] == 'gloo'
    assert cfg.model_wrapper_cfg['device_ids'] is None
    finish_distributed()
    assert not torch_dist.is_initialized()


def test_prepare_rejects_an_unknown_launcher_without_cuda():
    if torch.cuda.is_available():
        pytest.skip('CUDA machines use mmengine as is')
    with pytest.raises(ValueError, match='Unsupported launcher'):
        prepare_distributed(Config(dict()), 'mpi')


def test_prepare_leaves_single_process_configs_alone():
    cfg = Config(dict(model=dict(type='X')))
    prepare_distributed(cfg, 'none')
    assert cfg.launcher == 'none'
    assert 'model_wrapper_cfg' not in cfg
