"""The demo config end to end: data generation, pretraining, probes."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from avtoolkit.apis import train as train_api

SMALL = [
    'synthetic_data.num_videos=12', 'synthetic_data.workers=1',
    'train_cfg.max_iters=3', 'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'default_hooks.logger.interval=1',
]


@pytest.mark.slow
def test_demo_config_runs_end_to_end(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(tmp_path)  # data/demo and work_dirs land here
    config = osp.join(repo_root, 'configs', 'pretrain', 'demo_mid_part.py')
    runner = train_api.main([config, '--cfg-options', *SMALL,
                             'experiment_name=demo_test'])
    assert runner.iter == 3
    assert osp.isfile(tmp_path / 'data' / 'demo' / 'summary.json')
    work_dir = tmp_path / 'work_dirs' / 'demo_mid_part'
    with open(work_dir / 'probe_results.json') as f:
        results = json.load(f)
    assert results['iteration'] == 3
    for key in ('pretrained', 'random_init'):
        assert set(results[key]) == {
            f'{feat}/{probe}_top1' for feat in ('z_summary', 'z_mean', 'x_mean')
            for probe in ('linear', 'knn')}
        assert all(0.0 <= v <= 1.0 for v in results[key].values())
    # every loss term and both accuracies reach the log
    log = next(p for p in work_dir.rglob('*.json')
               if p.parent.name == 'vis_data' and p.name != 'scalars.json')
    entry = json.loads(log.read_text().splitlines()[-1])
    for key in ('loss_mep_v', 'loss_mep_a', 'loss_mep_av', 'loss_cpp_uni',
                'loss_cpp_multi', 'acc_mep_v', 'acc_cpp_multi',
                'orthogonal_lr', 'default_lr', 'samples_per_s'):
        assert key in entry, key


@pytest.mark.slow
def test_demo_two_cpu_processes(tmp_path, repo_root):
    """tools/dist_train.sh runs the demo config with two gloo processes."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PORT=str(port), PYTHON=sys.executable,
               OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    config = osp.join(repo_root, 'configs', 'pretrain', 'demo_mid_part.py')
    proc = subprocess.run(
        ['bash', osp.join(repo_root, 'tools', 'dist_train.sh'), config, '2',
         '--cfg-options', *SMALL],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Distributed training: True' in log
    ckpt = tmp_path / 'work_dirs' / 'demo_mid_part' / 'iter_3.pth'
    assert osp.isfile(ckpt)
    assert 'linear probe on "z_mean" features' in log
    # both ranks' generator states reached rank 0's checkpoint
    import torch
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert len(state['random_states']) == 2
