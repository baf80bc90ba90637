"""AVVideoDataset (list files) and AVWebDataset (tar shards)."""
import os.path as osp
import tarfile

import pytest
import torch
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

from av_test_media import write_list, write_marker_video  # noqa: E402

from avtoolkit.datasets import AVVideoDataset, AVWebDataset  # noqa: E402
from avtoolkit.datasets.av_video_dataset import parse_list_line  # noqa
from avtoolkit.datasets.av_webdataset import expand_shard_urls  # noqa: E402
from avtoolkit.datasets.bad_input import (BadInputCounter,  # noqa: E402
                                          BadInputError)
from avtoolkit.data_prep.shards import build_shards  # noqa: E402

PIPELINE = [
    dict(type='AVInit'),
    dict(type='AVSampleClips', num_clips=3, clip_duration=1.0,
         frames_per_clip=8, mode='random', jitter=0.1),
    dict(type='AVDecode', short_side=64),
    dict(type='RandomCrop', size=56),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='LogMelSpectrogram'),
    dict(type='AudioNormalize', mean=-6.0, std=4.0),
    dict(type='PackAVInputs'),
]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """12 list entries over 3 small videos, packed 2 per shard (6 shards,
    original bytes)."""
    root = tmp_path_factory.mktemp('avds')
    videos = [write_marker_video(str(root / f'v{i}.mp4'), duration=3.5,
                                 seed=i)['path'] for i in range(3)]
    lines = [f'{osp.basename(videos[i % 3])} {i % 5}' for i in range(12)]
    lst = write_list(str(root / 'list.txt'), lines)
    report = build_shards(lst, str(root / 'shards'), shard_size=2,
                          progress=False)
    assert report['num_samples'] == 12
    return dict(root=str(root), list=lst, shards=str(root / 'shards'),
                videos=videos)


def raw_dataset(shards, **kwargs):
    """Shards without decoding (records only): fast for order tests."""
    kwargs.setdefault('shuffle_buffer', 4)
    return AVWebDataset(shards, pipeline=[], **kwargs)


def keys_of(batch):
    return [s['key'] for s in batch]


# ------------------------------------------------------------- list files
def test_list_line_parsing():
    assert parse_list_line('a/b.mp4 3') == ('a/b.mp4', [3])
    assert parse_list_line('a/b.mp4') == ('a/b.mp4', [])
    assert parse_list_line('my clip 2.mp4 1 4\n') == ('my clip 2.mp4',
                                                      [1, 4])
    assert parse_list_line('dir with space/x 1.mp4\t7') == (
        'dir with space/x 1.mp4', [7])
    assert parse_list_line('  # comment') is None
    assert parse_list_line('   ') is None


def test_av_video_dataset(data, tmp_path):
    ds = AVVideoDataset(data['list'], pipeline=PIPELINE,
                        data_prefix=dict(video=data['root']))
    assert len(ds) == 12
    sample = ds[7]
    assert sample['inputs']['video'].shape == (3, 3, 8, 56, 56)
    assert sample['inputs']['video'].dtype == torch.uint8
    assert sample['inputs']['audio'].shape == (3, 1, 128, 220)
    assert sample['data_samples'].gt_labels.item.tolist() == [7 % 5]
    assert sample['data_samples'].metainfo['bad_inputs'] == []
    loader = DataLoader(ds, batch_size=3, num_workers=2,
                        collate_fn=pseudo_collate)
    batch = next(iter(loader))
    assert len(batch['inputs']['video']) == 3
    assert batch['inputs']['audio'][0].shape == (3, 1, 128, 220)

    multi = write_list(str(tmp_path / 'multi.txt'),
                       [f'{data["videos"][0]} 1 3', data['videos'][1]])
    with pytest.raises(ValueError, match='multi_class'):
        AVVideoDataset(multi, pipeline=PIPELINE)
    ds = AVVideoDataset(multi, pipeline=PIPELINE, multi_class=True,
                        num_classes=4)
    assert ds.get_data_info(0)['label'].tolist() == [0, 1, 0, 1]
    assert 'label' not in ds.get_data_info(1)  # unlabelled


# ------------------------------------------------------------------ shards
def test_web_dataset_reads_every_sample(data):
    ds = AVWebDataset(data['shards'], pipeline=PIPELINE, shuffle_buffer=3)
    assert len(ds) == 12 and len(ds.urls) == 6
    samples = list(ds)
    assert len(samples) == 12
    sources = sorted(s['data_samples'].metainfo['filename'].split('#')[1]
                     for s in samples)
    assert sources == [f'{i:09d}' for i in range(12)]
    for s in samples:
        key = int(s['data_samples'].metainfo['filename'].split('#')[1])
        assert s['data_samples'].gt_labels.item.tolist() == [key % 5]
        assert s['inputs']['video'].shape == (3, 3, 8, 56, 56)
    loader = DataLoader(ds, batch_size=4, num_workers=2,
                        collate_fn=pseudo_collate)
    assert sum(len(b['data_samples']) for b in loader) == 12


def test_every_shard_once_per_epoch_over_ranks_and_workers(data,
                                                           monkeypatch):
    """2 ranks x 2 DataLoader workers: each sample exactly once per epoch,
    in a different shard order from epoch to epoch."""
    monkeypatch.setenv('WORLD_SIZE', '2')
    orders = []
    for epoch in range(2):
        seen = []
        for rank in range(2):
            monkeypatch.setenv('RANK', str(rank))
            ds = raw_dataset(data['shards'])
            assert len(ds) == 6  # per rank
            ds.set_epoch(epoch)
            loader = DataLoader(ds, batch_size=2, num_workers=2,
                                collate_fn=list)
            keys = [k for b in loader for k in keys_of(b)]
            seen += keys
            orders.append(keys)
        assert sorted(seen) == [f'{i:09d}' for i in range(12)]
    assert orders[:2] != orders[2:]
    shards_e0 = {u for r in range(2) for w in range(2)
                 for u in ds.worker_shards(0, r, 2, w, 2)}
    assert shards_e0 == set(ds.urls)


def test_epoch_advances_with_persistent_workers(data):
    ds = raw_dataset(data['shards'])
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=list,
                        persistent_workers=True)
    first = [k for b in loader for k in keys_of(b)]
    second = [k for b in loader for k in keys_of(b)]
    assert sorted(first) == sorted(second) and first != second


@pytest.mark.parametrize('stop,batch', [(3, 2), (7, 2), (3, 4), (5, 4)])
def test_resume_position(data, stop, batch):
    """Starting from position_after(n) gives exactly the batches that
    followed batch n, also across an epoch boundary and after a worker ran
    out (batch 4: each worker yields a batch of 4, then one of 2)."""
    def loader(ds):
        return DataLoader(ds, batch_size=batch, num_workers=2,
                          collate_fn=list, persistent_workers=True)

    per_epoch = 6 if batch == 2 else 4
    ds = raw_dataset(data['shards'], seed=5)
    full = loader(ds)
    expected = [keys_of(b) for _ in range(2) for b in full]
    assert len(expected) == 2 * per_epoch
    resumed = raw_dataset(data['shards'], seed=5)
    epoch, skip, first = resumed.position_after(stop, batch_size=batch,
                                                num_workers=2)
    assert epoch == stop // per_epoch
    resumed.set_position(epoch, skip, first)
    got = [keys_of(b) for b in loader(resumed)]
    assert got == expected[stop:(epoch + 1) * per_epoch]


def test_unreadable_shard(data, tmp_path):
    good = expand_shard_urls(data['shards'])
    garbage = tmp_path / 'garbage.tar'
    garbage.write_bytes(b'not a tar file at all' * 100)
    cut = tmp_path / 'cut.tar'
    with open(good[0], 'rb') as f:
        blob = f.read()
    cut.write_bytes(blob[:len(blob) // 2 + 100])
    urls = good[1:] + [str(garbage), str(cut)]
    counter = BadInputCounter()
    ds = AVWebDataset(urls, pipeline=PIPELINE, shard_shuffle=False,
                      shuffle_buffer=0, num_samples=10,
                      bad_input=dict(counter=counter, log_interval=0))
    out = list(ds)
    assert len(out) >= 10  # every good shard, and the readable part of cut
    records = [r for s in out for r in
               s['data_samples'].metainfo['bad_inputs']]
    bad_sources = {r['source'] for r in records
                   if r['reason'] == 'unreadable_shard'}
    assert str(garbage) in bad_sources and str(cut) in bad_sources
    assert counter.counts['unreadable_shard'] == len(
        [r for r in records if r['reason'] == 'unreadable_shard'])
    strict = AVWebDataset(urls, pipeline=PIPELINE, test_mode=True)
    with pytest.raises(BadInputError, match='unreadable_shard'):
        list(strict)


def test_bad_sample_in_shard_is_skipped(data, tmp_path):
    """A record whose media is broken is skipped and reported with the
    next sample returned (``a``: a sample is held back until the one after
    it is ready); in test mode it raises with shard and key."""
    from webdataset import TarWriter
    path = str(tmp_path / 'mixed.tar')
    with open(data['videos'][0], 'rb') as f:
        good = f.read()
    with TarWriter(path) as w:
        w.write({'__key__': 'a', 'mp4': good, 'json': b'{"label": 2}'})
        w.write({'__key__': 'b', 'mp4': good[:300], 'json': b'{}'})
        w.write({'__key__': 'c', 'txt': b'no media here'})
        w.write({'__key__': 'd', 'mp4': good, 'json': b'{"label": 3}'})
    with tarfile.open(path) as t:
        assert len(t.getmembers()) == 7
    ds = AVWebDataset(path, pipeline=PIPELINE, shuffle_buffer=0,
                      num_samples=4, bad_input=dict(
                          counter=BadInputCounter(), log_interval=0))
    out = list(ds)
    assert [s['data_samples'].gt_labels.item.item() for s in out] == [2, 3]
    recs = out[0]['data_samples'].metainfo['bad_inputs']
    assert [r['source'].split('#')[1] for r in recs] == ['b', 'c']
    assert out[1]['data_samples'].metainfo['bad_inputs'] == []
    assert all(r['reason'] == 'unreadable' for r in recs)
    with pytest.raises(BadInputError, match='mixed.tar#b'):
        list(AVWebDataset(path, pipeline=PIPELINE, test_mode=True))


def test_one_epoch_read_delivers_the_records_of_a_bad_tail(data, tmp_path):
    """Inputs skipped after the last good sample of a stream are reported
    with that last sample (one of them used to be lost at the end of a
    one-epoch read), and a skip names the source video stored in the
    record's JSON."""
    from webdataset import TarWriter
    path = str(tmp_path / 'tail.tar')
    with open(data['videos'][0], 'rb') as f:
        good = f.read()
    with TarWriter(path) as w:
        w.write({'__key__': 'a', 'mp4': good, 'json': b'{"label": 1}'})
        w.write({'__key__': 'b', 'mp4': good[:300],
                 'json': b'{"source": "videos/cut.mp4"}'})
        w.write({'__key__': 'c', 'mp4': good, 'json': b'{"label": 2}'})
        w.write({'__key__': 'd', 'mp4': good[:500],
                 'json': b'{"source": "videos/d.mp4"}'})
        w.write({'__key__': 'e', 'mp4': b'', 'json': b'{}'})
    counter = BadInputCounter()
    ds = AVWebDataset(path, pipeline=PIPELINE, shuffle_buffer=0,
                      num_samples=5, bad_input=dict(log_interval=0))
    out = list(ds)
    assert len(out) == 2
    for sample in out:
        counter.update(sample['data_samples'].metainfo['bad_inputs'])
    assert counter.counts == {'unreadable': 3}, counter.state_dict()
    sources = [r['source'] for s in out
               for r in s['data_samples'].metainfo['bad_inputs']]
    assert sources == [f'{path}#b (source: videos/cut.mp4)',
                       f'{path}#d (source: videos/d.mp4)', f'{path}#e']
    with pytest.raises(BadInputError, match=r'tail.tar#b \(source: '
                       r'videos/cut.mp4\)'):
        list(AVWebDataset(path, pipeline=PIPELINE, test_mode=True))


def test_url_forms(data):
    urls = expand_shard_urls(data['shards'])
    assert len(urls) == 6
    pattern = osp.join(data['shards'], 'shard-{000000..000002}.tar')
    assert expand_shard_urls(pattern) == urls[:3]
    assert expand_shard_urls(osp.join(data['shards'], '*.tar')) == urls
    piped = [f'pipe:cat {u}' for u in urls[:2]]
    ds = AVWebDataset(piped, pipeline=[], shuffle_buffer=0, num_samples=4)
    assert sorted(s['key'] for s in ds) == [f'{i:09d}' for i in range(4)]
    with pytest.raises(TypeError):
        len(AVWebDataset(piped, pipeline=[]))
    with pytest.raises(FileNotFoundError):
        expand_shard_urls(osp.join(data['shards'], 'nothing-*.tar'))


def test_registered():
    from avtoolkit.registry import DATASETS
    assert DATASETS.get('AVVideoDataset') is AVVideoDataset
    assert DATASETS.get('AVWebDataset') is AVWebDataset


@pytest.mark.parametrize('config', ['k700_pretrain_shards.py',
                                    'av_pretrain_videos.py'])
def test_base_configs_build(data, config):
    """The base data configs build a working DataLoader through mmengine
    (with 3 clips instead of 30: the test videos are 3.5 s long)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from avtoolkit.registry import MODELS
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(repo, 'configs', '_base_', 'datasets',
                                   config))
    loader_cfg = cfg.train_dataloader.to_dict()
    loader_cfg.update(num_workers=1, batch_size=2)
    ds_cfg = loader_cfg['dataset']
    if ds_cfg['type'] == 'AVWebDataset':
        ds_cfg['urls'] = data['shards']
    else:
        ds_cfg.update(ann_file=data['list'],
                      data_prefix=dict(video=data['root']))
    sampling = ds_cfg['pipeline']['clips']
    assert (sampling['num_clips'], sampling['frames_per_clip']) == (30, 32)
    sampling['num_clips'] = 3
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    batch = next(iter(loader))
    assert [tuple(v.shape) for v in batch['inputs']['video']] == \
        [(3, 3, 32, 112, 112)] * 2
    assert [tuple(a.shape) for a in batch['inputs']['audio']] == \
        [(3, 1, 128, 220)] * 2
    pre = MODELS.build(Config.fromfile(osp.join(
        repo, 'configs', '_base_', 'models',
        'av_data_preprocessor.py')).av_data_preprocessor)
    out = pre(batch, training=True)
    assert out['inputs']['video'].shape == (2, 3, 3, 32, 112, 112)
    assert out['inputs']['video'].dtype == torch.float32
    assert out['inputs']['audio'].shape == (2, 3, 1, 128, 220)


def test_resumable_loop_places_the_shard_stream(data):
    """ResumableIterBasedTrainLoop's skip: the loader started by the Runner
    is replaced by one that starts after batch 3, without decoding."""
    from mmengine.runner.loops import _InfiniteDataloaderIterator

    from avtoolkit.engine import ResumableIterBasedTrainLoop

    def loader(ds):
        return DataLoader(ds, batch_size=2, num_workers=2, collate_fn=list,
                          persistent_workers=True)

    expected = [keys_of(b) for b in loader(raw_dataset(data['shards'],
                                                       seed=5))]
    resumed = loader(raw_dataset(data['shards'], seed=5))
    loop = ResumableIterBasedTrainLoop.__new__(ResumableIterBasedTrainLoop)
    loop.dataloader = resumed
    loop.dataloader_iterator = _InfiniteDataloaderIterator(resumed)
    assert loop._skip_to(3)
    got = [keys_of(next(loop.dataloader_iterator))
           for _ in range(len(expected) - 3)]
    assert got == expected[3:]
