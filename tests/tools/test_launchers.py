"""The torchrun and Slurm launchers build the command lines their headers
promise (run with ``PYTHON=echo`` and a fake ``srun`` on the PATH)."""
import os
import os.path as osp
import subprocess


def run(repo_root, tmp_path, script, *args, **env):
    fake = tmp_path / 'srun'
    fake.write_text('#!/bin/sh\necho srun "$@"\n')
    fake.chmod(0o755)
    full_env = dict(os.environ, PYTHON='echo',
                    PATH=f'{tmp_path}:{os.environ["PATH"]}', **env)
    return subprocess.run(['bash', osp.join(repo_root, 'tools', script),
                           *args], capture_output=True, text=True,
                          env=full_env)


def test_torchrun_launchers(repo_root, tmp_path):
    out = run(repo_root, tmp_path, 'dist_train.sh', 'c.py', '4', '--amp',
              NNODES='2', NODE_RANK='1', PORT='1234')
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
        '--nproc_per_node=4', '--master_addr=127.0.0.1',
        '--master_port=1234', osp.join(repo_root, 'tools', 'train.py'),
        'c.py', '--launcher', 'pytorch', '--amp']
    out = run(repo_root, tmp_path, 'dist_test.sh', 'c.py', 'k.pth', '2',
              '--dump', 'x.pkl')
    assert out.stdout.split()[-7:] == [
        osp.join(repo_root, 'tools', 'test.py'), 'c.py', 'k.pth',
        '--launcher', 'pytorch', '--dump', 'x.pkl']


def test_slurm_launchers(repo_root, tmp_path):
    out = run(repo_root, tmp_path, 'slurm_train.sh', 'part', 'job', 'c.py',
              '--amp', GPUS='16', SRUN_ARGS='--exclusive')
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    assert words[:3] == ['srun', '-p', 'part']
    assert '--ntasks=16' in words and '--exclusive' in words
    assert words[-6:] == ['-u', osp.join(repo_root, 'tools', 'train.py'),
                          'c.py', '--launcher', 'slurm', '--amp']
    out = run(repo_root, tmp_path, 'slurm_test.sh', 'part', 'job', 'c.py',
              'k.pth')
    assert out.stdout.split()[-5:] == [
        osp.join(repo_root, 'tools', 'test.py'), 'c.py', 'k.pth',
        '--launcher', 'slurm']


def test_usage_on_missing_arguments(repo_root, tmp_path):
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh',
                   'slurm_test.sh'):
        out = run(repo_root, tmp_path, script)
        assert out.returncode == 2 and 'usage:' in out.stderr
