"""Training hooks on the toy Runner job, and atomic checkpoint writes."""
import json
import os
import os.path as osp

import pytest
import torch

from avtoolkit.apis import train as train_api
from avtoolkit.engine import NonFiniteLossError

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
CONFIG = osp.join(DATA, 'configs', 'toy_runner_hooks.py')


@pytest.fixture(autouse=True)
def _toy_modules_importable(monkeypatch):
    monkeypatch.syspath_prepend(DATA)


def test_group_lr_and_throughput_are_logged(tmp_path):
    runner = train_api.main([CONFIG, '--work-dir', str(tmp_path),
                             '--cfg-options', 'experiment_name=lr',
                             'train_cfg.max_iters=10'])
    hub = runner.message_hub
    first = hub.get_scalar('train/first_lr').current()
    default = hub.get_scalar('train/default_lr').current()
    assert first == pytest.approx(0.1 * default)
    assert hub.get_scalar('train/samples_per_s').current() > 0
    # the json log carries the named rates too
    logs = [json.loads(line) for line in open(
        next(p for p in tmp_path.rglob('*.json') if p.name != 'scalars.json'))]
    assert any('first_lr' in entry for entry in logs)


def test_non_finite_loss_stops_before_saving(tmp_path):
    with pytest.raises(NonFiniteLossError) as info:
        train_api.main([CONFIG, '--work-dir', str(tmp_path),
                        '--cfg-options', 'experiment_name=nan',
                        'model.nan_after=7', 'train_cfg.max_iters=20'])
    message = str(info.value)
    assert 'iteration 8' in message and 'loss_mse=nan' in message
    assert 'iter_5.pth' in message
    assert osp.isfile(tmp_path / 'iter_5.pth')
    assert not osp.exists(tmp_path / 'iter_10.pth')
    state = torch.load(tmp_path / 'iter_5.pth', weights_only=True)
    assert all(torch.isfinite(v).all() for v in state['state_dict'].values())


def test_local_writes_are_atomic(tmp_path, monkeypatch):
    from mmengine.fileio import get_file_backend

    from avtoolkit.checkpoint.io import AtomicLocalBackend
    target = tmp_path / 'ckpt.pth'
    backend = get_file_backend(str(target))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b'good', str(target))

    def broken_fsync(fd):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', broken_fsync)
    with pytest.raises(OSError, match='disk full'):
        backend.put(b'partial new content', str(target))
    assert target.read_bytes() == b'good'
    assert os.listdir(tmp_path) == ['ckpt.pth']
