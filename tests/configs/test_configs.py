"""The shipped configs: every leaf loads and names registered types, follows
one idiom (every dataset pipeline is one AVSequencePipeline, the data
preprocessor comes from the model bases), and every pretraining config's
model builds."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from avtoolkit.datasets.transforms import flatten_pipeline
from avtoolkit.registry import DATASETS, LOOPS, MODELS, TRANSFORMS
from avtoolkit.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LEAVES = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                       recursive=True)
    if '_base_' not in p)
PRETRAIN = [c for c in LEAVES if c.startswith(osp.join('configs',
                                                       'pretrain'))]
IMAGENET = dict(video_mean=[123.675, 116.28, 103.53],
                video_std=[58.395, 57.12, 57.375])


def pipelines(node, path=''):
    """(path, pipeline) of every `pipeline` key in a config tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f'{path}.{key}' if path else str(key)
            if key == 'pipeline' and value is not None:
                yield here, value
            else:
                yield from pipelines(value, here)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from pipelines(value, f'{path}[{i}]')


@pytest.mark.parametrize('config', LEAVES)
def test_every_pipeline_is_one_sequence_pipeline(config):
    cfg = Config.fromfile(osp.join(REPO, config)).to_dict()
    found = list(pipelines(cfg))
    assert found, f'{config} has no dataset pipeline'
    for where, pipeline in found:
        assert isinstance(pipeline, dict), where
        assert pipeline['type'] == 'AVSequencePipeline', where
        steps = flatten_pipeline(pipeline)
        assert steps[0]['type'] == 'AVInit', where
        assert steps[-1]['type'] == 'PackAVInputs', where


@pytest.mark.parametrize('config', LEAVES)
def test_leaf_configs_leave_the_data_preprocessor_to_the_model_bases(
        config):
    with open(osp.join(REPO, config)) as f:
        assert 'data_preprocessor' not in f.read()
    cfg = Config.fromfile(osp.join(REPO, config))
    if 'protocol' in cfg:
        return  # a frozen audio CNN: nothing to normalise but the log-mels
    pre = cfg.model.data_preprocessor
    assert pre.type == 'AVDataPreprocessor'
    assert {k: list(pre[k]) for k in IMAGENET} == IMAGENET


@pytest.mark.parametrize('config', PRETRAIN)
def test_pretraining_model_builds(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == cfg.model.type
    pre = model.data_preprocessor
    for name, values in IMAGENET.items():
        assert getattr(pre, name).flatten().tolist() == \
            pytest.approx(values)


def test_configs_found():
    assert len(PRETRAIN) >= 12


@pytest.mark.parametrize('config', LEAVES)
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
