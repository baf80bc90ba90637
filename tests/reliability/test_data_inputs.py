"""Training data that is partly or wholly wrong is reported, not lost.

* A list whose every entry is missing (a wrong ``data_prefix``), or that
  has no entry, is an error naming the list, the folder and the counts.
* Entries missing on disk or naming a directory are counted in the
  bad-input totals and in ``bad_inputs_train.json``, once per job,
  whatever the number of worker processes or a resume.
* A shard that breaks while it is read is recorded under its path.
* A list file that is not UTF-8 is an error naming the file, the byte
  offset and the line.
"""
import io
import json
import os
import tarfile
from unittest.mock import MagicMock

import pytest
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub
from torch.utils.data import DataLoader

from av_test_media import write_list, write_marker_video

from avtoolkit.datasets import AVVideoDataset, AVWebDataset, BadInputCounter
from avtoolkit.engine import BadInputLoggerHook

# One second of audio only: decoding stays cheap.
AUDIO_PIPELINE = dict(
    type='AVSequencePipeline', modalities=('audio', ),
    clips=dict(type='AVSampleClips', num_clips=1, clip_duration=1.0,
               frames_per_clip=0, mode='random'),
    decode=dict(type='AVDecode', sample_rate=16000),
    audio=[dict(type='LogMelSpectrogram', sample_rate=16000, n_mels=64,
                n_fft=512, win_length=400, hop_length=160, num_frames=101)])


@pytest.fixture(scope='module')
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp('data_inputs')
    names = []
    for i in range(4):
        path = str(root / f'v{i}.mp4')
        write_marker_video(path, duration=1.5, size=(32, 32), events=(0.3, ),
                           seed=i)
        names.append(f'v{i}.mp4')
    os.makedirs(root / 'a_folder.mp4')
    return dict(root=str(root), names=names)


def hook_runner(tmp_path, hub):
    runner = MagicMock()
    runner.rank, runner.iter, runner.work_dir = 0, 0, str(tmp_path)
    runner.message_hub = MessageHub.get_instance(hub)
    return runner


# --------------------------------------------------------- missing entries
@pytest.mark.parametrize('test_mode', [False, True])
def test_every_file_missing_names_the_prefix_and_list(media, tmp_path,
                                                      test_mode):
    lst = write_list(str(tmp_path / 'train_list.txt'), media['names'])
    wrong = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as info:
        AVVideoDataset(lst, pipeline=AUDIO_PIPELINE, test_mode=test_mode,
                       data_prefix=dict(video=wrong))
    message = str(info.value)
    assert lst in message and wrong in message
    assert '4 of 4 entries' in message and 'data_prefix' in message


def test_empty_list_names_the_list(media, tmp_path):
    lst = write_list(str(tmp_path / 'empty.txt'), ['# nothing here'])
    with pytest.raises(FileNotFoundError, match='no entry in .*empty.txt'):
        AVVideoDataset(lst, pipeline=AUDIO_PIPELINE,
                       data_prefix=dict(video=media['root']))


def test_missing_and_directory_entries_reach_the_totals(media, tmp_path):
    """Two bad entries of six, read by two worker processes: counted twice
    (not four times) in the job's totals and JSON, and still twice after a
    resume that finds them again."""
    lst = write_list(str(tmp_path / 'train_list.txt'),
                     media['names'] + ['gone.mp4', 'a_folder.mp4'])

    def run(work_dir, hub):
        ds = AVVideoDataset(lst, pipeline=AUDIO_PIPELINE,
                            data_prefix=dict(video=media['root']),
                            bad_input=dict(log_interval=0))
        assert len(ds) == 4
        loader = DataLoader(ds, batch_size=2, num_workers=2,
                            collate_fn=pseudo_collate)
        hook, runner = BadInputLoggerHook(interval=1), hook_runner(work_dir,
                                                                   hub)
        hook.before_train(runner)
        for i, batch in enumerate(loader):
            hook.after_train_iter(runner, i, batch)
        hook.after_train(runner)
        with open(work_dir / 'bad_inputs_train.json') as f:
            return json.load(f), runner

    (tmp_path / 'run1').mkdir()
    report, runner = run(tmp_path / 'run1', 'data_inputs_run1')
    assert report['counts'] == {'unreadable': 2}, report
    assert report['total'] == 2
    examples = report['examples']['unreadable']
    assert any(e.endswith('gone.mp4') for e in examples)
    assert any(e.endswith('a_folder.mp4') for e in examples)
    final = [c.args[0] for c in runner.logger.info.call_args_list
             if 'final' in c.args[0]]
    assert 'unreadable=2' in final[0]
    # a resumed job restores the counts from the message hub and meets the
    # same entries again
    (tmp_path / 'run2').mkdir()
    resumed_hub = MessageHub.get_instance('data_inputs_run2')
    resumed_hub.update_info('bad_input_counts', runner.message_hub.get_info(
        'bad_input_counts'))
    report, _ = run(tmp_path / 'run2', 'data_inputs_run2')
    assert report['counts'] == {'unreadable': 2}, report


# --------------------------------------------------------------- shards
def test_broken_shard_is_recorded_under_its_path(media, tmp_path):
    """A shard whose members break the grouping by key (a name twice):
    the record names the shard, not '?'."""
    with open(os.path.join(media['root'], 'v0.mp4'), 'rb') as f:
        data = f.read()
    shard = str(tmp_path / 'shard-000000.tar')
    with tarfile.open(shard, 'w') as tar:
        for name in ('a.mp4', 'a.mp4', 'b.mp4'):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    counter = BadInputCounter()
    ds = AVWebDataset(shard, pipeline=AUDIO_PIPELINE, shuffle_buffer=0,
                      num_samples=2,
                      bad_input=dict(counter=counter, log_interval=0))
    records = [r for s in ds for r in s['data_samples'].metainfo[
        'bad_inputs']]
    assert [r['reason'] for r in records] == ['unreadable_shard']
    assert records[0]['source'] == shard
    assert counter.examples['unreadable_shard'] == [shard]


# ------------------------------------------------------------ encoding
def test_non_utf8_list_names_file_offset_and_line(media, tmp_path):
    lst = str(tmp_path / 'train_list.txt')
    with open(lst, 'wb') as f:
        f.write(b'v0.mp4\nv1.mp4\ncaf\xe9.mp4\n')
    with pytest.raises(ValueError) as info:
        AVVideoDataset(lst, pipeline=AUDIO_PIPELINE,
                       data_prefix=dict(video=media['root']))
    message = str(info.value)
    assert lst in message and 'offset 17' in message
    assert 'line 3' in message and 'UTF-8' in message
