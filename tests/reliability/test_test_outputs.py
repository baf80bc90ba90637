"""tools/test.py and the analysis tools: outputs are never replaced
unasked (break 11); weights that do not fit are refused (weak case);
inputs are checked before expensive work (weak case)."""
import os.path as osp

import pytest
import torch

from tool_runs import DATA, REPO, run_tool

TOY_TEST = osp.join(DATA, 'configs', 'toy_test.py')


def _toy_checkpoint(path, drop_head=False):
    """Weights of the toy regressor (optionally without its output layer,
    as a pretraining checkpoint lacks a classifier's head)."""
    torch.manual_seed(0)
    state = {'net.0.weight': torch.randn(16, 8), 'net.0.bias': torch.zeros(16),
             'net.3.weight': torch.randn(1, 16), 'net.3.bias': torch.zeros(1)}
    if drop_head:
        state = {k: v for k, v in state.items() if not k.startswith('net.3')}
    torch.save(dict(meta=dict(iter=1), state_dict=state), path)
    return str(path)


def _test(tmp_path, *args):
    from avtoolkit.apis import test as test_api
    return test_api.main([TOY_TEST, *map(str, args), '--work-dir',
                          str(tmp_path / 'work')])


def test_dump_refuses_to_replace_an_existing_file(tmp_path):
    ckpt = _toy_checkpoint(tmp_path / 'toy.pth')
    dump = tmp_path / 'results.pkl'
    dump.write_bytes(b'earlier results')
    with pytest.raises(FileExistsError, match='results.pkl.*--overwrite'):
        _test(tmp_path, ckpt, '--dump', dump)
    assert dump.read_bytes() == b'earlier results'


def test_dump_replaces_with_overwrite(tmp_path):
    ckpt = _toy_checkpoint(tmp_path / 'toy.pth')
    dump = tmp_path / 'results.pkl'
    dump.write_bytes(b'earlier results')
    metrics = _test(tmp_path, ckpt, '--dump', dump, '--overwrite')
    assert 'mse' in metrics and dump.read_bytes() != b'earlier results'


def test_checkpoint_without_the_head_is_refused(tmp_path):
    """A pretraining checkpoint for a classifier used to be scored with a
    randomly initialised head, with a warning only."""
    ckpt = _toy_checkpoint(tmp_path / 'no_head.pth', drop_head=True)
    with pytest.raises(ValueError, match='(?s)net.3.*--allow-partial-weights'):
        _test(tmp_path, ckpt)


def test_partial_weights_when_asked(tmp_path):
    ckpt = _toy_checkpoint(tmp_path / 'no_head.pth', drop_head=True)
    assert 'mse' in _test(tmp_path, ckpt, '--allow-partial-weights')


def test_plot_refuses_to_replace_an_existing_png(tmp_path):
    logs = tmp_path / '20261204_000000' / 'vis_data'
    logs.mkdir(parents=True)
    (logs / '20261204_000000.json').write_text(''.join(
        f'{{"loss": {1.0 / i}, "step": {i}}}\n' for i in range(1, 5)))
    png = tmp_path / 'curves.png'
    png.write_bytes(b'a figure the user kept')
    result = run_tool(osp.join('analysis', 'plot_curves.py'),
                      [tmp_path, '--out', png], cwd=tmp_path)
    assert result.returncode != 0
    assert 'curves.png' in result.stderr and '--overwrite' in result.stderr
    assert png.read_bytes() == b'a figure the user kept'


def test_probe_refuses_a_bad_checkpoint_before_generating_data(tmp_path):
    """probe.py used to generate the demo dataset and only then refuse the
    checkpoint."""
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    config = osp.join(REPO, 'configs', 'pretrain', 'demo_mid_part.py')
    result = run_tool(osp.join('analysis', 'probe.py'),
                      [config, empty, '--cfg-options',
                       'synthetic_data.num_videos=4'], cwd=tmp_path)
    assert result.returncode != 0
    assert 'empty.pth' in result.stderr and 'empty file' in result.stderr
    assert not osp.exists(tmp_path / 'data'), 'data was generated first'
