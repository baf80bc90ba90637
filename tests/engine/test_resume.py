"""Resume: generator states in checkpoints, data position without replay,
and a killed run that resumes to the uninterrupted result."""
import json
import os
import os.path as osp
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from avtoolkit.apis import train as train_api
from avtoolkit.engine import get_random_state, set_random_state

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(TESTS, 'data')
CONFIG = osp.join(DATA, 'configs', 'toy_runner.py')
REPO = osp.dirname(TESTS)

# The toy job with dropout, numpy noise on the inputs, an endless shuffled
# sampler and the resumable loop.
RANDOM_TOY = [
    'model.dropout=0.3', 'model.input_noise=0.1',
    'train_dataloader.sampler.type=InfiniteSampler',
    'train_cfg.type=ResumableIterBasedTrainLoop',
    'default_hooks.checkpoint.interval=4',
]


@pytest.fixture(autouse=True)
def _toy_modules_importable(monkeypatch):
    monkeypatch.syspath_prepend(DATA)


def _draws():
    return (random.random(), float(np.random.rand()),
            float(torch.rand(())))


def test_random_state_roundtrip_through_a_safe_checkpoint(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    state = get_random_state()
    expected = _draws()
    path = tmp_path / 'state.pth'
    torch.save(dict(random_states=[state]), path)
    loaded = torch.load(path, weights_only=True)['random_states'][0]
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    set_random_state(loaded)
    assert _draws() == expected


def _derived_config(path, base, **fields):
    """A config file at ``path`` that inherits ``base`` and sets ``fields``
    (``--cfg-options`` cannot express lists of dicts)."""
    lines = [f'_base_ = [{base!r}]']
    lines += [f'{key} = {value!r}' for key, value in fields.items()]
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def _train(work_dir, *options, resume=False, config=CONFIG):
    # mmengine keeps one logger per experiment name and second in the
    # process: two tests' "p1" runs started in the same second would share
    # the first one's log file.  The test's folder name makes them unique.
    unique = osp.basename(osp.dirname(str(work_dir)))
    options = [f'experiment_name={unique}_{o.split("=", 1)[1]}'
               if o.startswith('experiment_name=') else o for o in options]
    argv = [config, '--work-dir', str(work_dir)]
    if resume:
        argv.append('--resume')
    argv += ['--cfg-options', *options]
    return train_api.main(argv)


def _weights(path):
    state = torch.load(path, map_location='cpu', weights_only=True)
    return state['state_dict'], state['meta']['iter']


def _assert_same_weights(a, b):
    wa, ia = _weights(a)
    wb, ib = _weights(b)
    assert ia == ib
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=0)


@pytest.mark.parametrize('resume_data', ['skip', 'replay'])
def test_resume_with_random_model_matches_uninterrupted(tmp_path,
                                                        resume_data):
    options = [*RANDOM_TOY, f'train_cfg.resume_data={resume_data}']
    _train(tmp_path / 'full', *options, 'experiment_name=full',
           'train_cfg.max_iters=12')
    _train(tmp_path / 'part', *options, 'experiment_name=p1',
           'train_cfg.max_iters=8')
    runner = _train(tmp_path / 'part', *options, 'experiment_name=p2',
                    'train_cfg.max_iters=12', resume=True)
    assert runner.iter == 12
    _assert_same_weights(tmp_path / 'full' / 'iter_12.pth',
                         tmp_path / 'part' / 'iter_12.pth')


def test_without_random_states_the_resumed_run_differs(tmp_path):
    """The control: the same job without RandomStateHook does not resume
    to the uninterrupted weights (dropout and noise draws differ)."""
    options = [*RANDOM_TOY, 'default_hooks.random_state.enabled=False']
    _train(tmp_path / 'full', *options, 'experiment_name=full',
           'train_cfg.max_iters=12')
    _train(tmp_path / 'part', *options, 'experiment_name=p1',
           'train_cfg.max_iters=8')
    _train(tmp_path / 'part', *options, 'experiment_name=p2',
           'train_cfg.max_iters=12', resume=True)
    full, _ = _weights(tmp_path / 'full' / 'iter_12.pth')
    part, _ = _weights(tmp_path / 'part' / 'iter_12.pth')
    assert any(not torch.equal(full[k], part[k]) for k in full)


def test_skip_places_the_sampler_without_loading(tmp_path, caplog):
    options = [*RANDOM_TOY, 'train_cfg.resume_data=skip']
    record = tmp_path / 'batches.jsonl'
    recording = _derived_config(
        tmp_path / 'recording.py', CONFIG, custom_hooks=[
            dict(type='RecordBatchesHook', out_file=str(record))])
    _train(tmp_path / 'full', *options, 'experiment_name=full',
           'train_cfg.max_iters=12', config=recording)
    full = [json.loads(line) for line in record.read_text().splitlines()]
    record.unlink()
    _train(tmp_path / 'part', *options, 'experiment_name=p1',
           'train_cfg.max_iters=8')
    _train(tmp_path / 'part', *options, 'experiment_name=p2',
           'train_cfg.max_iters=12', resume=True, config=recording)
    resumed = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r['iter'] for r in resumed] == [8, 9, 10, 11]
    assert resumed == full[8:]
    texts = ''.join(p.read_text() for p in (tmp_path / 'part').rglob('*.log'))
    assert 'without loading data' in texts


def test_unknown_resume_mode_is_an_error(tmp_path):
    with pytest.raises(ValueError, match='resume_data'):
        _train(tmp_path, *RANDOM_TOY, 'train_cfg.resume_data=fast',
               'train_cfg.max_iters=2')


@pytest.mark.slow
def test_killed_demo_run_resumes_to_the_uninterrupted_weights(tmp_path):
    """The demo model (tiny AVBERT, generated videos, one loader worker) is
    SIGKILLed between two checkpoints, resumed with --resume, and ends with
    the weights of an uninterrupted run."""
    config = osp.join(REPO, 'configs', 'pretrain', 'demo_mid_part.py')
    base = [
        'synthetic_data.num_videos=8', 'synthetic_data.workers=1',
        'train_cfg.max_iters=6', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=1',
        'default_hooks.checkpoint.interval=3',
        'default_hooks.logger.interval=1',
        # exact augmentation draws need the loader to replay its workers
        'train_cfg.resume_data=replay',
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=DATA + os.pathsep + os.environ.get('PYTHONPATH', ''))

    # no probes: only the training state matters here
    plain = _derived_config(tmp_path / 'plain.py', config, custom_hooks=[])
    killing = _derived_config(
        tmp_path / 'killing.py', config,
        custom_imports=dict(imports=['toy_modules'],
                            allow_failed_imports=False),
        custom_hooks=[dict(type='KillProcessHook', at_iter=5)])

    def run(work_dir, *extra, resume=False, cfg=plain):
        cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg,
               '--work-dir', str(work_dir)]
        if resume:
            cmd.append('--resume')
        return subprocess.run(cmd + ['--cfg-options', *base, *extra],
                              cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)

    full = run(tmp_path / 'full')
    assert full.returncode == 0, full.stderr[-3000:]
    killed = run(tmp_path / 'part', cfg=killing)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert osp.isfile(tmp_path / 'part' / 'iter_3.pth')
    assert not osp.exists(tmp_path / 'part' / 'iter_6.pth')
    resumed = run(tmp_path / 'part', resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert 'resumed' in log.lower() and 'random generator states' in log
    _assert_same_weights(tmp_path / 'full' / 'iter_6.pth',
                         tmp_path / 'part' / 'iter_6.pth')
