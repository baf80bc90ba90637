"""tools/dist_train.sh: two CPU processes over gloo run to completion."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_cpu_training(tmp_path, repo_root):
    data = osp.join(repo_root, 'tests', 'data')
    env = dict(os.environ)
    env.update(PYTHONPATH=data, PORT=str(_free_port()), PYTHON=sys.executable,
               OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(
        ['bash', osp.join(repo_root, 'tools', 'dist_train.sh'),
         osp.join(data, 'configs', 'toy_runner.py'), '2',
         '--work-dir', str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Distributed training: True' in log
    # Every rank finishes cleanly (the group is torn down, not left to exit).
    assert 'terminate called' not in log
    ckpt = torch.load(tmp_path / 'iter_20.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 20
