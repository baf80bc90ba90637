"""The bad-input policy: skip + count in training, raise with the file name
in evaluation, records that reach the main process from DataLoader workers."""
import json
import pickle

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

from av_test_media import write_list, write_marker_video  # noqa: E402

from avtoolkit.datasets import AVVideoDataset  # noqa: E402
from avtoolkit.datasets.bad_input import (BadInputCounter,  # noqa: E402
                                          BadInputError, BadInputPolicy,
                                          TooManyBadInputs, attach_records,
                                          collect_bad_inputs)

PIPELINE = [
    dict(type='AVInit'),
    dict(type='AVSampleClips', num_clips=2, clip_duration=1.0,
         frames_per_clip=4),
    dict(type='AVDecode', short_side=32),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='LogMelSpectrogram'),
    dict(type='PackAVInputs'),
]
# reason(s) each broken kind may be reported with
EXPECTED = {
    'truncated': {'truncated', 'decode_error'},
    'no_index': {'unreadable'},
    'no_audio': {'no_audio'},
    'short': {'too_short'},
    'empty': {'unreadable'},
    'garbage': {'unreadable'},
}


@pytest.fixture(scope='module')
def media(tmp_path_factory):
    from avtoolkit.data_prep.synthetic_av import write_broken_inputs
    root = tmp_path_factory.mktemp('bad')
    good = [write_marker_video(str(root / f'good{i}.mp4'), duration=3.0,
                               seed=i)['path'] for i in range(2)]
    broken = write_broken_inputs(str(root / 'broken'))
    garbage = root / 'garbage.mp4'
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    broken['garbage'] = str(garbage)
    bad = {kind: broken[kind] for kind in EXPECTED}
    lines = [f'{p} 0' for p in good] + [f'{p} 1' for p in bad.values()]
    return dict(root=str(root), good=good, bad=bad,
                list=write_list(str(root / 'list.txt'), lines))


def test_error_and_policy_basics():
    err = BadInputError('no_audio', 'a/b.mp4', 'no audio stream')
    assert 'no_audio' in str(err) and 'a/b.mp4' in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert (again.reason, again.source, again.detail) == (
        'no_audio', 'a/b.mp4', 'no audio stream')
    with pytest.raises(ValueError):
        BadInputError('exploded', 'x')
    assert BadInputPolicy.build(None, test_mode=True).mode == 'raise'
    assert BadInputPolicy.build(None, test_mode=False).mode == 'skip'
    assert BadInputPolicy.build(dict(max_retries=3)).max_retries == 3
    with pytest.raises(ValueError):
        BadInputPolicy('ignore')

    counter = BadInputCounter()
    policy = BadInputPolicy('skip', counter=counter, log_interval=0)
    rec = policy.handle(RuntimeError('boom'), 'c.mp4')
    assert rec['reason'] == 'pipeline_error' and 'boom' in rec['detail']
    policy.handle(err, 'a/b.mp4')
    assert counter.counts == {'pipeline_error': 1, 'no_audio': 1}
    with pytest.raises(BadInputError, match='c.mp4'):
        BadInputPolicy('raise').handle(ValueError('bad'), 'c.mp4')


def test_counter_merge_format_dump(tmp_path):
    a, b = BadInputCounter(max_examples=2), BadInputCounter()
    a.update([dict(reason='too_short', source=f'v{i}') for i in range(3)])
    b.add('unreadable_shard', 's.tar')
    a.merge(b)
    assert a.total == 4 and a.examples['too_short'] == ['v0', 'v1']
    assert a.as_scalars() == {'bad_input/too_short': 3,
                              'bad_input/unreadable_shard': 1,
                              'bad_input/total': 4}
    assert 'too_short=3' in a.format()
    assert a.has_news() and not a.has_news()
    a.all_reduce()  # not distributed: unchanged
    assert a.total == 4
    a.dump(str(tmp_path / 'bad.json'))
    data = json.loads((tmp_path / 'bad.json').read_text())
    assert data['total'] == 4 and data['counts']['too_short'] == 3


def test_skip_mode_counts_by_reason(media):
    counter = BadInputCounter()
    ds = AVVideoDataset(media['list'], pipeline=PIPELINE,
                        bad_input=dict(mode='skip', counter=counter,
                                       log_interval=0))
    assert len(ds) == 2 + len(EXPECTED)
    np.random.seed(0)
    records = []
    for idx in range(len(ds)):
        sample = ds[idx]
        # whatever was asked, a valid sample comes back
        assert sample['inputs']['video'].shape == (2, 3, 4, 32, 48)
        assert sample['inputs']['audio'].shape == (2, 1, 128, 220)
        assert sample['data_samples'].metainfo['filename'] in media['good']
        records += sample['data_samples'].metainfo['bad_inputs']
    by_source = {}
    for rec in records:
        by_source.setdefault(rec['source'], set()).add(rec['reason'])
    for kind, path in media['bad'].items():
        assert path in by_source, kind
        assert by_source[path] <= EXPECTED[kind], (kind, by_source[path])
    assert counter.total == len(records)
    assert not any(p in by_source for p in media['good'])


def test_raise_mode_names_the_file(media):
    ds = AVVideoDataset(media['list'], pipeline=PIPELINE, test_mode=True)
    names = [info['filename'] for info in
             (ds.get_data_info(i) for i in range(len(ds)))]
    for kind, path in media['bad'].items():
        with pytest.raises(BadInputError) as info:
            ds[names.index(path)]
        assert path in str(info.value)
        assert info.value.reason in EXPECTED[kind]
    assert ds[names.index(media['good'][0])]['inputs']['video'].shape[0] == 2


def test_missing_files(media, tmp_path):
    lst = write_list(str(tmp_path / 'l.txt'),
                     [media['good'][0], str(tmp_path / 'gone.mp4')])
    counter = BadInputCounter()
    ds = AVVideoDataset(lst, pipeline=PIPELINE,
                        bad_input=dict(counter=counter))
    assert len(ds) == 1 and ds.missing_files == [str(tmp_path / 'gone.mp4')]
    assert counter.counts == {'unreadable': 1}
    with pytest.raises(FileNotFoundError, match='gone.mp4'):
        AVVideoDataset(lst, pipeline=PIPELINE, test_mode=True)


def test_records_reach_main_process_from_workers(media):
    ds = AVVideoDataset(media['list'], pipeline=PIPELINE,
                        bad_input=dict(log_interval=0))
    loader = DataLoader(ds, batch_size=2, num_workers=2,
                        collate_fn=pseudo_collate)
    main, records, seen = BadInputCounter(), [], 0
    for batch in loader:
        seen += len(batch['data_samples'])
        got = collect_bad_inputs(batch)
        records += got
        main.update(got)
    assert seen == len(ds)
    # every broken file failed in some worker and was reported here, with
    # its reason
    for kind, path in media['bad'].items():
        reasons = {r['reason'] for r in records if r['source'] == path}
        assert reasons and reasons <= EXPECTED[kind], (kind, reasons)
    assert main.total == len(records) >= len(EXPECTED)


def test_too_many_failures(media, tmp_path):
    lst = write_list(str(tmp_path / 'l.txt'),
                     [media['bad']['short'], media['bad']['no_audio']])
    ds = AVVideoDataset(lst, pipeline=PIPELINE,
                        bad_input=dict(max_retries=5, log_interval=0,
                                       counter=BadInputCounter()))
    with pytest.raises(TooManyBadInputs, match='5 consecutive'):
        ds[0]


def test_unexpected_exception_is_counted_as_pipeline_error(media, tmp_path):
    """A transform that fails (a bug or a bad configuration) is skipped and
    counted as pipeline_error in training, raised in evaluation."""
    lst = write_list(str(tmp_path / 'l.txt'), [media['good'][0]])
    bad_pipe = PIPELINE[:3] + [dict(type='RandomCrop', size=999)]
    counter = BadInputCounter()
    ds = AVVideoDataset(lst, pipeline=bad_pipe,
                        bad_input=dict(max_retries=2, counter=counter,
                                       log_interval=0))
    with pytest.raises(TooManyBadInputs):
        ds[0]
    assert counter.counts == {'pipeline_error': 2}
    ds = AVVideoDataset(lst, pipeline=bad_pipe, test_mode=True)
    with pytest.raises(BadInputError, match='pipeline_error.*good0'):
        ds[0]


def test_collect_and_attach():
    from mmaction.structures import ActionDataSample
    recs = [dict(reason='no_audio', source='x', detail='')]
    with_ds = attach_records(dict(data_samples=ActionDataSample()), recs)
    without = attach_records(dict(inputs=torch.zeros(1)), recs)
    batch = pseudo_collate([with_ds, attach_records(
        dict(data_samples=ActionDataSample()), [])])
    assert collect_bad_inputs(batch) == recs
    assert collect_bad_inputs([without]) == recs


def test_keyed_records_and_adjustments(tmp_path):
    """A keyed record counts once across updates, merges (ranks) and state
    round trips (resume); adjustments are reported apart from skips."""
    listed = dict(reason='unreadable', source='list.txt', count=3,
                  examples=['a.mp4', 'b.mp4'], key='list-entries:list.txt:1')
    a, b = BadInputCounter(), BadInputCounter()
    assert a.update([listed, listed]) == 1
    b.update([listed, dict(reason='too_short', source='c.mp4'),
              dict(reason='looped', source='d.mp4')])
    a.merge(b)
    assert a.counts == {'unreadable': 3, 'too_short': 1, 'looped': 1}
    assert a.total == a.skipped == 4 and a.adjusted == 1
    assert a.examples['unreadable'] == ['a.mp4', 'b.mp4']
    resumed = BadInputCounter()
    resumed.load_state_dict(a.state_dict())
    assert resumed.update([listed]) == 0 and resumed.counts == a.counts
    text = a.format()
    assert text.splitlines()[0] == ('bad inputs: 4 skipped (too_short=1, '
                                    'unreadable=3); 1 used after a policy '
                                    'change (looped=1)')
    assert 'd.mp4' in text
    only_looped = BadInputCounter()
    only_looped.add('looped', 'd.mp4')
    assert only_looped.format().startswith('bad inputs: 0 skipped; 1 used')
    assert BadInputCounter().format() == 'bad inputs: none'
    a.dump(str(tmp_path / 'bad.json'))
    data = json.loads((tmp_path / 'bad.json').read_text())
    assert (data['total'], data['skipped'], data['adjusted']) == (4, 4, 1)
