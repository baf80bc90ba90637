"""Weak cases: settings and files that used to fail with errors naming
nothing now name the key or the file."""
import pytest
import torch

from tool_runs import TOY_CONFIG

from avtoolkit.apis import train as train_api


def _train(tmp_path, *options, resume=None):
    argv = [TOY_CONFIG, '--work-dir', str(tmp_path / 'work')]
    if resume:
        argv += ['--resume', resume]
    return train_api.main(argv + ['--cfg-options', 'train_cfg.max_iters=2',
                                  *options])


@pytest.mark.parametrize('value, rule', [
    ('fast', 'not a finite number'),  # was: '<' not supported ...
    ('1e38', 'overflows'),  # was: value cannot be converted to type float
    ('-0.1', 'must be positive'),
])
def test_unusable_learning_rate_names_the_key(tmp_path, value, rule):
    with pytest.raises(ValueError, match=f'optim_wrapper.optimizer.lr='
                       f'.*{rule}'):
        _train(tmp_path, 'optim_wrapper.optimizer.type=AdamW',
               f'optim_wrapper.optimizer.lr={value}')


def test_unusable_betas_name_the_key(tmp_path):
    with pytest.raises(ValueError, match=r'optimizer.betas=.*\[0, 1\)'):
        _train(tmp_path, 'optim_wrapper.optimizer.type=AdamW',
               'optim_wrapper.optimizer.betas=[0.9,1.5]')


@pytest.mark.parametrize('how', ['resume', 'load_from'])
def test_empty_checkpoint_names_the_file(tmp_path, how):
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match='empty.pth.*empty file'):
        if how == 'resume':
            _train(tmp_path, resume=str(empty))
        else:
            _train(tmp_path, f'load_from={empty}')


def test_truncated_checkpoint_names_the_file(tmp_path):
    whole = tmp_path / 'whole.pth'
    torch.save(dict(state_dict={'net.0.weight': torch.randn(16, 8)}), whole)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(ValueError, match='cut.pth.*not a readable'):
        _train(tmp_path, f'load_from={cut}')
