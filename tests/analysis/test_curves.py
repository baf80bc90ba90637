"""plot_curves: merged logs of a resumed run, and the PNG."""
import json
import subprocess
import sys

import pytest

from avtoolkit.analysis.curves import load_train_log


def write_log(work_dir, stamp, entries):
    folder = work_dir / stamp / 'vis_data'
    folder.mkdir(parents=True)
    with open(folder / f'{stamp}.json', 'w') as f:
        for entry in entries:
            f.write(json.dumps(entry) + '\n')


def test_resumed_segments_merge_in_time_order(tmp_path):
    write_log(tmp_path, '20260101_000000',
              [dict(step=s, iter=s, loss=10.0 - s, lr=0.1) for s in (5, 10)])
    write_log(tmp_path, '20260101_010000',
              [dict(step=s, iter=s, loss=1.0, acc_mep_v=0.5)
               for s in (10, 15)])
    series = load_train_log(str(tmp_path))
    assert series['loss'] == {5: 5.0, 10: 1.0, 15: 1.0}
    assert series['acc_mep_v'] == {10: 0.5, 15: 0.5}
    assert 'iter' not in series


def test_cli_writes_png(tmp_path, repo_root):
    write_log(tmp_path, '20260101_000000',
              [dict(step=s, loss=1.0 / s, acc_cpp_uni=s / 10)
               for s in range(1, 6)])
    out = tmp_path / 'c.png'
    proc = subprocess.run(
        [sys.executable, f'{repo_root}/tools/analysis/plot_curves.py',
         str(tmp_path), '--out', str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='vis_data'):
        load_train_log(str(tmp_path))
