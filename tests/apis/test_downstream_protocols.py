"""The fine-tuning protocols end to end on tiny synthetic data in the real
layouts: tools/train.py (model selection on the held-out part of the
training list) then tools/test.py on the test split, for UCF101,
Kinetics-Sounds (M and A) and Charades; and the consistency of the
downstream configs."""
import argparse
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config, DictAction

from avtoolkit.apis import test as test_api
from avtoolkit.apis import train as train_api
from avtoolkit.data_prep import prepare
from avtoolkit.datasets.transforms import flatten_pipeline
from avtoolkit.registry import DATASETS, MODELS

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# Two iterations with a validation after each (so a best checkpoint is
# chosen), batches of 2, no worker processes, small videos.
COMMON = [
    'train_cfg.max_iters=2', 'train_cfg.val_interval=1',
    'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1',
    'synthetic_downstream.workers=1', 'synthetic_downstream.seconds=2',
    'synthetic_downstream.height=64', 'synthetic_downstream.width=80',
] + [f'{loader}.{key}' for loader in LOADERS
     for key in ('batch_size=2', 'num_workers=0', 'persistent_workers=False')]


pytestmark = pytest.mark.usefixtures('single_thread')


def short_sequences(num_clips):
    """Fewer clips per sequence in every pipeline (an AVSequencePipeline:
    its clip sampler is ``clips``)."""
    return [
        f'train_dataloader.dataset.dataset.pipeline.clips.num_clips='
        f'{num_clips}',
        f'val_dataloader.dataset.dataset.pipeline.clips.num_clips='
        f'{num_clips}',
        f'test_dataloader.dataset.pipeline.clips.num_clips={num_clips}',
    ]


def demo_config(repo_root, name):
    return osp.join(repo_root, 'configs', 'downstream', 'demo', name + '.py')


def run_protocol(config, options, work_dir):
    """Generate the data, train, pick the best checkpoint, test it."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='+', action=DictAction)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(parser.parse_args(['--options', *options]).options)
    prepare(cfg)
    runner = train_api.main([config, '--work-dir', work_dir,
                             '--cfg-options', *options])
    assert runner.iter == 2
    best = glob.glob(osp.join(work_dir, 'best_*_iter_*.pth'))
    assert len(best) == 1, best
    metrics = test_api.main([config, best[0], '--work-dir', work_dir,
                             '--cfg-options', *options])
    return runner, metrics, best[0], cfg


def filenames(dataset):
    return [dataset.get_data_info(i)['filename'] for i in range(len(dataset))]


def check_selection_split(runner, test_files):
    """Validation is the held-out part of the training list, disjoint from
    the training part and from the test split."""
    train = runner.train_dataloader.dataset
    val = runner.val_loop.dataloader.dataset
    assert train.holdout['part'] == 'train' and val.holdout['part'] == 'val'
    assert len(val) == val.holdout['num_val'] > 0
    assert set(filenames(train)).isdisjoint(filenames(val))
    assert set(filenames(val)).isdisjoint(test_files)


def test_ucf101_protocol(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(tmp_path)  # data/ and work_dirs/ land here
    options = COMMON + [
        'synthetic_downstream.num_videos=24',
        'synthetic_downstream.num_classes=6',
        'synthetic_downstream.num_groups=4', 'model.num_classes=6',
        # 8-frame clips; 1 validation clip, 2 test clips (x 3 crops)
        'train_dataloader.dataset.dataset.pipeline.clips.frames_per_clip=8',
        'val_dataloader.dataset.dataset.pipeline.clips.frames_per_clip=8',
        'val_dataloader.dataset.dataset.pipeline.clips.num_clips=1',
        'test_dataloader.dataset.pipeline.clips.frames_per_clip=8',
        'test_dataloader.dataset.pipeline.clips.num_clips=2',
    ]
    runner, metrics, best, cfg = run_protocol(
        demo_config(repo_root, 'ucf101_visual_ft'), options, 'wd')
    assert osp.basename(best).startswith('best_acc_top1_iter_')
    # split 1 tests group 1: one video per class, 2 clips x 3 crops each
    assert metrics['acc/num_videos'] == 6
    assert 0.0 <= metrics['acc/top1'] <= metrics['acc/top5'] <= 1.0
    test_list = tmp_path / 'data' / 'demo_downstream' / 'ucf101' / \
        'ucfTrainTestlist' / 'testlist01.txt'
    video_dir = tmp_path / 'data' / 'demo_downstream' / 'ucf101' / 'videos'
    test_files = {str(video_dir / line.strip())
                  for line in test_list.read_text().splitlines()}
    check_selection_split(runner, test_files)


def test_kinetics_sounds_protocol_from_a_pretraining_checkpoint(
        tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a tiny AVBERT pretraining checkpoint, as tools/train.py writes it
    pre_cfg = Config.fromfile(osp.join(repo_root, 'configs', '_base_',
                                       'models', 'avbert_tiny.py'))
    torch.manual_seed(0)
    pretrain = MODELS.build(copy.deepcopy(pre_cfg.model))
    pretrain.init_weights()
    ckpt = str(tmp_path / 'pretrain.pth')
    torch.save(dict(meta=dict(iter=1), state_dict=pretrain.state_dict()),
               ckpt)

    options = COMMON + short_sequences(2) + [
        'synthetic_downstream.num_videos=18',
        'synthetic_downstream.num_classes=6',
        'synthetic_downstream.test_fraction=0.34', 'model.num_classes=6',
        f'model.pretrained={ckpt}',
    ]
    runner, metrics, best, cfg = run_protocol(
        demo_config(repo_root, 'kinetics_sounds_mid'), options, 'wd')
    assert osp.basename(best).startswith('best_acc_top1_iter_')
    assert metrics['acc/num_videos'] == 6
    assert 0.0 <= metrics['acc/top1'] <= metrics['acc/top5'] <= 1.0
    logs = glob.glob(osp.join('wd', '*', '*.log'))
    text = ''.join(open(p).read() for p in logs)
    assert f'pretrained weights from {ckpt}' in text
    assert 'missing (left at their initial values)' not in text
    # each test video is one sample seen through 3 crops of 2 clips
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    inputs = test_set[0]['inputs']
    assert inputs['video'].shape[:2] == (3, 2)
    assert inputs['audio'].shape[0] == 2


def test_kinetics_sounds_audio_only_setting(tmp_path, repo_root,
                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = COMMON + short_sequences(2) + [
        'synthetic_downstream.num_videos=18',
        'synthetic_downstream.num_classes=6',
        'synthetic_downstream.test_fraction=0.34', 'model.num_classes=6',
    ]
    runner, metrics, _, _ = run_protocol(
        demo_config(repo_root, 'kinetics_sounds_mid_audio'), options, 'wd')
    model = runner.model
    assert model.modality == 'audio' and model.visual_backbone is None
    sample = runner.val_loop.dataloader.dataset[0]
    assert set(sample['inputs']) == {'audio'}
    assert metrics['acc/num_videos'] == 6


def test_charades_protocol(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = COMMON + short_sequences(2) + [
        'synthetic_downstream.num_videos=20',
        'synthetic_downstream.test_fraction=0.5',
    ]
    runner, metrics, best, cfg = run_protocol(
        demo_config(repo_root, 'charades_mid'), options, 'wd')
    assert osp.basename(best).startswith('best_multilabel_mAP_iter_')
    assert 0.0 <= metrics['multilabel/mAP'] <= 1.0
    assert metrics['multilabel/num_videos'] == 10
    assert metrics['multilabel/num_classes_evaluated'] >= 10
    test_csv = tmp_path / 'data' / 'demo_downstream' / 'charades' / \
        'Charades_v1_test.csv'
    ids = [line.split(',')[0]
           for line in test_csv.read_text().splitlines()[1:]]
    video_dir = tmp_path / 'data' / 'demo_downstream' / 'charades' / \
        'Charades_v1_480'
    check_selection_split(runner, {str(video_dir / f'{i}.mp4') for i in ids})


# ------------------------------------------------------------- configs
EVALUATOR_METRIC = {'MultiViewAccuracy': 'acc/top1',
                    'MultiLabelMAP': 'multilabel/mAP'}


def downstream_configs(repo_root):
    paths = sorted(glob.glob(osp.join(repo_root, 'configs', 'downstream',
                                      '*.py')) +
                   glob.glob(osp.join(repo_root, 'configs', 'downstream',
                                      'demo', '*.py')))
    return [p for p in paths if not osp.basename(p).startswith('esc50')]


def test_downstream_configs_are_consistent(repo_root):
    paths = downstream_configs(repo_root)
    assert len(paths) == 16
    for path in paths:
        cfg = Config.fromfile(path)
        name = osp.relpath(path, repo_root)
        assert cfg.default_scope == 'avtoolkit', name
        assert cfg.pretrained is None and cfg.model.pretrained is None, name
        train = cfg.train_dataloader.dataset
        val = cfg.val_dataloader.dataset
        test = cfg.test_dataloader.dataset
        # model selection on the held-out part of the training list
        assert train.type == val.type == 'HoldOutSplit', name
        assert (train.part, val.part) == ('train', 'val'), name
        assert train.dataset.ann_file == val.dataset.ann_file, name
        assert (train.val_fraction, train.seed) == \
            (val.val_fraction, val.seed), name
        assert test.ann_file != train.dataset.ann_file, name
        assert test.get('test_mode') and val.dataset.get('test_mode'), name
        metric = EVALUATOR_METRIC[cfg.val_evaluator.type]
        assert cfg.default_hooks.checkpoint.save_best == metric, name
        # the decoded streams are those of the setting
        modality = cfg.model.get('modality')
        expected = {'visual': ('video', ), 'audio': ('audio', ),
                    'multimodal': ('video', 'audio'), None: ('video', )}
        for dataset in (train.dataset, val.dataset, test):
            init = flatten_pipeline(dataset.pipeline)[0]
            assert init['type'] == 'AVInit', name
            assert tuple(init['modalities']) == expected[modality], name
        if cfg.model.type == 'AVClassifier':
            multi = cfg.model.get('multi_label', False)
            assert multi == (metric == 'multilabel/mAP'), name
            assert cfg.model.view_reduce == ('max' if multi else 'mean')
        # V/A leave parts of the neck without gradient
        assert cfg.get('find_unused_parameters', False) == (
            modality in ('visual', 'audio')), name
        if 'demo' in name:
            assert cfg.synthetic_downstream.out_dir == cfg.data_root, name


def test_ucf101_split_configs(repo_root):
    for k in (1, 2, 3):
        suffix = '' if k == 1 else f'_split{k}'
        cfg = Config.fromfile(osp.join(repo_root, 'configs', 'downstream',
                                       f'ucf101_visual_ft{suffix}.py'))
        assert cfg.train_dataloader.dataset.dataset.ann_file.endswith(
            f'trainlist0{k}.txt')
        assert cfg.val_dataloader.dataset.dataset.ann_file.endswith(
            f'trainlist0{k}.txt')
        assert cfg.test_dataloader.dataset.ann_file.endswith(
            f'testlist0{k}.txt')


def test_paper_schedules(repo_root):
    """Learning rates of appendix A.4 per parameter group."""
    expected = {
        'kinetics_sounds_mid': (1e-3, {'orthogonal': 1e-4,
                                       'classifier_cnn': 5e-3}, 24_000),
        'charades_mid': (1e-4, {'orthogonal': 1e-5,
                                'classifier_cnn': 1e-3}, 40_000),
        'ucf101_visual_ft': (0.02, {}, 40_000),
    }
    for name, (base, groups, iters) in expected.items():
        cfg = Config.fromfile(osp.join(repo_root, 'configs', 'downstream',
                                       name + '.py'))
        opt = cfg.optim_wrapper
        assert opt.optimizer.lr == pytest.approx(base)
        assert opt.optimizer.amsgrad and opt.optimizer.betas == (0.9, 0.98)
        got = {g['name']: base * g['lr_mult']
               for g in opt.paramwise_cfg.groups}
        assert got == pytest.approx(groups)
        assert cfg.train_cfg.max_iters == iters
        assert cfg.param_scheduler[0].warmup_ratio == 0.06


def test_paper_size_models_build(repo_root):
    """The paper-size fine-tuning models: SlowFast-R50 pooled 2304 channels
    into a linear classifier (UCF101); the whole AVBERT with a 2 x 768 (M)
    summary feature into the MLP head (Kinetics-Sounds)."""
    for name, head_in, classes in (('ucf101_visual_ft', 2304, 101),
                                   ('kinetics_sounds_mid', 1536, 32)):
        cfg = Config.fromfile(osp.join(repo_root, 'configs', 'downstream',
                                       name + '.py'))
        model = MODELS.build(cfg.model)
        assert model.head.in_channels == head_in, name
        assert model.head.num_classes == classes, name
