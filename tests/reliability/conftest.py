"""Shared pieces of the reliability suite (``tests/reliability``).

Each test in this folder reproduces one way a user or an attacker broke a
promise of the toolkit (see docs/reliability.md for the list) and checks
that it now holds.  Everything runs on the CPU with tiny configs and
generated data; tests that take more than a few seconds are marked
``slow``.
"""
import os
import os.path as osp
import subprocess
import sys
from typing import Sequence

import pytest

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO = osp.dirname(TESTS)
DATA = osp.join(TESTS, 'data')
# A two-layer MLP on random regression data: a Runner job of a second.
TOY_CONFIG = osp.join(DATA, 'configs', 'toy_runner.py')


def tool_env(**extra) -> dict:
    """The environment for a tool started as a subprocess: one thread, no
    GPU, the test helpers (``toy_modules``) importable."""
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (DATA, REPO, os.environ.get('PYTHONPATH')) if p)
    env.update(extra)
    return env


def run_tool(script: str, args: Sequence[str], cwd, timeout: float = 300,
             **popen) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` with ``args`` and capture its output."""
    cmd = [sys.executable, osp.join(REPO, 'tools', script), *map(str, args)]
    return subprocess.run(cmd, cwd=str(cwd), env=tool_env(),
                          capture_output=True, text=True, timeout=timeout,
                          **popen)


@pytest.fixture(autouse=True)
def _toy_modules_importable(monkeypatch):
    monkeypatch.syspath_prepend(DATA)
