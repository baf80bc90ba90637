"""tools/train.py: train, checkpoint, resume, refuse unsafe checkpoints."""
import os.path as osp

import pytest
import torch

from avtoolkit.apis import train as train_api
from avtoolkit.checkpoint import UnsafeCheckpointError

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
CONFIG = osp.join(DATA, 'configs', 'toy_runner.py')


@pytest.fixture(autouse=True)
def _toy_modules_importable(monkeypatch):
    monkeypatch.syspath_prepend(DATA)


def _train(work_dir, name, *extra):
    argv = [CONFIG, '--work-dir', str(work_dir), '--cfg-options',
            f'experiment_name={name}', *extra]
    # --cfg-options takes every following key=value; keep options first.
    return train_api.main(argv)


def _weights(path):
    state = torch.load(path, map_location='cpu', weights_only=True)
    return state['state_dict'], state['meta']['iter']


def test_train_checkpoint_and_resume_matches_uninterrupted(tmp_path):
    # Uninterrupted: 30 iterations.
    _train(tmp_path / 'full', 'full', 'train_cfg.max_iters=30')
    # Interrupted after 20, then resumed (latest checkpoint) up to 30.
    _train(tmp_path / 'part', 'part1', 'train_cfg.max_iters=20')
    assert osp.isfile(tmp_path / 'part' / 'iter_20.pth')
    runner = train_api.main([
        CONFIG, '--work-dir', str(tmp_path / 'part'), '--resume',
        '--cfg-options', 'experiment_name=part2', 'train_cfg.max_iters=30'])
    assert runner.iter == 30
    full, full_iter = _weights(tmp_path / 'full' / 'iter_30.pth')
    resumed, resumed_iter = _weights(tmp_path / 'part' / 'iter_30.pth')
    assert full_iter == resumed_iter == 30
    for key in full:
        torch.testing.assert_close(full[key], resumed[key], rtol=0, atol=0)


def test_resume_from_explicit_path(tmp_path):
    _train(tmp_path, 'a', 'train_cfg.max_iters=10')
    runner = train_api.main([
        CONFIG, '--work-dir', str(tmp_path / 'b'), '--resume',
        str(tmp_path / 'iter_10.pth'), '--cfg-options', 'experiment_name=b',
        'train_cfg.max_iters=15'])
    assert runner.iter == 15


class Foreign:
    """Any class outside the checkpoint allowlist."""


def test_resume_refuses_foreign_pickle(tmp_path):
    _train(tmp_path, 'c', 'train_cfg.max_iters=10')
    ckpt = torch.load(tmp_path / 'iter_10.pth', weights_only=True)
    ckpt['foreign'] = Foreign()
    bad = tmp_path / 'tampered.pth'
    torch.save(ckpt, bad)
    with pytest.raises(UnsafeCheckpointError, match='tampered.pth'):
        train_api.main([CONFIG, '--work-dir', str(tmp_path / 'd'),
                        '--resume', str(bad), '--cfg-options',
                        'experiment_name=d', 'train_cfg.max_iters=12'])


def test_cli_options_reach_the_config(tmp_path):
    args = train_api.parse_args([
        CONFIG, '--amp', '--no-validate', '--seed', '3', '--deterministic',
        '--resume'])
    from avtoolkit.apis.common import load_config
    cfg = train_api.merge_args(load_config(args), args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype in ('bfloat16', 'float16')
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert cfg.randomness == dict(seed=3, deterministic=True)
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.work_dir.endswith(osp.join('work_dirs', 'toy_runner'))


def test_missing_config_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        train_api.main([str(tmp_path / 'nope.py')])
