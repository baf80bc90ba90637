"""Annotation readers on tiny fake layouts of the official downloads."""
import os
import os.path as osp

import pytest
import torch

from avtoolkit.datasets.public_datasets import (parse_charades_actions,
                                           read_audioset_csv,
                                           read_kinetics_csv, read_ucf101)
from avtoolkit.registry import DATASETS


def touch(path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    open(path, 'wb').close()
    return path


def write(path, text):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    return path


def build(cfg):
    return DATASETS.build(dict(cfg, pipeline=[]))


def test_esc50(tmp_path):
    root = str(tmp_path / 'ESC-50-master')
    rows = [('1-100038-A-14.wav', 1, 14, 'chirping_birds'),
            ('1-100210-A-36.wav', 1, 36, 'vacuum_cleaner'),
            ('2-109505-A-21.wav', 2, 21, 'sneezing'),
            ('3-110536-A-0.wav', 3, 0, 'dog'),
            ('4-115920-A-1.wav', 4, 1, 'rooster'),
            ('5-117250-A-5.wav', 5, 5, 'cat')]
    write(osp.join(root, 'meta', 'esc50.csv'),
          'filename,fold,target,category,esc10,src_file,take\n' + ''.join(
              f'{f},{fold},{t},{c},False,100,A\n' for f, fold, t, c in rows))
    for f, *_ in rows:
        touch(osp.join(root, 'audio', f))
    common = dict(type='ESC50Dataset', data_root=root,
                  ann_file='meta/esc50.csv', data_prefix=dict(video='audio'))
    train = build(dict(common, folds=[1, 2, 3, 4]))
    test = build(dict(common, folds=[5], test_mode=True))
    assert len(train) == 5 and len(test) == 1
    info = test.get_data_info(0)
    assert info['filename'] == osp.join(root, 'audio', '5-117250-A-5.wav')
    assert info['label'] == 5 and info['fold'] == 5
    assert info['category'] == 'cat'
    assert sorted(train.get_data_info(i)['label'] for i in range(5)) == [
        0, 1, 14, 21, 36]
    os.remove(osp.join(root, 'audio', '1-100038-A-14.wav'))
    assert len(build(dict(common, folds=[1]))) == 1  # missing: dropped
    with pytest.raises(FileNotFoundError, match='1-100038-A-14'):
        build(dict(common, folds=[1], test_mode=True))


def test_ucf101(tmp_path):
    root = str(tmp_path / 'ucf')
    split = osp.join(root, 'ucfTrainTestlist')
    write(osp.join(split, 'classInd.txt'),
          '1 ApplyEyeMakeup\n2 ApplyLipstick\n3 Archery\n')
    write(osp.join(split, 'trainlist01.txt'),
          'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n'
          'Archery/v_Archery_g08_c02.avi 3\r\n')
    write(osp.join(split, 'testlist01.txt'),
          'ApplyLipstick/v_ApplyLipstick_g01_c01.avi\r\n'
          'Archery/v_Archery_g01_c01.avi\r\n')
    for line in ('ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi',
                 'Archery/v_Archery_g08_c02.avi',
                 'ApplyLipstick/v_ApplyLipstick_g01_c01.avi',
                 'Archery/v_Archery_g01_c01.avi'):
        touch(osp.join(root, 'UCF-101', line))
    common = dict(type='UCF101Dataset', data_root=root,
                  data_prefix=dict(video='UCF-101'))
    train = build(dict(common, ann_file='ucfTrainTestlist/trainlist01.txt'))
    test = build(dict(common, ann_file='ucfTrainTestlist/testlist01.txt'))
    assert [train.get_data_info(i)['label'] for i in range(2)] == [0, 2]
    assert [test.get_data_info(i)['label'] for i in range(2)] == [1, 2]
    assert test.get_data_info(0)['filename'].endswith(
        'UCF-101/ApplyLipstick/v_ApplyLipstick_g01_c01.avi')
    bad = write(osp.join(split, 'bad.txt'),
                'Archery/v_Archery_g08_c02.avi 1\n')
    with pytest.raises(ValueError, match='classInd gives 3'):
        read_ucf101(bad)


def test_kinetics_sounds_folders_list_and_csv(tmp_path):
    root = str(tmp_path / 'ks')
    for cls, n in (('playing drums', 2), ('dog barking', 1),
                   ('chopping wood', 1)):
        for i in range(n):
            touch(osp.join(root, 'videos', cls, f'{cls[:3]}{i}.mp4'))
    touch(osp.join(root, 'videos', 'dog barking', 'notes.txt'))
    ds = build(dict(type='KineticsSoundsDataset', ann_file='',
                    data_prefix=dict(video=osp.join(root, 'videos'))))
    labels = [ds.get_data_info(i)['label'] for i in range(len(ds))]
    assert len(ds) == 4 and labels == [0, 1, 2, 2]  # sorted class names
    fixed = build(dict(type='KineticsSoundsDataset', ann_file='',
                       classes=['playing drums', 'dog barking'],
                       data_prefix=dict(video=osp.join(root, 'videos'))))
    assert [fixed.get_data_info(i)['label'] for i in range(3)] == [0, 0, 1]

    write(osp.join(root, 'train.csv'),
          'label,youtube_id,time_start,time_end,split\n'
          'playing drums,abc,10,20,train\n'
          'yoga,zzz,0,10,train\n'
          'dog barking,def,5,15,train\n')
    touch(osp.join(root, 'clips', 'abc_000010_000020.mp4'))
    touch(osp.join(root, 'clips', 'def_000005_000015.mp4'))
    # A full Kinetics CSV restricted to the classes: the other classes'
    # rows are left out only when asked to (unknown_labels='drop').
    ks_csv = dict(type='KineticsSoundsDataset', ann_file=osp.join(
        root, 'train.csv'), classes=['dog barking', 'playing drums'],
        data_prefix=dict(video=osp.join(root, 'clips')))
    with pytest.raises(ValueError, match=r"line 3: label 'yoga'"):
        build(ks_csv)
    ds = build(dict(ks_csv, unknown_labels='drop'))
    assert [(osp.basename(ds.get_data_info(i)['filename']),
             ds.get_data_info(i)['label']) for i in range(len(ds))] == [
                 ('abc_000010_000020.mp4', 1), ('def_000005_000015.mp4', 0)]


def test_charades(tmp_path):
    root = str(tmp_path / 'charades')
    write(osp.join(root, 'Charades_v1_train.csv'),
          'id,subject,scene,quality,relevance,verified,script,objects,'
          'descriptions,actions,length\n'
          '46GP8,HR43,Kitchen,6,7,Yes,"A person cooks.",food,"cooks",'
          '"c092 11.90 21.20;c147 0.00 12.60;c092 25.00 30.10",32.04\n'
          'N11GT,0KZ7,Stairs,6,7,Yes,"Walks.",stairs,"walks",,26.30\n')
    for vid in ('46GP8', 'N11GT'):
        touch(osp.join(root, 'Charades_v1_480', f'{vid}.mp4'))
    ds = build(dict(type='CharadesDataset', data_root=root,
                    ann_file='Charades_v1_train.csv',
                    data_prefix=dict(video='Charades_v1_480')))
    info = ds.get_data_info(0)
    assert info['label'].shape == (157, ) and info['label'].dtype == \
        torch.float32
    assert torch.nonzero(info['label']).flatten().tolist() == [92, 147]
    assert info['segments'] == [(92, 11.9, 21.2), (147, 0.0, 12.6),
                                (92, 25.0, 30.1)]
    assert info['length'] == pytest.approx(32.04)
    assert ds.get_data_info(1)['label'].sum() == 0  # no actions
    assert parse_charades_actions('') == []
    with pytest.raises(ValueError):
        parse_charades_actions('c01 x')


def test_kinetics700_csv(tmp_path):
    root = str(tmp_path / 'k700')
    csv_text = ('label,youtube_id,time_start,time_end,split\n'
                'zumba,--07WQ2iBlw,1,11,train\n'
                'abseiling,-0A0jsEcpq8,22,32,train\n'
                'zumba,-0BZ3VvBp9s,0,10,train\n')
    write(osp.join(root, 'train.csv'), csv_text)
    write(osp.join(root, 'test.csv'),
          'youtube_id,time_start,time_end,split\nabcdefghijk,3,13,test\n')
    for name in ('zumba/--07WQ2iBlw_000001_000011.mp4',
                 'abseiling/-0A0jsEcpq8_000022_000032.mp4'):
        touch(osp.join(root, 'videos', name))
    tmpl = '{label}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4'
    ds = build(dict(type='Kinetics700Dataset', data_root=root,
                    ann_file='train.csv', filename_tmpl=tmpl,
                    data_prefix=dict(video='videos')))
    assert len(ds) == 2  # the third video is missing on disk
    assert [ds.get_data_info(i)['label'] for i in range(2)] == [1, 0]
    rows = read_kinetics_csv(osp.join(root, 'test.csv'), 'v')
    assert rows == [dict(filename='v/abcdefghijk_000003_000013.mp4',
                         youtube_id='abcdefghijk')]


def test_audioset(tmp_path):
    root = str(tmp_path / 'audioset')
    write(osp.join(root, 'class_labels_indices.csv'),
          'index,mid,display_name\n0,/m/09x0r,"Speech"\n'
          '1,/m/05zppz,"Male speech, man speaking"\n'
          '2,/t/dd00088,"Gush"\n')
    write(osp.join(root, 'balanced_train_segments.csv'),
          '# Segments csv created Sun Mar  5 10:54:31 2017\n'
          '# num_ytids=2, num_segs=2, num_unique_labels=3, '
          'num_positive_labels=3\n'
          '# YTID, start_seconds, end_seconds, positive_labels\n'
          '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n'
          '--ZhevVpy1s, 50.000, 60.000, "/m/05zppz"\n')
    touch(osp.join(root, 'videos', '--PJHxphWEs.mp4'))
    touch(osp.join(root, 'videos', '--ZhevVpy1s.mp4'))
    ds = build(dict(type='AudioSetDataset', data_root=root,
                    ann_file='balanced_train_segments.csv',
                    class_index='class_labels_indices.csv',
                    data_prefix=dict(video='videos'), num_classes=3))
    info = ds.get_data_info(0)
    assert info['label'].tolist() == [1.0, 0.0, 1.0]
    assert info['segment'] == (30.0, 40.0)
    rows = read_audioset_csv(
        osp.join(root, 'balanced_train_segments.csv'),
        osp.join(root, 'class_labels_indices.csv'), 'v',
        filename_tmpl='{ytid}_{start_ms}_{end_ms}.mkv')
    assert rows[1]['filename'] == 'v/--ZhevVpy1s_50000_60000.mkv'
    assert rows[1]['label'] == [1]
    write(osp.join(root, 'bad.csv'), 'abc, 0.0, 10.0, "/m/unknown"\n')
    with pytest.raises(ValueError, match='/m/unknown'):
        read_audioset_csv(osp.join(root, 'bad.csv'),
                          osp.join(root, 'class_labels_indices.csv'))
