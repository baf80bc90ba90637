"""``--cfg-options`` overrides of top-level config variables (break 9)."""
import pytest

from tool_runs import TOY_CONFIG

from avtoolkit.apis import train as train_api


def _config_with_variables(tmp_path):
    """The toy job with two top-level variables that other entries use, as
    the pretraining configs use ``max_iters`` and ``data_root``."""
    path = tmp_path / 'with_variables.py'
    path.write_text(
        f'_base_ = [{TOY_CONFIG!r}]\n'
        'max_iters = 6\n'
        'num_samples = 64\n'
        "train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,\n"
        '                 val_interval=1000)\n'
        'train_dataloader = dict(dataset=dict(num_samples=num_samples))\n')
    return str(path)


def _train(tmp_path, *options):
    return train_api.main([_config_with_variables(tmp_path), '--work-dir',
                           str(tmp_path / 'work'), '--cfg-options',
                           *options])


def test_overriding_a_used_variable_takes_effect_or_is_refused(tmp_path):
    """``max_iters=2`` used to train all the iterations of the file."""
    try:
        runner = _train(tmp_path, 'max_iters=2')
    except ValueError as err:
        message = str(err)
        assert 'max_iters=2' in message and 'train_cfg.max_iters' in message
    else:
        assert runner.iter == 2, 'the override was ignored'


def test_a_top_level_key_nothing_reads_is_refused(tmp_path):
    with pytest.raises(ValueError, match='max_iter=2.*did you mean '
                       'max_iters'):
        _train(tmp_path, 'max_iter=2')


def test_dotted_and_unused_overrides_still_apply(tmp_path):
    runner = _train(tmp_path, 'train_cfg.max_iters=3',
                    'randomness.seed=1')
    assert runner.iter == 3
