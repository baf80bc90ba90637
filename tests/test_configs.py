"""Every shipped config loads; every pretraining config builds its model and
names registered loop, dataset and transform types."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from avtoolkit.datasets.transforms import flatten_pipeline
from avtoolkit.registry import DATASETS, LOOPS, MODELS, TRANSFORMS
from avtoolkit.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                       recursive=True)
    if '_base_' not in p)
PRETRAIN = [c for c in CONFIGS if c.startswith(osp.join('configs',
                                                         'pretrain'))]


def test_configs_found():
    assert len(PRETRAIN) >= 12


@pytest.mark.parametrize('config', CONFIGS)
def test_config_loads(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    assert cfg.default_scope == 'avtoolkit'
    assert 'model' in cfg


@pytest.mark.parametrize('config', PRETRAIN)
def test_pretraining_config_types_are_registered(config):
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO, config))
    assert LOOPS.get(cfg.train_cfg.type) is not None
    dataset = cfg.train_dataloader.dataset
    assert DATASETS.get(dataset.type) is not None
    pipeline = flatten_pipeline(dataset.pipeline)
    for step in pipeline:
        assert TRANSFORMS.get(step['type']) is not None, step['type']
    assert MODELS.get(cfg.model.type) is not None
    # the sequence length of the data fits the Transformers
    clips = next(s for s in pipeline
                 if s['type'] == 'AVSampleClips')['num_clips']
    assert clips <= cfg.model.neck.max_seq_len


def test_audioset_recipe(repo_root=REPO):
    cfg = Config.fromfile(osp.join(REPO, 'configs/pretrain/audioset_mid_part.py'))
    k700 = Config.fromfile(osp.join(REPO, 'configs/pretrain/k700_mid_part.py'))
    pipe = flatten_pipeline(cfg.train_dataloader.dataset.pipeline)
    assert pipe[1]['type'] == 'AVSampleClips'
    assert pipe[1]['num_clips'] == 10
    # only the clip sampling differs from Kinetics-700
    other = flatten_pipeline(k700.train_dataloader.dataset.pipeline)
    assert [s for i, s in enumerate(pipe) if i != 1] == \
        [s for i, s in enumerate(other) if i != 1]
    assert cfg.train_dataloader.batch_size == 5
    assert cfg.train_cfg.max_iters == 220_000
    assert cfg.optim_wrapper == k700.optim_wrapper
