"""tools/analysis/probe.py on the tiny demo model and synthetic videos."""
import importlib.util
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from avtoolkit.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO, 'configs', 'pretrain', 'demo_mid_part.py')


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'probe_tool', osp.join(REPO, 'tools', 'analysis', 'probe.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(tmp_path, data_dir):
    """The demo config whose ProbeHook reads T=1 sequences of the synthetic
    train and validation lists."""
    pipeline = [
        dict(type='AVInit', modalities=('video', 'audio')),
        dict(type='AVSampleClips', num_clips=1, clip_duration=1.0,
             frames_per_clip=8, mode='center', short_policy='loop'),
        dict(type='AVDecode', short_side=40, sample_rate=16000),
        dict(type='CenterCrop', crop_size=32),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='LogMelSpectrogram', sample_rate=16000, n_mels=64,
             n_fft=512, win_length=400, hop_length=160, num_frames=101),
        dict(type='AudioNormalize', mean=-4.0, std=4.0),
        dict(type='PackAVInputs'),
    ]

    def loader(name):
        return dict(batch_size=4, num_workers=0,
                    sampler=dict(type='DefaultSampler', shuffle=False),
                    collate_fn=dict(type='pseudo_collate'),
                    dataset=dict(type='AVVideoDataset',
                                 ann_file=osp.join(data_dir, name),
                                 data_prefix=dict(video=data_dir),
                                 pipeline=pipeline, test_mode=True))

    hooks = [dict(type='ProbeHook', train_dataloader=loader('train_list.txt'),
                  val_dataloader=loader('val_list.txt'),
                  features=('x_mean', 'z_summary'), knn_k=3)]
    path = tmp_path / 'probe_cfg.py'
    path.write_text(f'_base_ = [{DEMO!r}]\n'
                    f'work_dir = {str(tmp_path / "work")!r}\n'
                    f'custom_hooks = {hooks!r}\n'
                    f'alt_val = {loader("train_list.txt")!r}\n')
    return str(path)


def test_probe_tool_against_random_weights(tmp_path, synthetic_av_dir):
    tool = load_tool()
    config = write_config(tmp_path, synthetic_av_dir)
    cfg = Config.fromfile(DEMO)
    torch.manual_seed(5)
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'iter_7.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)

    results = tool.main([config, str(ckpt), '--compare-random',
                         '--no-progress'])
    path = tmp_path / 'work' / 'probe_iter_7.json'
    assert results['results_file'] == str(path)
    with open(path) as f:
        saved = json.load(f)
    keys = {f'{feat}/{probe}_top1' for feat in ('x_mean', 'z_summary')
            for probe in ('linear', 'knn')}
    for tag in ('pretrained', 'random_init'):
        assert set(saved[tag]) == keys
        assert all(0.0 <= v <= 1.0 for v in saved[tag].values())
    assert saved['num_train'] == 8 and saved['num_val'] == 4
    assert saved['knn_k'] == 3
    assert saved['pretrained_load_report']['missing'] == []
    assert saved['pretrained_load_report']['loaded'] == len(
        model.state_dict())
    table = tool.format_table(saved, ['x_mean', 'z_summary'])
    assert 'random init' in table and 'gain' in table


def test_probe_tool_options_and_errors(tmp_path, synthetic_av_dir):
    tool = load_tool()
    config = write_config(tmp_path, synthetic_av_dir)
    out = tmp_path / 'random.json'
    # Random weights only, one feature, the scoring set from another key.
    results = tool.main([config, 'random', '--features', 'x_mean',
                         '--val-key', 'alt_val', '--out', str(out),
                         '--no-progress'])
    assert set(results['random_init']) == {'x_mean/linear_top1',
                                           'x_mean/knn_top1'}
    assert 'pretrained' not in results and results['num_val'] == 8
    assert out.is_file()
    with pytest.raises(FileNotFoundError, match='none.pth'):
        tool.main([config, str(tmp_path / 'none.pth')])
    with pytest.raises(KeyError, match='nothing_here'):
        tool.main([config, 'random', '--train-key', 'nothing_here'])
    with pytest.raises(SystemExit):
        tool.main([config, 'random', '--features', 'logits'])


def test_probe_sets_of_a_fine_tuning_config(repo_root):
    """Without probe dataloaders, a fine-tuning config's training part
    (through its validation pipeline, in order) fits the probes and its
    held-out part scores them; model.feature is the default feature."""
    from avtoolkit.datasets.transforms import flatten_pipeline
    from avtoolkit.evaluation.loaders import probe_settings
    cfg = Config.fromfile(osp.join(
        repo_root, 'configs', 'downstream', 'demo',
        'kinetics_sounds_mid_audio.py'))
    settings = probe_settings(cfg)
    train, val = settings['train'], settings['val']
    assert settings['features'] == ('y_mean', )
    assert train['sampler'] == dict(type='DefaultSampler', shuffle=False)
    assert (train['dataset']['part'], val['dataset']['part']) == \
        ('train', 'val')
    assert train['dataset']['dataset']['test_mode'] is True
    assert flatten_pipeline(train['dataset']['dataset']['pipeline']) == \
        flatten_pipeline(val['dataset']['dataset']['pipeline'])
    steps = [s['type'] for s in
             flatten_pipeline(train['dataset']['dataset']['pipeline'])]
    assert 'RandomCrop' not in steps and 'FormatShape' not in steps
    # the config itself is left alone
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'


def test_probe_tool_on_a_fine_tuning_demo(tmp_path, monkeypatch):
    """probe.py on the Kinetics-Sounds demo config: it generates the data,
    loads a pretraining checkpoint into the classifier's encoder and
    probes the training part against the held-out part."""
    monkeypatch.chdir(tmp_path)  # data/ lands here
    tool = load_tool()
    cfg = Config.fromfile(DEMO)
    torch.manual_seed(3)
    pretrain = MODELS.build(cfg.model)
    ckpt = tmp_path / 'pre.pth'
    torch.save(dict(state_dict=pretrain.state_dict(), meta=dict()), ckpt)
    options = [
        'synthetic_downstream.num_videos=24',
        'synthetic_downstream.num_classes=4',
        'synthetic_downstream.seconds=2', 'synthetic_downstream.workers=1',
        'synthetic_downstream.height=64', 'synthetic_downstream.width=80',
        'model.num_classes=4',
        'train_dataloader.dataset.dataset.pipeline.clips.num_clips=2',
        'val_dataloader.dataset.dataset.pipeline.clips.num_clips=2',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
    ]
    config = osp.join(REPO, 'configs', 'downstream', 'demo',
                      'kinetics_sounds_mid.py')
    results = tool.main([config, str(ckpt), '--compare-random', '--knn-k',
                         '3', '--work-dir', str(tmp_path / 'work'),
                         '--no-progress', '--cfg-options', *options])
    assert osp.isfile(osp.join('data', 'demo_downstream', 'kinetics_sounds',
                               'summary.json'))
    assert results['features'] == ['z_mean']
    # 6 videos per class, 2 of each to the test CSV: 16 in train.csv, of
    # which one per class is held out
    assert (results['num_train'], results['num_val']) == (12, 4)
    report = results['pretrained_load_report']
    assert report['loaded'] == len([
        k for k in pretrain.state_dict()
        if k.split('.')[0] in ('visual_backbone', 'audio_backbone', 'neck')])
    assert all(k.startswith('head.') for k in report['missing'])
    for tag in ('pretrained', 'random_init'):
        assert all(0.0 <= v <= 1.0 for v in results[tag].values())


def test_probe_tool_rejects_models_without_an_encoder(repo_root, tmp_path,
                                                    monkeypatch):
    """Refused before any data is generated or read."""
    monkeypatch.chdir(tmp_path)
    tool = load_tool()
    config = osp.join(repo_root, 'configs', 'downstream', 'demo',
                      'ucf101_visual_ft.py')
    with pytest.raises(TypeError, match='VisualClassifier'):
        tool.main([config, 'random', '--work-dir', str(tmp_path)])
    assert not (tmp_path / 'data').exists()
