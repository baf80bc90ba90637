"""A work dir with an earlier run's results is never overwritten by
accident, and ``--resume`` finds what there is to resume."""
import os
import os.path as osp
import zlib
import shutil

import pytest
import torch

from avtoolkit.apis import train as train_api

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_CONFIG = osp.join(TESTS, 'data', 'configs', 'toy_runner.py')
EVERY_2 = ['default_hooks.checkpoint.interval=2']


def _unique(work_dir, name):
    """mmengine keeps one logger per experiment name and second; runs of
    different tests started in the same second would share a log file."""
    return f'{name}_{zlib.crc32(str(work_dir).encode()):08x}'


def _train(work_dir, name, *options, resume=None, extra=()):
    argv = [TOY_CONFIG, '--work-dir', str(work_dir), *extra]
    if resume is not None:
        argv += ['--resume'] + ([] if resume == 'auto' else [str(resume)])
    name = _unique(work_dir, name)
    return train_api.main(
        argv + ['--cfg-options', f'experiment_name={name}', *options])


@pytest.fixture(scope='module')
def _finished(tmp_path_factory):
    """A finished 4-iteration run: iter_2.pth, iter_4.pth,
    last_checkpoint."""
    work_dir = tmp_path_factory.mktemp('finished') / 'run'
    _train(work_dir, 'first', 'train_cfg.max_iters=4', *EVERY_2)
    return work_dir


@pytest.fixture
def earlier_run(_finished, tmp_path):
    """A copy of the finished run whose last_checkpoint names its own
    iter_4.pth."""
    work_dir = tmp_path / 'run'
    shutil.copytree(_finished, work_dir)
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_4.pth'))
    return work_dir


def _snapshot(work_dir):
    return {n: (work_dir / n).read_bytes() for n in os.listdir(work_dir)
            if osp.isfile(work_dir / n)}


def _log_text(work_dir):
    return ''.join(p.read_text() for p in sorted(work_dir.rglob('*.log')))


def _iteration(path):
    return torch.load(path, weights_only=True)['meta']['iter']


def test_fresh_run_refuses_a_work_dir_with_results(earlier_run):
    before = _snapshot(earlier_run)
    with pytest.raises(FileExistsError) as info:
        _train(earlier_run, 'second', 'train_cfg.max_iters=4', *EVERY_2)
    message = str(info.value)
    for part in (str(earlier_run), 'iter_2.pth', 'iter_4.pth',
                 'last_checkpoint', '--resume', '--overwrite'):
        assert part in message, part
    assert _snapshot(earlier_run) == before


def test_overwrite_starts_afresh(earlier_run):
    runner = _train(earlier_run, 'again', 'train_cfg.max_iters=2', *EVERY_2,
                    extra=['--overwrite'])
    assert runner.iter == 2
    assert sorted(n for n in os.listdir(earlier_run) if n.endswith('.pth')) \
        == ['iter_2.pth']
    assert (earlier_run / 'last_checkpoint').read_text() == str(
        earlier_run / 'iter_2.pth')
    assert 'deleted the earlier run' in _log_text(earlier_run)


@pytest.mark.parametrize('damage, resumed_at', [
    ('missing', 4), ('empty', 4), ('dangling', 4),
    ('missing, newest truncated', 2)])
def test_resume_without_a_usable_last_checkpoint(earlier_run, damage,
                                                 resumed_at):
    """``--resume`` with last_checkpoint missing, empty or naming a deleted
    file resumes from the newest readable checkpoint and says so."""
    record = earlier_run / 'last_checkpoint'
    if damage.startswith('missing'):
        record.unlink()
    elif damage == 'empty':
        record.write_text('')
    else:
        record.write_text(str(earlier_run / 'iter_9.pth'))
    if damage.endswith('truncated'):
        data = (earlier_run / 'iter_4.pth').read_bytes()
        (earlier_run / 'iter_4.pth').write_bytes(data[:len(data) // 2])
    runner = _train(earlier_run, 'resumed', 'train_cfg.max_iters=6',
                    *EVERY_2, resume='auto')
    assert runner.iter == 6
    log = _log_text(earlier_run)
    assert 'resuming from the newest readable checkpoint' in log
    assert f'resumed epoch: 0, iter: {resumed_at}' in log
    assert _iteration(earlier_run / 'iter_6.pth') == 6


def test_resume_with_nothing_to_resume_starts_fresh_and_says_so(tmp_path):
    runner = _train(tmp_path / 'new', 'nothing', 'train_cfg.max_iters=2',
                    resume='auto')
    assert runner.iter == 2
    log = _log_text(tmp_path / 'new')
    assert 'nothing to resume' in log and 'starting from scratch' in log


def test_resume_from_a_missing_file_is_an_error(tmp_path):
    missing = tmp_path / 'nope' / 'iter_8.pth'
    with pytest.raises(FileNotFoundError, match=str(missing)):
        _train(tmp_path / 'run', 'missing', 'train_cfg.max_iters=2',
               resume=missing)
    assert not osp.exists(tmp_path / 'run'), 'the run started anyway'


def test_resume_set_in_the_config_counts_as_resume(earlier_run):
    """``resume = True`` in a config file is mmengine's auto-resume; the
    work dir is not refused for it (nothing is trained here)."""
    from mmengine.config import Config

    from avtoolkit.engine.work_dir import prepare_work_dir
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.work_dir, cfg.resume = str(earlier_run), True
    prepare_work_dir(cfg, resume=None)
    assert cfg.resume is True
    assert cfg.load_from == str(earlier_run / 'iter_4.pth')
