"""A misspelt hook argument stops the run before it starts, naming the
config key and the nearest valid name."""
import os.path as osp

import pytest

from avtoolkit.apis import train as train_api

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(TESTS, 'data')
TOY_CONFIG = osp.join(DATA, 'configs', 'toy_runner.py')
TOY_HOOKS_CONFIG = osp.join(DATA, 'configs', 'toy_runner_hooks.py')


def _train(config, work_dir, *options):
    return train_api.main([config, '--work-dir', str(work_dir),
                           '--cfg-options', 'train_cfg.max_iters=12',
                           *options])


def test_misspelt_checkpoint_argument_fails_before_training(tmp_path):
    """CheckpointHook forwards unknown arguments to save_checkpoint, so
    mmengine fails only at the first save, after the training ran."""
    with pytest.raises(TypeError) as info:
        _train(TOY_CONFIG, tmp_path / 'run',
               'default_hooks.checkpoint.intervall=1')
    message = str(info.value)
    assert 'default_hooks.checkpoint.intervall' in message
    assert 'did you mean "interval"' in message
    assert not osp.exists(tmp_path / 'run'), 'the run started anyway'


def test_misspelt_custom_hook_argument_names_its_key(tmp_path):
    with pytest.raises(TypeError) as info:
        _train(TOY_HOOKS_CONFIG, tmp_path / 'run', 'custom_hooks.0.patienc=2')
    message = str(info.value)
    assert 'custom_hooks[0].patienc' in message
    assert 'NonFiniteLossHook' in message
    assert 'did you mean "patience"' in message


def test_accepted_arguments_follow_the_signatures():
    from mmengine.hooks import CheckpointHook, LoggerHook
    from mmengine.runner import Runner

    from avtoolkit.engine.hook_args import hook_arguments

    class MyRunner(Runner):
        def save_checkpoint(self, out_dir, filename, *args, tag=None,
                            **kwargs):
            return super().save_checkpoint(out_dir, filename, *args,
                                           **kwargs)

    accepted = hook_arguments(CheckpointHook)
    assert {'interval', 'max_keep_ckpts', 'save_best'} <= accepted
    assert 'tag' not in accepted
    assert 'tag' in hook_arguments(CheckpointHook, MyRunner)
    assert 'interval' in hook_arguments(LoggerHook)

    from avtoolkit.registry import HOOKS
    safe = hook_arguments(HOOKS.get('SafeCheckpointHook'))
    assert {'interval', 'check_finite', 'resume_allow_changes'} <= safe
