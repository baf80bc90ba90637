"""AVSequencePipeline: one pipeline dict for the V, A and M settings."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose

from avtoolkit.datasets import AVVideoDataset
from avtoolkit.datasets.transforms import (AVSequencePipeline,
                                           flatten_pipeline, sequence_steps)
from avtoolkit.evaluation.loaders import pipeline_modalities
from avtoolkit.registry import TRANSFORMS

CLIPS = dict(type='AVSampleClips', num_clips=3, clip_duration=1.0,
             frames_per_clip=4, mode='center', short_policy='loop')
DECODE = dict(type='AVDecode', short_side=32, sample_rate=16000)
VIDEO = [dict(type='CenterCrop', crop_size=32),
         dict(type='FormatShape', input_format='NCTHW')]
AUDIO = [dict(type='LogMelSpectrogram', sample_rate=16000, n_mels=32,
              n_fft=512, win_length=400, hop_length=160, num_frames=101),
         dict(type='AudioNormalize', mean=-4.0, std=4.0)]


def seq_cfg(**kw):
    return dict(type='AVSequencePipeline', clips=CLIPS, decode=DECODE,
                video=VIDEO, audio=AUDIO, **kw)


def types(steps):
    return [s['type'] for s in steps]


@pytest.mark.parametrize('modalities, expected', [
    (('video', 'audio'), ['AVInit', 'AVSampleClips', 'AVDecode', 'CenterCrop',
                          'FormatShape', 'LogMelSpectrogram',
                          'AudioNormalize', 'PackAVInputs']),
    (('video', ), ['AVInit', 'AVSampleClips', 'AVDecode', 'CenterCrop',
                   'FormatShape', 'PackAVInputs']),
    (('audio', ), ['AVInit', 'AVSampleClips', 'AVDecode',
                   'LogMelSpectrogram', 'AudioNormalize', 'PackAVInputs']),
])
def test_steps_of_each_setting(modalities, expected):
    steps = flatten_pipeline(seq_cfg(modalities=modalities, num_threads=2))
    assert types(steps) == expected
    assert steps[0]['modalities'] == modalities
    assert steps[0]['num_threads'] == 2
    # a list holding the pipeline among other steps is expanded in place
    extra = dict(type='VideoNormalize')
    assert types(flatten_pipeline([seq_cfg(modalities=modalities), extra])) \
        == expected + ['VideoNormalize']
    # plain step lists pass through unchanged
    assert flatten_pipeline(steps) == steps
    assert flatten_pipeline(None) == []


def test_custom_pack_and_single_step_lists():
    steps = sequence_steps(CLIPS, DECODE, ('audio', ), audio=AUDIO[0],
                           pack=dict(type='PackAVInputs', meta_keys=()))
    assert types(steps)[-2:] == ['LogMelSpectrogram', 'PackAVInputs']
    assert steps[-1]['meta_keys'] == ()


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(modalities=()), ValueError, 'non-empty subset'),
    (dict(modalities=('video', 'depth')), ValueError, 'non-empty subset'),
    (dict(modalities=('audio', 'audio')), ValueError, 'non-empty subset'),
    (dict(video=None), ValueError, 'no video steps'),
    (dict(audio='LogMelSpectrogram'), TypeError, 'list of transform'),
    (dict(video=[dict(type='CenterCrop'), 3]), TypeError, 'every step'),
    (dict(clips='AVSampleClips'), TypeError, 'clips must be'),
    (dict(unknown=1), TypeError, r"unknown arguments \['unknown'\]"),
    ({'3': dict(crop_size=32)}, TypeError, 'pipeline.video.0'),
])
def test_bad_configs_raise(kwargs, error, match):
    cfg = seq_cfg()
    cfg.update(kwargs)
    with pytest.raises(error, match=match):
        flatten_pipeline(cfg)
    with pytest.raises(error, match=match):
        TRANSFORMS.build(cfg)


def test_missing_parts_raise():
    with pytest.raises(TypeError, match=r"needs \['decode'\]"):
        flatten_pipeline(dict(type='AVSequencePipeline', clips=CLIPS,
                              video=VIDEO))


def test_audio_setting_needs_no_video_steps():
    cfg = seq_cfg(modalities=('audio', ))
    cfg['video'] = None
    steps = flatten_pipeline(cfg)
    assert 'FormatShape' not in types(steps)


@pytest.mark.parametrize('modalities', [('video', 'audio'), ('video', ),
                                        ('audio', )])
def test_same_output_as_the_flat_list(synthetic_av_dir, modalities):
    """The built pipeline gives exactly what its flat list gives."""
    video = osp.join(synthetic_av_dir, 'videos', 'synth_00000.mp4')
    cfg = seq_cfg(modalities=modalities)
    composite = TRANSFORMS.build(cfg)
    assert isinstance(composite, AVSequencePipeline)
    assert composite.modalities == modalities
    assert [type(t).__name__ for t in composite.transforms] == \
        types(flatten_pipeline(cfg))
    assert 'AVInit' in repr(composite)
    flat = Compose(flatten_pipeline(cfg))
    a = composite(dict(filename=video))
    b = flat(dict(filename=video))
    assert sorted(a['inputs']) == sorted(b['inputs']) == sorted(
        {'video': 'video', 'audio': 'audio'}[m] for m in modalities)
    for key in a['inputs']:
        assert torch.equal(a['inputs'][key], b['inputs'][key]), key
    if 'video' in modalities:
        assert a['inputs']['video'].shape == (3, 3, 4, 32, 32)
    if 'audio' in modalities:
        assert a['inputs']['audio'].shape == (3, 1, 32, 101)


def test_dataset_takes_the_pipeline_dict(synthetic_av_dir):
    ds = AVVideoDataset(osp.join(synthetic_av_dir, 'val_list.txt'),
                        pipeline=seq_cfg(modalities=('audio', )),
                        data_prefix=dict(video=synthetic_av_dir),
                        test_mode=True)
    sample = ds[0]
    assert list(sample['inputs']) == ['audio']
    assert pipeline_modalities(ds) == ('audio', )
    listed = AVVideoDataset(osp.join(synthetic_av_dir, 'val_list.txt'),
                            pipeline=[seq_cfg(modalities=('video', ))],
                            data_prefix=dict(video=synthetic_av_dir),
                            test_mode=True)
    assert pipeline_modalities(listed) == ('video', )


def test_settings_merge_into_a_base_config(tmp_path):
    """A derived config switches the setting and changes one part by
    merging dicts, as the V/A downstream configs do."""
    base = tmp_path / 'base.py'
    base.write_text(
        f'train_pipeline = {seq_cfg()!r}\n'
        'train_dataloader = dict(dataset=dict(type="AVVideoDataset", '
        'pipeline=train_pipeline))\n')
    leaf = tmp_path / 'leaf.py'
    leaf.write_text(
        "_base_ = ['./base.py']\n"
        "train_dataloader = dict(dataset=dict(pipeline=dict(\n"
        "    modalities=('video', ), decode=dict(short_side=64))))\n")
    cfg = Config.fromfile(str(leaf))
    steps = flatten_pipeline(cfg.train_dataloader.dataset.pipeline)
    assert types(steps) == ['AVInit', 'AVSampleClips', 'AVDecode',
                            'CenterCrop', 'FormatShape', 'PackAVInputs']
    assert tuple(steps[0]['modalities']) == ('video', )
    assert steps[2]['short_side'] == 64 and steps[2]['sample_rate'] == 16000
