"""Checkpoints survive a kill or a full disk during a save.

The toy job saves every iteration and keeps one checkpoint
(``max_keep_ckpts=1``), the setting where pruning before saving loses
everything.  Kills are real SIGKILLs of a training subprocess, sent by the
process to itself at an exact point of a save (a wrapper around
``os.replace`` / ``open`` in the subprocess, see ``KILLER``).  The full disk
is simulated in-process: the atomic writer fails with ``ENOSPC`` half-way
through the checkpoint file.
"""
import errno
import os
import os.path as osp
import zlib
import signal
import subprocess
import sys

import pytest
import torch

from avtoolkit.apis import train as train_api

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO = osp.dirname(TESTS)
DATA = osp.join(TESTS, 'data')
TOY_CONFIG = osp.join(DATA, 'configs', 'toy_runner.py')

KEEP_ONE = ['default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=1']

# Runs tools/train.py and SIGKILLs the process at the N-th call of
# ``os.replace`` (whose target) or ``open`` for writing (whose file) has a
# base name matching a pattern: KILL_AT="replace|open:PATTERN:N".
KILLER = r'''
import builtins, os, re, runpy, signal, sys
kind, pattern, nth = os.environ['KILL_AT'].rsplit(':', 2)
pattern, left = re.compile(pattern), [int(nth)]

def hit(path):
    if pattern.search(os.path.basename(os.fspath(path))):
        left[0] -= 1
        return left[0] == 0
    return False

if kind == 'replace':
    real_replace = os.replace
    def replace(src, dst, *args, **kwargs):
        if hit(dst):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
else:
    real_open = builtins.open
    def opener(file, mode='r', *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and 'w' in mode and hit(file):
            os.kill(os.getpid(), signal.SIGKILL)
        return handle
    builtins.open = opener
tool = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(tool, run_name='__main__')
'''


def _killed_run(tmp_path, work_dir, kill_at, *options):
    killer = tmp_path / 'killer.py'
    killer.write_text(KILLER)
    cmd = [sys.executable, str(killer), osp.join(REPO, 'tools', 'train.py'),
           TOY_CONFIG, '--work-dir', str(work_dir), '--cfg-options',
           'experiment_name=killed', *options]
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
               KILL_AT=kill_at)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (DATA, REPO, os.environ.get('PYTHONPATH')) if p)
    return subprocess.run(cmd, cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300)


def _unique(work_dir, name):
    """mmengine keeps one logger per experiment name and second; runs of
    different tests started in the same second would share a log file."""
    return f'{name}_{zlib.crc32(str(work_dir).encode()):08x}'


def _train(work_dir, name, *options, resume=False):
    argv = [TOY_CONFIG, '--work-dir', str(work_dir)]
    if resume:
        argv.append('--resume')
    name = _unique(work_dir, name)
    return train_api.main(
        argv + ['--cfg-options', f'experiment_name={name}', *options])


def _log_text(work_dir):
    return ''.join(p.read_text() for p in sorted(work_dir.rglob('*.log')))


def _temp_files(work_dir):
    return sorted(n for n in os.listdir(work_dir) if n.endswith('.tmp'))


def _iteration(path):
    return torch.load(path, weights_only=True)['meta']['iter']


def test_kill_during_save_with_max_keep_one_stays_resumable(tmp_path):
    """SIGKILL while ``.iter_3.pth.*.tmp`` is complete but not yet renamed:
    iter_2.pth must still exist and be what last_checkpoint names."""
    work_dir = tmp_path / 'run'
    killed = _killed_run(tmp_path, work_dir, r'replace:^iter_3\.pth$:1',
                         'train_cfg.max_iters=5', *KEEP_ONE)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert any(n.startswith('.iter_3.pth.') for n in _temp_files(work_dir))
    assert osp.isfile(work_dir / 'iter_2.pth')
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith(
        'iter_2.pth')
    # A 0-byte temporary file of an older killed save, as mmengine's
    # writer leaves them.
    (work_dir / '.iter_1.pth.k1ll3d.tmp').write_bytes(b'')

    runner = _train(work_dir, 'resumed', 'train_cfg.max_iters=5', *KEEP_ONE,
                    resume=True)
    assert runner.iter == 5
    assert _temp_files(work_dir) == []
    log = _log_text(work_dir)
    assert 'removed 2 temporary file(s)' in log
    assert sorted(n for n in os.listdir(work_dir) if n.endswith('.pth')) \
        == ['iter_5.pth']
    assert _iteration(work_dir / 'iter_5.pth') == 5


def test_kill_while_writing_last_checkpoint_stays_resumable(tmp_path):
    """SIGKILL right after the file of the third ``last_checkpoint`` write
    was opened (plain ``open`` truncates it to 0 bytes there)."""
    work_dir = tmp_path / 'run'
    killed = _killed_run(tmp_path, work_dir, 'open:last_checkpoint:3',
                         'train_cfg.max_iters=5', *KEEP_ONE)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    named = (work_dir / 'last_checkpoint').read_text().strip()
    assert named.endswith('iter_2.pth') and osp.isfile(named)

    runner = _train(work_dir, 'resumed', 'train_cfg.max_iters=5', *KEEP_ONE,
                    resume=True)
    assert runner.iter == 5
    assert 'resumed epoch: 0, iter: 2' in _log_text(work_dir)
    assert _temp_files(work_dir) == []
    assert _iteration(work_dir / 'iter_5.pth') == 5


def test_full_disk_during_save_keeps_the_last_checkpoint(tmp_path,
                                                         monkeypatch):
    """ENOSPC half-way through iter_3.pth (simulated in the atomic writer
    mmengine's local backend uses): iter_2.pth and last_checkpoint stay,
    the error says so, and the run resumes from there."""
    from avtoolkit.checkpoint import io
    from avtoolkit.utils.atomic import atomic_write
    real_write = io.write_bytes_atomic

    def full_disk(path, data):
        if osp.basename(path) != 'iter_3.pth':
            return real_write(path, data)
        with atomic_write(path, 'wb') as f:
            f.write(data[:len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    work_dir = tmp_path / 'run'
    monkeypatch.setattr(io, 'write_bytes_atomic', full_disk)
    with pytest.raises(OSError) as info:
        _train(work_dir, 'full', 'train_cfg.max_iters=5', *KEEP_ONE)
    assert info.value.errno == errno.ENOSPC
    assert 'iter_2.pth' in str(info.value) and 'kept' in str(info.value)
    monkeypatch.undo()
    assert osp.isfile(work_dir / 'iter_2.pth')
    assert not osp.exists(work_dir / 'iter_3.pth')
    assert _temp_files(work_dir) == []
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith(
        'iter_2.pth')

    runner = _train(work_dir, 'after', 'train_cfg.max_iters=5', *KEEP_ONE,
                    resume=True)
    assert runner.iter == 5 and _iteration(work_dir / 'iter_5.pth') == 5


class _StubRunner:
    """What the checkpoint hook uses of a Runner, for its best-checkpoint
    path (the toy job has no validation)."""

    def __init__(self, work_dir, fail_on=None):
        from mmengine.logging import MMLogger, MessageHub
        self.work_dir = str(work_dir)
        self.iter, self.epoch = 0, 0
        self.logger = MMLogger.get_instance('stub_runner_best')
        self.message_hub = MessageHub.get_instance('stub_runner_best')
        self.fail_on = fail_on

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        from avtoolkit.utils.atomic import write_bytes_atomic
        if filename == self.fail_on:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        write_bytes_atomic(osp.join(out_dir, filename), b'weights')


def test_best_checkpoint_is_replaced_only_after_the_new_one_is_saved(
        tmp_path):
    from avtoolkit.registry import HOOKS
    hook = HOOKS.build(dict(type='CheckpointHook', interval=-1,
                            by_epoch=False, save_best='acc', rule='greater'))
    runner = _StubRunner(tmp_path, fail_on='best_acc_iter_4.pth')
    hook.check_finite = False  # the stub has no model
    hook.before_train(runner)
    runner.iter = 2
    hook.after_val_epoch(runner, dict(acc=0.5))
    assert os.listdir(tmp_path) == ['best_acc_iter_2.pth']
    runner.iter = 4
    with pytest.raises(OSError):
        hook.after_val_epoch(runner, dict(acc=0.7))
    assert os.listdir(tmp_path) == ['best_acc_iter_2.pth']
    runner.fail_on, runner.iter = None, 6
    hook.after_val_epoch(runner, dict(acc=0.8))
    assert os.listdir(tmp_path) == ['best_acc_iter_6.pth']


@pytest.mark.parametrize('umask', [0o002, 0o077])
def test_checkpoint_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        _train(tmp_path / 'run', f'umask{umask:o}', 'train_cfg.max_iters=1',
               'default_hooks.checkpoint.interval=1')
    finally:
        os.umask(old)
    for name in ('iter_1.pth', 'last_checkpoint'):
        mode = os.stat(tmp_path / 'run' / name).st_mode & 0o777
        assert mode == 0o666 & ~umask, (name, oct(mode))
