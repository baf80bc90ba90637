"""Pretraining never hands correct pair prediction (CPP) a batch of one
sequence.

Seven good videos and one too short in two shards: the short record is
skipped, the epoch holds seven samples, and a DataLoader without
``drop_last`` ends it with a batch of one, on which CPP fails.  The
pretraining data bases set ``drop_last=True``; a configuration that could
still produce such a batch is refused by ``check_cpp_batches``, and the
model's own error names the options to change.
"""
import json
import os.path as osp

import pytest
from mmengine.config import Config

from av_test_media import write_list, write_marker_video

from avtoolkit.data_prep.shards import build_shards
from avtoolkit.datasets import BadInputCounter
from avtoolkit.datasets.bad_input import collect_bad_inputs

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASES = osp.join(REPO, 'configs', '_base_')
SHARD_BASE = osp.join(BASES, 'datasets', 'k700_pretrain_shards.py')

# Two one-second clips of eight frames in the demo format (the input size
# of the tiny AVBERT): 32x32 crops, 64 x 101 log-mel spectrograms.
PIPELINE = dict(
    type='AVSequencePipeline', modalities=('video', 'audio'),
    clips=dict(type='AVSampleClips', num_clips=2, clip_duration=1.0,
               frames_per_clip=8, mode='random', short_policy='error'),
    decode=dict(type='AVDecode', short_side=40, sample_rate=16000),
    video=[dict(type='RandomCrop', size=32),
           dict(type='Flip', flip_ratio=0.5),
           dict(type='FormatShape', input_format='NCTHW')],
    audio=[dict(type='LogMelSpectrogram', sample_rate=16000, n_mels=64,
                n_fft=512, win_length=400, hop_length=160, num_frames=101),
           dict(type='AudioNormalize', mean=-4.0, std=4.0)])


@pytest.fixture(scope='module')
def shards(tmp_path_factory):
    """Two shards of four records: seven 2.5-s videos and, third in the
    second shard, one 1-s video (too short for two clips)."""
    root = tmp_path_factory.mktemp('cpp_batches')
    names = []
    for i in range(8):
        short = i == 6
        name = f'short{i}.mp4' if short else f'good{i}.mp4'
        write_marker_video(str(root / name), duration=1.0 if short else 2.5,
                           size=(64, 48), events=(0.4, ), seed=i)
        names.append(name)
    lst = write_list(str(root / 'list.txt'), names)
    report = build_shards(lst, str(root / 'shards'), shard_size=4,
                          progress=False)
    assert report['num_samples'] == 8
    return str(root / 'shards')


def shard_loader_cfg(urls, **changes):
    """The train_dataloader of the shard pretraining base, on the test
    shards with the small pipeline, in a fixed record order (shards in
    order, no shuffle buffer)."""
    cfg = Config.fromfile(SHARD_BASE).train_dataloader.to_dict()
    cfg['dataset'].update(urls=urls, pipeline=PIPELINE, shuffle_buffer=0,
                          shard_shuffle=False)
    cfg['dataset']['bad_input'].update(log_interval=0)
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize('workers', [0, 2])
def test_shard_epoch_with_a_skipped_record_has_only_full_batches(
        shards, workers):
    """Every batch has batch_size sequences, with or without worker
    processes (drop_last applies to each worker's share of the epoch), and
    the skip is counted although its record rode with a dropped sample."""
    from mmengine.runner import Runner
    cfg = shard_loader_cfg(shards, batch_size=2, num_workers=workers,
                           persistent_workers=workers > 0)
    loader = Runner.build_dataloader(cfg, seed=0)
    counter = BadInputCounter()
    sizes = []
    for epoch in range(3):
        for batch in loader:
            sizes.append(len(batch['data_samples']))
            counter.update(collect_bad_inputs(batch))
    assert sizes and set(sizes) == {2}, sizes
    # seven samples an epoch, three full batches (one process: 2+2+2 and
    # the seventh dropped; two workers: 2+2 from the first shard, 2 from
    # the second and its third sample dropped)
    assert len(sizes) == 3 * 3
    # The short record comes before the last sample of its stream, whose
    # batch is dropped; a sample is held back until the next one is ready,
    # so the record rides with the sample before the short one, in a full
    # batch: each of the three epochs counts it once.
    assert counter.counts == {'too_short': 3}, counter.state_dict()
    assert counter.examples['too_short'] == [
        osp.join(shards, 'shard-000001.tar') + '#000000006 (source: '
        'short6.mp4)']


def test_configs_that_could_give_one_sequence_are_refused():
    from avtoolkit.models.algorithms.avbert import check_cpp_batches
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'pretrain',
                                   'k700_mid_part.py'))
    check_cpp_batches(cfg.model, cfg.train_dataloader)  # shipped: fine
    demo = Config.fromfile(osp.join(REPO, 'configs', 'pretrain',
                                    'demo_mid_part.py'))
    check_cpp_batches(demo.model, demo.train_dataloader)
    loader = cfg.train_dataloader.to_dict()
    with pytest.raises(ValueError, match=r'train_dataloader\.drop_last'):
        check_cpp_batches(cfg.model, dict(loader, drop_last=False))
    with pytest.raises(ValueError, match=r'train_dataloader\.batch_size'):
        check_cpp_batches(cfg.model, dict(loader, batch_size=1))
    # an endless sampler never ends a batch early; no CPP, no constraint
    check_cpp_batches(cfg.model, dict(
        loader, drop_last=False, sampler=dict(type='InfiniteSampler')))
    check_cpp_batches(dict(cfg.model, cpp_head=None),
                      dict(loader, drop_last=False))


def test_one_sequence_error_names_the_options(narrow_avbert_cfg):
    import torch

    from avtoolkit.registry import MODELS
    model = MODELS.build(narrow_avbert_cfg(num_negatives=2))
    with pytest.raises(ValueError) as info:
        model.sample_step(1, 2, torch.device('cpu'))
    message = str(info.value)
    assert 'train_dataloader.drop_last' in message
    assert 'train_dataloader.batch_size' in message


@pytest.mark.slow
def test_shard_pretraining_finishes_with_a_short_record(shards, tmp_path):
    """tools/train.py's entry point on the shard base: four iterations of
    batch 2 cross the end of a seven-sample epoch."""
    from avtoolkit.apis import train as train_api
    config = tmp_path / 'cfg.py'
    config.write_text(f'''
_base_ = [{osp.join(BASES, 'default_runtime.py')!r},
          {osp.join(BASES, 'models', 'avbert_tiny.py')!r},
          {SHARD_BASE!r},
          {osp.join(BASES, 'schedules', 'adamw_warmup_linear.py')!r}]
model = dict(
    neck=dict(embed_dim=32, num_heads=2, ffn_dim=64, rank=8),
    visual_backbone=dict(embed_dim=32), audio_backbone=dict(embed_dim=32),
    mep_head=dict(in_channels=32, proj_channels=16),
    cpp_head=dict(in_channels=32, hidden_channels=32),
    sampler=dict(num_negatives=2))
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=4)
param_scheduler = [dict(type='WarmupLinearDecayLR', warmup_ratio=0.25,
                        total_iters=4)]
train_dataloader = dict(batch_size=2, num_workers=0,
                        persistent_workers=False,
                        dataset=dict(urls={shards!r}, shuffle_buffer=0,
                                     shard_shuffle=False,
                                     pipeline={PIPELINE!r}))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=4,
                                     by_epoch=False),
                     logger=dict(type='LoggerHook', interval=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
''')
    runner = train_api.main([str(config), '--work-dir',
                             str(tmp_path / 'work')])
    assert runner.iter == 4
    with open(tmp_path / 'work' / 'bad_inputs_train.json') as f:
        report = json.load(f)
    assert report['counts'] == {'too_short': 1}


def test_train_refuses_such_a_config_before_any_work(tmp_path, monkeypatch):
    """tools/train.py checks the batches when the run starts, before the
    demo data is generated.  The demo samples with an InfiniteSampler
    (whose epochs never end), so the test switches to mmengine's
    DefaultSampler, whose last batch of an epoch may be short."""
    import os.path as osp

    from avtoolkit.apis import train as train_api
    from tool_runs import REPO

    def no_data_yet(cfg):
        raise AssertionError('data was prepared before the batch check')

    monkeypatch.setattr(train_api, 'prepare', no_data_yet)
    monkeypatch.chdir(tmp_path)
    config = osp.join(REPO, 'configs', 'pretrain', 'demo_mid_part.py')
    cases = [('train_dataloader.drop_last',
              ['train_dataloader.drop_last=False',
               'train_dataloader.sampler.type=DefaultSampler']),
             ('train_dataloader.batch_size',
              ['train_dataloader.batch_size=1'])]
    for named, changes in cases:
        with pytest.raises(ValueError, match=named):
            train_api.main([config, '--work-dir', str(tmp_path / 'work'),
                            '--cfg-options', *changes])
    assert not osp.exists(tmp_path / 'data')
    assert not osp.exists(tmp_path / 'work')
