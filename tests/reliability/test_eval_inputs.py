"""Evaluation never shrinks or changes its data silently.

* A video shorter than the clips, looped by ``short_policy='loop'``, is
  counted and named in the bad-input report of evaluation (and of
  training), down to the final line, which no longer says "none".
* A label of an evaluation CSV that is not a known class (a typo) is an
  error naming the file, the line, the label and the nearest classes; a
  trailing space is not a difference.
* A CSV without a column a reader needs, a row without a value and a file
  that is not UTF-8 are errors naming the file and where.
"""
import csv
import json
import os
import os.path as osp
import wave
from unittest.mock import MagicMock

import numpy as np
import pytest
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub
from torch.utils.data import DataLoader

from av_test_media import write_list, write_marker_video

from avtoolkit.datasets import AVVideoDataset
from avtoolkit.engine import BadInputLoggerHook
from avtoolkit.registry import DATASETS

# Two centred one-second clips of four frames; shorter videos are looped,
# as the evaluation pipelines of the configs do.
LOOP_PIPELINE = dict(
    type='AVSequencePipeline', modalities=('video', 'audio'),
    clips=dict(type='AVSampleClips', num_clips=2, clip_duration=1.0,
               frames_per_clip=4, mode='center', short_policy='loop'),
    decode=dict(type='AVDecode', short_side=32, sample_rate=16000),
    video=[dict(type='CenterCrop', crop_size=32),
           dict(type='FormatShape', input_format='NCTHW')],
    audio=[dict(type='LogMelSpectrogram', sample_rate=16000, n_mels=64,
                n_fft=512, win_length=400, hop_length=160, num_frames=101)])


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    """Two 2.5-s videos and one of 1.2 s (looped for two 1-s clips)."""
    root = tmp_path_factory.mktemp('looped')
    names = []
    for i, seconds in enumerate((2.5, 1.2, 2.5)):
        name = str(root / f'v{i}.mp4')
        write_marker_video(name, duration=seconds, size=(48, 32),
                           events=(0.4, ), seed=i)
        names.append(name)
    return dict(list=write_list(str(root / 'list.txt'),
                                [f'{n} {i}' for i, n in enumerate(names)]),
                short=names[1])


def hook_runner(tmp_path):
    runner = MagicMock()
    runner.rank, runner.iter, runner.work_dir = 0, 0, str(tmp_path)
    runner.message_hub = MessageHub.get_instance(f'eval_inputs_{id(runner)}')
    return runner


@pytest.mark.parametrize('mode', ['test', 'train'])
def test_looped_video_is_counted_and_named(videos, tmp_path, mode):
    """Test mode (evaluation, bad inputs raise) and training (skip) alike:
    the looped video is in the log, the final line and the JSON."""
    ds = AVVideoDataset(videos['list'], pipeline=LOOP_PIPELINE,
                        test_mode=mode == 'test')
    loader = DataLoader(ds, batch_size=2, num_workers=0,
                        collate_fn=pseudo_collate)
    hook, runner = BadInputLoggerHook(interval=1), hook_runner(tmp_path)
    for i, batch in enumerate(loader):
        if mode == 'test':
            hook.after_test_iter(runner, i, batch)
        else:
            hook.after_train_iter(runner, i, batch)
    if mode == 'test':
        hook.after_test_epoch(runner)
    else:
        hook.after_train(runner)
    final = [c.args[0] for c in runner.logger.info.call_args_list
             if 'final' in c.args[0]]
    assert len(final) == 1
    assert 'bad inputs: none' not in final[0]
    assert 'looped=1' in final[0] and videos['short'] in final[0]
    with open(tmp_path / f'bad_inputs_{mode}.json') as f:
        report = json.load(f)
    assert report['counts'] == {'looped': 1}
    assert report['adjusted'] == 1 and report['skipped'] == 0
    assert report['examples']['looped'] == [videos['short']]


def test_looped_recording_in_the_protocol_report(tmp_path):
    """The frozen-feature SVM protocol (ESC-50) reports looped recordings in
    its results and in the last line of its table."""
    from avtoolkit.evaluation.protocols import (FrozenFeatureSVMProtocol,
                                                format_results_table)
    from mmengine.config import Config
    root = tmp_path / 'esc50'
    os.makedirs(root / 'audio')
    os.makedirs(root / 'meta')
    rows, rate = [], 16000
    for fold in range(1, 6):
        for c in range(2):
            name = f'{fold}-{c}.wav'
            seconds = 0.6 if (fold, c) == (3, 1) else 2.0
            t = np.arange(int(seconds * rate)) / rate
            x = 0.3 * np.sin(2 * np.pi * 300 * (c + 1) * t)
            with wave.open(str(root / 'audio' / name), 'wb') as f:
                f.setnchannels(1)
                f.setsampwidth(2)
                f.setframerate(rate)
                f.writeframes((x * 32767).astype('<i2').tobytes())
            rows.append(dict(filename=name, fold=fold, target=c,
                             category=f'c{c}'))
    with open(root / 'meta' / 'esc50.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    model = Config.fromfile(osp.join(repo, 'configs', '_base_', 'models',
                                     'avbert_tiny_arch.py')).model
    pipeline = [
        dict(type='AVInit', modalities=('audio', )),
        dict(type='AVSampleClips', num_clips=2, clip_duration=1.0,
             frames_per_clip=0, mode='uniform', short_policy='loop'),
        dict(type='AVDecode', sample_rate=rate),
        dict(type='LogMelSpectrogram', sample_rate=rate, n_mels=64,
             n_fft=512, win_length=400, hop_length=160, num_frames=101),
        dict(type='PackAVInputs')]
    protocol = FrozenFeatureSVMProtocol(
        dataset=dict(type='ESC50Dataset', data_root=str(root),
                     ann_file='meta/esc50.csv',
                     data_prefix=dict(video='audio'), pipeline=pipeline,
                     test_mode=True),
        C_grid=[1.0], svm=dict(max_iter=20), batch_size=10, cache=False,
        dump_scores=False, progress=False, device='cpu')
    results = protocol.run(model, None, work_dir=str(tmp_path))
    bad = results['random_init']['bad_inputs']
    assert bad['counts'] == {'looped': 1} and bad['adjusted'] == 1
    table = format_results_table(results)
    last = table.splitlines()
    assert 'looped=1' in last[-2] and '3-1.wav' in last[-1]


# ------------------------------------------------------------ labels
def write(path, text, encoding='utf-8'):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding=encoding, newline='') as f:
        f.write(text)
    return path


def kinetics_sounds_eval(root, rows, classes=('dog barking',
                                              'playing drums')):
    """A Kinetics-Sounds evaluation set: the CSV ``rows`` (label, id) and
    an empty file per row."""
    lines = ['label,youtube_id,time_start,time_end,split']
    for label, yid in rows:
        lines.append(f'{label},{yid},0,10,validate')
        write(osp.join(root, 'videos', f'{yid}_000000_000010.mp4'), '')
    write(osp.join(root, 'classes.txt'), ''.join(c + '\n' for c in classes))
    write(osp.join(root, 'validate.csv'), '\n'.join(lines) + '\n')
    return dict(type='KineticsSoundsDataset', data_root=root,
                ann_file='validate.csv', classes='classes.txt',
                data_prefix=dict(video='videos'), test_mode=True)


def test_label_typo_in_an_evaluation_csv_is_an_error(tmp_path):
    root = str(tmp_path / 'ks')
    rows = [('dog barking', f'd{i}') for i in range(5)] + \
        [('playing drums', f'p{i}') for i in range(4)] + \
        [('playing drum', 'p4')]  # line 11: a typo
    cfg = kinetics_sounds_eval(root, rows)
    with pytest.raises(ValueError) as info:
        DATASETS.build(cfg)
    message = str(info.value)
    assert 'validate.csv' in message and 'line 11' in message
    assert "'playing drum'" in message and "'playing drums'" in message
    assert 'unknown_labels' in message


def test_trailing_spaces_are_not_differences(tmp_path):
    """Labels and class names are compared without surrounding white
    space, in the CSV and in the class list."""
    root = str(tmp_path / 'ks')
    rows = [('dog barking ', 'd0'), ('playing drums', 'p0'),
            (' playing drums  ', 'p1')]
    cfg = kinetics_sounds_eval(root, rows,
                               classes=('dog barking', 'playing drums '))
    ds = DATASETS.build(cfg)
    assert len(ds) == 3
    assert [ds.get_data_info(i)['label'] for i in range(3)] == [0, 1, 1]


# ------------------------------------------------------------ CSV files
def test_missing_csv_column_names_file_and_columns(tmp_path):
    root = str(tmp_path / 'k700')
    write(osp.join(root, 'val.csv'),
          'label,youtube_id,time_end,split\nzumba,abc,10,val\n')
    with pytest.raises(ValueError) as info:
        DATASETS.build(dict(type='Kinetics700Dataset', data_root=root,
                            ann_file='val.csv', test_mode=True))
    message = str(info.value)
    assert 'val.csv' in message and "'time_start'" in message
    assert "['label', 'youtube_id', 'time_end', 'split']" in message


def test_row_without_a_value_names_the_line(tmp_path):
    root = str(tmp_path / 'k700')
    write(osp.join(root, 'val.csv'),
          'label,youtube_id,time_start,time_end,split\n'
          'zumba,abc,0,10,val\n'
          'zumba,def,0\n')
    with pytest.raises(ValueError) as info:
        DATASETS.build(dict(type='Kinetics700Dataset', data_root=root,
                            ann_file='val.csv', test_mode=True))
    message = str(info.value)
    assert 'val.csv' in message and 'line 3' in message
    assert "'time_end'" in message


@pytest.mark.parametrize('kind', ['csv', 'class list'])
def test_non_utf8_annotation_names_file_offset_and_encoding(tmp_path,
                                                            kind):
    root = str(tmp_path / 'ks')
    cfg = kinetics_sounds_eval(root, [('dog barking', 'd0')])
    target = osp.join(root, 'validate.csv' if kind == 'csv'
                      else 'classes.txt')
    with open(target, 'rb') as f:
        data = f.read()
    cut = data.index(b'dog')
    with open(target, 'wb') as f:  # 'dög' in Latin-1
        f.write(data[:cut] + 'd\xf6g'.encode('latin-1') + data[cut + 3:])
    with pytest.raises(ValueError) as info:
        DATASETS.build(cfg)
    message = str(info.value)
    assert target in message and f'offset {cut + 1}' in message
    assert 'UTF-8' in message and 'line' in message
