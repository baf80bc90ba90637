"""NaN and infinity never reach a checkpoint named good.

Two ways in: a learning rate so high that the weights overflow (the toy job
with ``lr=1e6``, without any loss check), and an iteration whose loss is
finite while its gradients are NaN (a square root at zero, the way an
overflow in a backward pass looks to the loss check).
"""
import os
import os.path as osp
import zlib

import pytest
import torch

from avtoolkit.apis import train as train_api
from avtoolkit.registry import MODELS

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(TESTS, 'data')
TOY_CONFIG = osp.join(DATA, 'configs', 'toy_runner.py')
# The toy job with NonFiniteLossHook (and the other training hooks).
TOY_HOOKS_CONFIG = osp.join(DATA, 'configs', 'toy_runner_hooks.py')


def _register_model():
    from toy_modules import ToyRegressor

    @MODELS.register_module(force=True)
    class NanGradRegressor(ToyRegressor):
        """The toy regressor whose ``nan_grad_at``-th training loss gets a
        term that is 0 but whose gradient is NaN: sqrt(|0 * w|)."""

        def __init__(self, nan_grad_at=None, **kwargs):
            super().__init__(**kwargs)
            self.nan_grad_at = nan_grad_at

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = super().forward(inputs, data_samples, mode)
            if mode == 'loss' and self.steps == self.nan_grad_at:
                zero = (self.net[0].weight.sum() * 0).abs().sqrt()
                out['loss_mse'] = out['loss_mse'] + zero
            return out


def _unique(work_dir, name):
    """mmengine keeps one logger per experiment name and second; runs of
    different tests started in the same second would share a log file."""
    return f'{name}_{zlib.crc32(str(work_dir).encode()):08x}'


def _train(config, work_dir, name, *options):
    _register_model()
    name = _unique(work_dir, name)
    return train_api.main([config, '--work-dir', str(work_dir),
                           '--cfg-options', f'experiment_name={name}',
                           *options])


def _state(path):
    return torch.load(path, weights_only=True)['state_dict']


def _all_finite(path):
    return all(torch.isfinite(v).all() for v in _state(path).values()
               if v.is_floating_point())


NAN_GRAD_AT_3 = ['model.type=NanGradRegressor', 'model.nan_grad_at=3',
                 'default_hooks.checkpoint.interval=1',
                 'train_cfg.max_iters=5']


def test_weights_that_overflowed_are_not_saved(tmp_path):
    """lr=1e6 and no loss check: the checkpoint hook refuses the NaN
    weights, names the last good checkpoint and the first bad tensors."""
    with pytest.raises(RuntimeError) as info:
        _train(TOY_CONFIG, tmp_path, 'overflow',
               'optim_wrapper.optimizer.lr=1e6',
               'default_hooks.checkpoint.interval=1', 'train_cfg.max_iters=5')
    assert type(info.value).__name__ == 'NonFiniteParameterError'
    message = str(info.value)
    saved = sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth'))
    assert saved, 'no checkpoint at all'
    assert all(_all_finite(tmp_path / n) for n in saved)
    assert f'last good checkpoint is {tmp_path / saved[-1]}' in message
    assert 'net.0.weight' in message
    assert (tmp_path / 'last_checkpoint').read_text().endswith(saved[-1])


def test_nonfinite_gradients_skip_the_step_by_default(tmp_path):
    """Iteration 3 has a finite loss and NaN gradients: its update is
    skipped (the weights after it equal those before), counted, and the run
    goes on with finite checkpoints."""
    runner = _train(TOY_HOOKS_CONFIG, tmp_path, 'skip', *NAN_GRAD_AT_3)
    assert runner.iter == 5
    assert runner.message_hub.get_info('nonfinite_grad_steps') == 1
    for i in range(1, 6):
        assert _all_finite(tmp_path / f'iter_{i}.pth'), i
    before, after = _state(tmp_path / 'iter_2.pth'), _state(
        tmp_path / 'iter_3.pth')
    assert all(torch.equal(before[k], after[k]) for k in before)
    after_next = _state(tmp_path / 'iter_4.pth')
    assert not torch.equal(after['net.0.weight'], after_next['net.0.weight'])
    log = ''.join(p.read_text() for p in tmp_path.rglob('*.log'))
    assert 'Non-finite gradients at iteration 3' in log
    assert 'step was skipped' in log
    scalars = ''.join(p.read_text() for p in tmp_path.rglob('scalars.json'))
    assert 'train/nonfinite_grad_steps' in scalars


def test_nonfinite_gradients_stop_the_run_when_configured(tmp_path):
    with pytest.raises(RuntimeError) as info:
        _train(TOY_HOOKS_CONFIG, tmp_path, 'stop', *NAN_GRAD_AT_3,
               'custom_hooks.0.grad_action=stop')
    assert type(info.value).__name__ == 'NonFiniteGradientError'
    message = str(info.value)
    assert 'iteration 3' in message and 'net.0.weight' in message
    assert f'last good checkpoint is {tmp_path / "iter_2.pth"}' in message
    assert not osp.exists(tmp_path / 'iter_3.pth')
    assert _all_finite(tmp_path / 'iter_2.pth')
