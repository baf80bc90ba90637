"""Synthetic downstream layouts (UCF101, Kinetics-Sounds, Charades, ESC-50),
their readers, ownership rules, and the held-out validation split."""
import csv
import json
import os
import os.path as osp
import wave

import pytest
from mmengine.config import Config

from avtoolkit.data_prep import synthetic_av as synthetic
from avtoolkit.datasets.public_datasets import (read_charades, read_esc50,
                                           read_kinetics_csv, read_ucf101)
from avtoolkit.data_prep import prepare
from avtoolkit.data_prep.synthetic_layouts import (
    MARKER_FILE, charades_actions, generate_synthetic_downstream,
    ucf_test_groups)
from avtoolkit.datasets.holdout import holdout_split
from avtoolkit.registry import DATASETS

# Small and fast: 2-s videos of 32x32 pixels.
SMALL = dict(seconds=2, height=32, width=32, fps=8, verbose=False)


pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp('downstream')
    out = {}
    out['ucf101'] = generate_synthetic_downstream(
        str(root / 'ucf101'), 'ucf101', num_videos=16, num_classes=4,
        num_groups=4, **SMALL)
    out['kinetics_sounds'] = generate_synthetic_downstream(
        str(root / 'ks'), 'kinetics_sounds', num_videos=12, num_classes=4,
        test_fraction=0.34, **SMALL)
    out['charades'] = generate_synthetic_downstream(
        str(root / 'charades'), 'charades', num_videos=12, num_classes=4,
        test_fraction=0.34, **SMALL)
    out['esc50'] = generate_synthetic_downstream(
        str(root / 'esc50'), 'esc50', num_videos=20, num_classes=4,
        seconds=5, verbose=False)
    return out


def test_ucf101_layout_reads_with_the_official_reader(layouts):
    root = layouts['ucf101']['out_dir']
    lists = osp.join(root, 'ucfTrainTestlist')
    with open(osp.join(lists, 'classInd.txt')) as f:
        names = [line.split()[1] for line in f]
    assert len(names) == 4
    tested = set()
    for k in (1, 2, 3):
        train = read_ucf101(osp.join(lists, f'trainlist0{k}.txt'),
                            osp.join(root, 'videos'))
        test = read_ucf101(osp.join(lists, f'testlist0{k}.txt'),
                           osp.join(root, 'videos'))
        assert len(train) + len(test) == 16
        assert {e['filename'] for e in train}.isdisjoint(
            e['filename'] for e in test)
        for entry in train + test:
            assert osp.isfile(entry['filename'])
            folder = osp.basename(osp.dirname(entry['filename']))
            assert names[entry['label']] == folder
            assert osp.basename(entry['filename']).startswith(
                f'v_{folder}_g')
        # split k tests on group k (4 groups: one per split, one always
        # in training), every class present in both parts
        groups = {int(osp.basename(e['filename']).split('_g')[1][:2])
                  for e in test}
        assert groups == set(ucf_test_groups(4)[k]) == {k}
        assert {e['label'] for e in test} == set(range(4))
        tested |= {e['filename'] for e in test}
    assert len(tested) == 12


def test_ucf_test_groups_follow_the_official_blocks():
    assert ucf_test_groups(25) == {1: list(range(1, 8)),
                                   2: list(range(8, 15)),
                                   3: list(range(15, 22))}
    with pytest.raises(ValueError, match='num_groups'):
        ucf_test_groups(3)


def test_kinetics_sounds_layout(layouts):
    root = layouts['kinetics_sounds']['out_dir']
    classes = osp.join(root, 'classes.txt')
    train = read_kinetics_csv(osp.join(root, 'train.csv'),
                              osp.join(root, 'videos'), classes)
    test = read_kinetics_csv(osp.join(root, 'validate.csv'),
                             osp.join(root, 'videos'), classes)
    assert len(train) == 8 and len(test) == 4
    assert sorted(e['label'] for e in test) == [0, 1, 2, 3]
    for entry in train + test:
        assert osp.isfile(entry['filename'])
        assert osp.basename(entry['filename']).endswith('_000000_000002.mp4')
    # the videos are those of the source dataset, labels included
    with open(osp.join(root, 'source', 'summary.json')) as f:
        source = json.load(f)
    sizes = sorted(v['bytes'] for v in source['videos'])
    assert sorted(osp.getsize(e['filename']) for e in train + test) == sizes


def test_charades_layout_has_time_stamped_multi_labels(layouts):
    root = layouts['charades']['out_dir']
    train = read_charades(osp.join(root, 'Charades_v1_train.csv'),
                          osp.join(root, 'Charades_v1_480'))
    test = read_charades(osp.join(root, 'Charades_v1_test.csv'),
                         osp.join(root, 'Charades_v1_480'))
    assert len(train) == 8 and len(test) == 4
    with open(osp.join(root, 'Charades_v1_classes.txt')) as f:
        classes = f.read().splitlines()
    assert len(classes) == 6 and classes[4].startswith('c004 ')
    assert len(layouts['charades']['classes']) == 6
    for entry in train + test:
        assert osp.isfile(entry['filename'])
        primary = [c for c in entry['label'] if c < 4]
        assert len(primary) == 1
        for c, start, end in entry['segments']:
            assert 0 <= start < end <= 2.0 + 1e-6
    # the event classes come from the events of the source videos
    with open(osp.join(root, 'source', 'summary.json')) as f:
        videos = json.load(f)['videos']
    for video in videos:
        actions = charades_actions(video, 4)
        assert actions[0][0] == video['label']
        loud = [a for a in actions if a[0] == 4]
        assert len(loud) == sum(e['loudness'] >= 0.85
                                for e in video['events'])
    assert any(4 in e['label'] or 5 in e['label'] for e in train + test)


def test_esc50_layout(layouts):
    root = layouts['esc50']['out_dir']
    csv_file = osp.join(root, 'meta', 'esc50.csv')
    clips = read_esc50(csv_file, osp.join(root, 'audio'))
    assert len(clips) == 20
    for fold in range(1, 6):
        in_fold = [c for c in clips if c['fold'] == fold]
        assert sorted(c['label'] for c in in_fold) == [0, 1, 2, 3]
    with open(csv_file, newline='') as f:
        header = next(csv.reader(f))
    assert header == ['filename', 'fold', 'target', 'category', 'esc10',
                      'src_file', 'take']
    with wave.open(clips[0]['filename']) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        assert w.getnframes() == 5 * w.getframerate() == 5 * 16000
    assert not osp.exists(osp.join(root, 'source'))


def test_same_parameters_same_files(layouts, tmp_path):
    again = generate_synthetic_downstream(
        str(tmp_path / 'ks'), 'kinetics_sounds', num_videos=12,
        num_classes=4, test_fraction=0.34, **SMALL)
    first = layouts['kinetics_sounds']
    assert again['files'] == first['files']
    for name in ('train.csv', 'validate.csv', 'classes.txt'):
        with open(osp.join(first['out_dir'], name)) as a, \
                open(osp.join(again['out_dir'], name)) as b:
            assert a.read() == b.read()
    other = generate_synthetic_downstream(
        str(tmp_path / 'ks_seed1'), 'kinetics_sounds', num_videos=12,
        num_classes=4, test_fraction=0.34, seed=1, **SMALL)
    assert other['files'] != first['files']


def test_ownership_skip_and_replacement(tmp_path):
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not written by'):
        generate_synthetic_downstream(str(foreign), 'esc50', num_videos=10,
                                      num_classes=2, seconds=1,
                                      verbose=False)
    assert sorted(os.listdir(foreign)) == ['notes.txt']

    out = str(tmp_path / 'esc')
    first = generate_synthetic_downstream(out, 'esc50', num_videos=10,
                                          num_classes=2, seconds=1,
                                          verbose=False)
    assert not first['skipped'] and osp.isfile(osp.join(out, MARKER_FILE))
    second = generate_synthetic_downstream(out, 'esc50', num_videos=10,
                                           num_classes=2, seconds=1,
                                           verbose=False)
    assert second['skipped']
    # other parameters: the old files are replaced, nothing else is touched
    (tmp_path / 'esc' / 'keep.txt').write_text('user file')
    # temporary files of writes cut short by a killed run (NAME.part: older
    # versions) go with the files they were written for
    wav = first['files'][0]['path']
    folder, name = osp.split(osp.join(out, wav))
    stale = [osp.join(folder, f'.{name}.ab12cd_4.tmp'),
             osp.join(folder, name + '.part'),
             osp.join(out, '.summary.json.x8y7z6w5.tmp')]
    for path in stale:
        with open(path, 'wb') as f:
            f.write(b'half')
    third = generate_synthetic_downstream(out, 'esc50', num_videos=15,
                                          num_classes=3, seconds=1,
                                          verbose=False)
    assert not third['skipped']
    wavs = sorted(os.listdir(osp.join(out, 'audio')))
    assert len(wavs) == 15
    assert sorted(f['path'] for f in third['files']) == sorted(
        ['audio/' + w for w in wavs] + ['meta/esc50.csv'])
    assert (tmp_path / 'esc' / 'keep.txt').read_text() == 'user file'
    assert not any(osp.exists(p) for p in stale)


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match='layout'):
        generate_synthetic_downstream(str(tmp_path / 'a'), 'hmdb51')
    with pytest.raises(ValueError, match='num_groups'):
        generate_synthetic_downstream(str(tmp_path / 'b'), 'ucf101',
                                      num_videos=8, num_classes=4)
    with pytest.raises(ValueError, match='test_fraction'):
        generate_synthetic_downstream(str(tmp_path / 'c'), 'charades',
                                      test_fraction=1.0)
    with pytest.raises(ValueError, match='even'):
        generate_synthetic_downstream(str(tmp_path / 'd'), 'charades',
                                      height=33)
    assert not os.listdir(tmp_path)


def test_prepare_from_config_and_the_cli(tmp_path, repo_root):
    out = str(tmp_path / 'from_cfg')
    cfg = Config(dict(synthetic_downstream=dict(
        out_dir=out, layout='esc50', num_videos=10, num_classes=2, seconds=1,
        verbose=False)))
    prepare(cfg)
    assert osp.isfile(osp.join(out, 'summary.json'))
    prepare(Config(dict()))  # nothing asked: no-op

    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'make_synthetic_downstream',
        osp.join(repo_root, 'tools', 'data', 'make_synthetic_downstream.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cli_out = str(tmp_path / 'cli')
    assert tool.main([cli_out, '--layout', 'esc50', '--num-videos', '10',
                      '--num-classes', '2', '--seconds', '1',
                      '--quiet']) == 0
    assert osp.isfile(osp.join(cli_out, 'meta', 'esc50.csv'))
    assert tool.main([str(tmp_path / 'bad'), '--layout', 'ucf101',
                      '--num-videos', '4', '--quiet']) == 2


# ------------------------------------------------------- held-out split
def test_holdout_split_on_a_generated_training_list(layouts):
    root = layouts['ucf101']['out_dir']
    dataset = dict(type='UCF101Dataset',
                   ann_file=osp.join(root, 'ucfTrainTestlist',
                                     'trainlist01.txt'),
                   data_prefix=dict(video=osp.join(root, 'videos')),
                   pipeline=[])
    train = DATASETS.build(dict(type='HoldOutSplit', part='train',
                                val_fraction=0.34, seed=0, dataset=dataset))
    val = holdout_split(dict(dataset), 'val', val_fraction=0.34, seed=0)
    full = DATASETS.build(dataset)
    names = lambda ds: [ds.get_data_info(i)['filename']  # noqa: E731
                        for i in range(len(ds))]
    assert set(names(train)).isdisjoint(names(val))
    assert sorted(names(train) + names(val)) == sorted(names(full))
    assert sorted(val.get_data_info(i)['label']
                  for i in range(len(val))) == [0, 1, 2, 3]
    assert val.holdout == dict(part='val', val_fraction=0.34, seed=0,
                               num_train=8, num_val=4, train_per_class=None)
    again = holdout_split(dict(dataset), 'val', val_fraction=0.34, seed=0)
    assert names(again) == names(val)
    with pytest.raises(ValueError, match='part'):
        holdout_split(dict(dataset), 'test')

    # Few labels: one training video per class, taken from the same
    # training part; the validation part does not change.
    few = holdout_split(dict(dataset), 'train', val_fraction=0.34, seed=0,
                        train_per_class=1)
    assert set(names(few)) < set(names(train))
    assert sorted(few.get_data_info(i)['label']
                  for i in range(len(few))) == [0, 1, 2, 3]
    assert few.holdout['train_per_class'] == 1
    assert few.holdout['num_train'] == 4
    assert names(holdout_split(dict(dataset), 'train', val_fraction=0.34,
                               seed=0, train_per_class=1)) == names(few)
    assert len(holdout_split(dict(dataset), 'train', val_fraction=0.34,
                             seed=0, train_per_class=50)) == len(train)
    with pytest.raises(ValueError, match='train_per_class'):
        holdout_split(dict(dataset), 'val', train_per_class=1)
    with pytest.raises(ValueError, match='train_per_class'):
        holdout_split(dict(dataset), 'train', train_per_class=0)


def test_generator_reuses_the_synthetic_generator(layouts):
    """The source videos are the generator's own output (its marker)."""
    root = layouts['ucf101']['out_dir']
    with open(osp.join(root, 'source', synthetic.MARKER_FILE)) as f:
        marker = json.load(f)
    assert marker['generator'] == synthetic.GENERATOR_NAME
    assert marker['params']['num_videos'] == 16
