"""Shared fixtures of the test suite."""
import os
import os.path as osp
import sys

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_REAL = osp.join(REPO_ROOT, '..', 'shared', 'data', 'real')
# Helpers shared by several test modules (generated media, toy modules).
sys.path.insert(0, osp.join(REPO_ROOT, 'tests', 'data'))

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


@pytest.fixture(scope='session')
def synthetic_av_dir(tmp_path_factory):
    """A small synthetic audio-visual dataset, generated once per session.

    12 videos x 4 s, 64x64 frames at 16 fps, 16 kHz mono AAC audio, 4
    classes; 8 videos in ``train_list.txt`` and 4 in ``val_list.txt`` (one
    per class).  Layout as described in docs/data_preparation.md; returns
    the folder as a str.
    """
    from avtoolkit.data_prep.synthetic_av import generate_synthetic_av
    out_dir = str(tmp_path_factory.mktemp('synthetic_av') / 'data')
    generate_synthetic_av(
        out_dir,
        num_videos=12,
        seconds=4,
        num_classes=4,
        seed=0,
        height=64,
        width=64,
        fps=16,
        sample_rate=16000,
        val_fraction=0.25,
        verbose=False)
    return out_dir


@pytest.fixture(scope='session')
def load_tool():
    """``load_tool('convert/to_mmaction.py')`` imports that script of
    ``tools/`` as a module (its ``main``/``run`` functions are then callable
    with an argv list)."""
    import importlib.util
    loaded = {}

    def load(relpath: str):
        if relpath not in loaded:
            path = osp.join(REPO_ROOT, 'tools', relpath)
            name = 'tool_' + relpath.replace('/', '_').replace('.py', '')
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[relpath] = module
        return loaded[relpath]

    return load


@pytest.fixture(scope='module')
def single_thread():
    """One intra-op thread for a module: on a busy 2-core machine a second
    thread makes small convolutions many times slower.  Use with
    ``pytestmark = pytest.mark.usefixtures('single_thread')``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope='session')
def narrow_avbert_cfg(repo_root):
    """``narrow_avbert_cfg(num_negatives=6)``: the tiny AVBERT pretraining
    config (configs/_base_/models/avbert_tiny.py) narrowed to D = 32 for fast
    tests, as a fresh ConfigDict on every call."""
    import copy

    from mmengine.config import Config
    base = Config.fromfile(
        osp.join(repo_root, 'configs', '_base_', 'models',
                 'avbert_tiny.py')).model

    def make(num_negatives: int = 6):
        model = copy.deepcopy(base)
        model.neck.update(embed_dim=32, num_heads=2, ffn_dim=64, rank=8)
        model.visual_backbone.embed_dim = 32
        model.audio_backbone.embed_dim = 32
        model.mep_head.update(in_channels=32, proj_channels=16)
        model.cpp_head.update(in_channels=32, hidden_channels=32)
        model.sampler.num_negatives = num_negatives
        return model

    return make
