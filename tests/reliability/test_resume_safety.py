"""Resuming with a config the checkpoint cannot follow is refused before
anything is loaded; the checkpoint's config is read as data."""
import os.path as osp
import shutil
import zlib

import pytest

from avtoolkit.apis import train as train_api

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_CONFIG = osp.join(TESTS, 'data', 'configs', 'toy_runner.py')
BASE = ['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2']


def _train(work_dir, name, *options, resume=False):
    name = f'{name}_{zlib.crc32(str(work_dir).encode()):08x}'
    argv = [TOY_CONFIG, '--work-dir', str(work_dir)]
    if resume:
        argv.append('--resume')
    return train_api.main(
        argv + ['--cfg-options', f'experiment_name={name}', *options])


@pytest.fixture(scope='module')
def _finished(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('finished') / 'run'
    _train(work_dir, 'first', *BASE)
    return work_dir


@pytest.fixture
def earlier_run(_finished, tmp_path):
    work_dir = tmp_path / 'run'
    shutil.copytree(_finished, work_dir)
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_2.pth'))
    return work_dir


def _log_text(work_dir):
    return ''.join(p.read_text() for p in sorted(work_dir.rglob('*.log')))


@pytest.mark.parametrize('option, key, old, new', [
    ('model.hidden=32', 'model.hidden', '16', '32'),
    ('train_dataloader.batch_size=8', 'train_dataloader.batch_size', '4',
     '8'),
])
def test_resume_refuses_a_changed_model_or_batch_size(earlier_run, option,
                                                      key, old, new):
    with pytest.raises(Exception) as info:
        _train(earlier_run, 'changed', 'train_cfg.max_iters=4', option,
               resume=True)
    assert type(info.value).__name__ == 'ResumeConfigError', info.value
    message = str(info.value)
    assert f'{key}: {old} (checkpoint) -> {new} (now)' in message
    assert str(earlier_run / 'iter_2.pth') in message
    assert 'load_from' in message and 'work dir' in message
    assert 'resumed epoch' not in _log_text(earlier_run)


def test_resume_warns_about_other_changes(earlier_run):
    runner = _train(earlier_run, 'lr', 'train_cfg.max_iters=4',
                    'optim_wrapper.optimizer.lr=0.05', resume=True)
    assert runner.iter == 4
    log = _log_text(earlier_run)
    assert 'optim_wrapper.optimizer.lr: 0.02 (checkpoint) -> 0.05 (now)' \
        in log


def test_allowed_model_change_resumes(earlier_run):
    runner = _train(earlier_run, 'allowed', 'train_cfg.max_iters=4',
                    'model.dropout=0.1',
                    'default_hooks.checkpoint.resume_allow_changes='
                    'model.dropout', resume=True)
    assert runner.iter == 4
    assert 'model.dropout: <not set> (checkpoint) -> 0.1 (now)' in \
        _log_text(earlier_run)


def test_checkpoint_config_text_is_never_executed(tmp_path):
    from avtoolkit.engine.config_diff import (Opaque, config_diff,
                                              parse_config_text)
    marker = tmp_path / 'ran'
    text = (f"__import__('pathlib').Path({str(marker)!r}).touch()\n"
            f"model = dict(type='M', hidden=16, act=__import__('os'), "
            f"shape=(1, -2), tags=['a'], extra={{'k': None}})\n"
            f"lr = -1e-3\n"
            f"path = open({str(marker)!r}, 'w')\n")
    config = parse_config_text(text)
    assert not marker.exists()
    assert config['model']['hidden'] == 16
    assert config['model']['shape'] == (1, -2)
    assert config['model']['extra'] == {'k': None}
    assert config['model']['act'] == Opaque("__import__('os')")
    assert config['lr'] == -1e-3 and isinstance(config['path'], Opaque)
    changed = parse_config_text(text.replace('hidden=16', 'hidden=32'))
    assert config_diff(config, changed) == [('model.hidden', 16, 32)]
