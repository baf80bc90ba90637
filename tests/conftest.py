"""Shared fixtures of the test suite."""
import os
import os.path as osp

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_REAL = osp.join(REPO_ROOT, '..', 'shared', 'data', 'real')

# Two cores in CI: keep torch from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope='session')
def real_media_dir():
    """The folder of real media files beside the checkout (skip if absent)."""
    if not osp.isdir(SHARED_REAL):
        pytest.skip(f'real media folder {SHARED_REAL} is absent')
    return osp.abspath(SHARED_REAL)


@pytest.fixture(scope='session', autouse=True)
def _register_modules():
    from avtoolkit.utils import register_all_modules
    register_all_modules(init_default_scope=True)
