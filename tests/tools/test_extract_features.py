"""tools/extract_features.py on the tiny demo model and synthetic videos."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from avtoolkit.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO, 'configs', 'pretrain', 'demo_mid_part.py')
T = 2  # clips per sequence, to keep the test fast


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'extract_features_tool', osp.join(REPO, 'tools',
                                          'extract_features.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(tmp_path, data_dir):
    """The demo pretraining config with a T=2 test dataloader over the
    synthetic validation list."""
    pipeline = [
        dict(type='AVInit', modalities=('video', 'audio')),
        dict(type='AVSampleClips', num_clips=T, clip_duration=1.0,
             frames_per_clip=8, mode='center', short_policy='loop'),
        dict(type='AVDecode', short_side=40, sample_rate=16000),
        dict(type='CenterCrop', crop_size=32),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='LogMelSpectrogram', sample_rate=16000, n_mels=64,
             n_fft=512, win_length=400, hop_length=160, num_frames=101),
        dict(type='AudioNormalize', mean=-4.0, std=4.0),
        dict(type='PackAVInputs'),
    ]
    loader = dict(batch_size=2, num_workers=0,
                  dataset=dict(type='AVVideoDataset',
                               ann_file=osp.join(data_dir, 'val_list.txt'),
                               data_prefix=dict(video=data_dir),
                               pipeline=pipeline))
    path = tmp_path / 'extract_cfg.py'
    path.write_text(f'_base_ = [{DEMO!r}]\ntest_dataloader = {loader!r}\n')
    return str(path)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    cfg = Config.fromfile(DEMO)
    torch.manual_seed(3)
    model = MODELS.build(cfg.model)
    path = tmp_path_factory.mktemp('ckpt') / 'demo.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=3)), path)
    return str(path)


def test_extract_every_feature_to_npy(tmp_path, synthetic_av_dir,
                                      checkpoint):
    tool = load_tool()
    config = write_config(tmp_path, synthetic_av_dir)
    out = tmp_path / 'feats'
    index = tool.main([config, checkpoint, '--out', str(out),
                       '--no-progress'])
    with open(out / 'index.json') as f:
        saved = json.load(f)
    n = len(saved['samples'])
    assert n == 4  # the validation list: one video per class
    d, h = 128, 2 * (T + 1)
    expected = dict(cnn_v=[n, T, 80], cnn_a=[n, T, 256], x_v=[n, T, d],
                    x_a=[n, T, d], y_v=[n, T + 1, d], y_a=[n, T + 1, d],
                    z=[n, h, d], y_v_summary=[n, d], y_a_summary=[n, d],
                    z_v_summary=[n, d], z_a_summary=[n, d],
                    x_mean=[n, 2 * d], y_summary=[n, 2 * d],
                    y_mean=[n, 2 * d], z_summary=[n, 2 * d],
                    z_mean=[n, 2 * d])
    assert saved['features'] == expected
    for name, shape in expected.items():
        array = np.load(out / f'{name}.npy')
        assert list(array.shape) == shape and array.dtype == np.float32
        assert np.isfinite(array).all()
    assert sorted(s['label'] for s in saved['samples']) == [0, 1, 2, 3]
    assert [s['row'] for s in saved['samples']] == [0, 1, 2, 3]
    assert index['load_report']['missing'] == []
    # the mean of x over the clips is the x_mean feature
    x = np.concatenate([np.load(out / 'x_v.npy').mean(1),
                        np.load(out / 'x_a.npy').mean(1)], axis=1)
    np.testing.assert_allclose(x, np.load(out / 'x_mean.npy'), rtol=1e-5,
                               atol=1e-5)

    z_summary = np.load(out / 'z_summary.npy')
    # A second run into the same folder is refused, before any work ...
    with pytest.raises(FileExistsError, match='--overwrite'):
        tool.main([config, checkpoint, '--out', str(out)])
    # ... unless asked; a video list read with the config's pipeline and
    # random weights give other features of the same shapes.
    index = tool.main([config, 'random', '--out', str(out), '--overwrite',
                       '--features', 'cnn_a', 'z_summary', '--video-list',
                       osp.join(synthetic_av_dir, 'val_list.txt'),
                       '--data-prefix', synthetic_av_dir, '--no-progress'])
    assert index['features'] == dict(cnn_a=[4, T, 256],
                                     z_summary=[4, 2 * 128])
    assert not np.allclose(np.load(out / 'z_summary.npy'), z_summary)
    assert not (out / 'x_v.npy').exists()  # the old outputs are gone
    assert index['load_report'] is None


def test_extract_to_webdataset_shards(tmp_path, synthetic_av_dir,
                                      checkpoint):
    import webdataset as wds
    tool = load_tool()
    config = write_config(tmp_path, synthetic_av_dir)
    out = tmp_path / 'shards'
    index = tool.main([config, checkpoint, '--out', str(out), '--format',
                       'webdataset', '--shard-size', '3', '--features',
                       'x_a', 'y_a_summary', '--no-progress'])
    assert index['num_samples'] == 4 and len(index['shards']) == 2
    samples = list(wds.WebDataset(
        [str(out / s) for s in index['shards']],
        shardshuffle=False).decode())
    assert [s['x_a.npy'].shape for s in samples] == [(T, 128)] * 4
    assert {s['json']['label'] for s in samples} == {0, 1, 2, 3}


def test_bad_arguments(tmp_path, synthetic_av_dir, checkpoint):
    tool = load_tool()
    config = write_config(tmp_path, synthetic_av_dir)
    with pytest.raises(SystemExit):  # --out is required
        tool.main([config, checkpoint])
    with pytest.raises(KeyError, match='val_dataloader'):
        tool.main([config, checkpoint, '--out', str(tmp_path / 'a'),
                   '--dataloader', 'val_dataloader'])
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        tool.main([config, checkpoint, '--out', str(tmp_path / 'b'),
                   '--video-list', str(tmp_path / 'missing.txt')])
    with pytest.raises(FileNotFoundError, match='nowhere'):
        tool.main([str(tmp_path / 'nowhere.py'), checkpoint, '--out',
                   str(tmp_path / 'c')])
