"""Running the command-line tools as subprocesses in tests."""
import os
import os.path as osp
import subprocess
import sys
from typing import Sequence

DATA = osp.dirname(osp.abspath(__file__))
TESTS = osp.dirname(DATA)
REPO = osp.dirname(TESTS)
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
