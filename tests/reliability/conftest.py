"""Shared pieces of the reliability suite (``tests/reliability``).

Each test in this folder reproduces one way a user or an attacker broke a
promise of the toolkit (docs/reliability.md lists them) and checks that it
now holds.  Everything runs on the CPU with tiny configs and generated
data; tests that take more than a few seconds are marked ``slow``.
Subprocess helpers: ``tests/data/tool_runs.py`` (importable as
``tool_runs``).
"""
import pytest

from tool_runs import DATA, REPO, TOY_CONFIG, run_tool, tool_env  # noqa


@pytest.fixture(autouse=True)
def _toy_modules_importable(monkeypatch):
    monkeypatch.syspath_prepend(DATA)
