"""A frozen rank fails the job within the collective timeout (break 12)."""
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import pytest

from tool_runs import REPO, TOY_CONFIG, tool_env


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_frozen_rank_fails_the_job_naming_it(tmp_path):
    """Rank 1 is SIGSTOPped after iteration 2; rank 0 used to wait for gloo's
    default 30 minutes.  With ``--dist-timeout 8`` the job fails within
    seconds, and rank 0's error names rank 1 and the knob."""
    config = tmp_path / 'freezing.py'
    config.write_text(
        f'_base_ = [{TOY_CONFIG!r}]\n'
        "custom_hooks = [dict(type='FreezeRankHook', rank=1, at_iter=2)]\n")
    env = tool_env(PORT=str(_free_port()), PYTHON=sys.executable)
    start = time.monotonic()
    proc = subprocess.Popen(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(config), '2',
         '--work-dir', str(tmp_path / 'work'), '--dist-timeout', '8'],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    try:
        # Read until rank 0 reports; torchrun would then wait 30 s more for
        # the stopped rank before killing it.
        for line in proc.stdout:
            lines.append(line)
            if 'CollectiveTimeoutError:' in line or \
                    time.monotonic() - start > 240:
                break
    finally:
        # the frozen rank ignores everything but SIGKILL
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    log = ''.join(lines)
    elapsed = time.monotonic() - start
    assert 'CollectiveTimeoutError' in log, log[-4000:]
    assert 'rank(s) 1 did not answer' in log, log[-4000:]
    assert '--dist-timeout' in log
    assert elapsed < 180
