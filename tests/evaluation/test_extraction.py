"""Feature extraction helpers: taps, named features, writers, checkpoints."""
import json
import os

import numpy as np
import pytest
import torch
from mmaction.structures import ActionDataSample
from torch import nn

from avtoolkit.checkpoint import (WeightsMismatchError, load_weights,
                                  read_state_dict)
from avtoolkit.evaluation.extraction import (
    ProjectionInputTap, available_features, build_model, collect_features,
    extract_pooled_features, extract_to_dir, iter_named_features,
    sample_label)
from avtoolkit.evaluation.feature_writers import (NpyFeatureWriter,
                                                  check_output_dir)
from avtoolkit.evaluation.probes import run_probes
from avtoolkit.models.backbones.clip_sequence_encoder import \
    global_average_pool

from toy_modules import TinyConv2d, TinyConv3d  # noqa: F401  (registers)

T, D = 3, 32


def model_cfg(fusion='mid'):
    return dict(
        type='AVBERTEncoder',
        data_preprocessor=dict(type='AVDataPreprocessor'),
        visual_backbone=dict(type='ClipSequenceEncoder',
                             cnn=dict(type='TinyConv3d'),
                             feat_dim=6, embed_dim=D, clip_ndim=4),
        audio_backbone=dict(type='ClipSequenceEncoder',
                            cnn=dict(type='TinyConv2d'),
                            feat_dim=5, embed_dim=D, clip_ndim=3),
        neck=dict(type='SharedLowRankTransformer', embed_dim=D,
                  num_layers=1, num_heads=4, ffn_dim=64, rank=8,
                  max_seq_len=8, fusion=fusion))


def batches(num_batches=3, batch=2, labels=None, seed=0):
    """pseudo_collate-style batches of (T, 3, 2, 8, 8) video and
    (T, 1, 8, 10) audio with labelled data samples."""
    g = torch.Generator().manual_seed(seed)
    out, idx = [], 0
    for _ in range(num_batches):
        samples, video, audio = [], [], []
        for _ in range(batch):
            label = labels[idx] if labels is not None else idx % 3
            video.append(torch.randn(T, 3, 2, 8, 8, generator=g) + label)
            audio.append(torch.randn(T, 1, 8, 10, generator=g) - label)
            s = ActionDataSample()
            s.set_gt_labels(label)
            s.set_metainfo(dict(sample_idx=idx, filename=f'v{idx}.mp4'))
            samples.append(s)
            idx += 1
        out.append(dict(inputs=dict(video=video, audio=audio),
                        data_samples=samples))
    return out


@pytest.fixture(scope='module')
def model():
    return build_model(model_cfg())[0]


def test_tap_reads_the_pooled_cnn_output(model):
    clips = torch.randn(2, T, 1, 8, 10)
    backbone = model.audio_backbone
    with torch.no_grad(), ProjectionInputTap(backbone, 'audio') as tap:
        emb = backbone(clips)
    feats = tap.pop(2, T)
    expected = global_average_pool(backbone.cnn(clips.flatten(0, 1)),
                                   2 * T).view(2, T, 5)
    torch.testing.assert_close(feats, expected.detach())
    torch.testing.assert_close(
        emb, backbone.norm(backbone.proj(expected)).detach())
    assert not backbone.proj._forward_hooks  # removed on exit
    with pytest.raises(ValueError, match='no "proj"'):
        ProjectionInputTap(nn.Identity(), 'identity')
    with pytest.raises(RuntimeError, match='did not run'):
        tap.pop(2, T)


def test_named_features_shapes(model):
    assert available_features(model, ('video', 'audio')) == [
        'cnn_v', 'cnn_a', 'x_v', 'x_a', 'y_v', 'y_a', 'z', 'y_v_summary',
        'y_a_summary', 'z_v_summary', 'z_a_summary', 'x_mean', 'y_summary',
        'y_mean', 'z_summary', 'z_mean']
    assert 'cnn_v' not in available_features(model, ('audio', ))
    late = build_model(model_cfg('late'))[0]
    assert 'z' not in available_features(late, ('video', 'audio'))
    names = available_features(model, ('video', 'audio'))
    out = list(iter_named_features(model, batches(2), names,
                                   progress=False))
    assert len(out) == 2
    arrays, metas = out[0]
    expected = dict(cnn_v=(2, T, 6), cnn_a=(2, T, 5), x_v=(2, T, D),
                    x_a=(2, T, D), y_v=(2, T + 1, D), y_a=(2, T + 1, D),
                    z=(2, 2 * (T + 1), D), y_v_summary=(2, D),
                    y_a_summary=(2, D), z_v_summary=(2, D),
                    z_a_summary=(2, D), x_mean=(2, 2 * D),
                    y_summary=(2, 2 * D), y_mean=(2, 2 * D),
                    z_summary=(2, 2 * D), z_mean=(2, 2 * D))
    assert {k: v.shape for k, v in arrays.items()} == expected
    assert all(v.dtype == np.float32 for v in arrays.values())
    assert metas == [dict(sample_idx=0, filename='v0.mp4', label=0),
                     dict(sample_idx=1, filename='v1.mp4', label=1)]
    # summaries are the BOS rows of the token outputs
    np.testing.assert_array_equal(arrays['y_v_summary'], arrays['y_v'][:, 0])
    np.testing.assert_array_equal(arrays['z_a_summary'],
                                  arrays['z'][:, T + 1])
    with pytest.raises(KeyError, match='unknown feature'):
        collect_features(None, {}, ['logits'])


def test_audio_only_batches_give_no_visual_features(model):
    data = batches(1)
    data[0]['inputs'].pop('video')
    names = available_features(model, ('audio', ))
    arrays, _ = next(iter_named_features(model, data, names, False))
    assert arrays['z'].shape == (2, T + 1, D)  # the audio half only
    with pytest.raises(ValueError, match='y_v'):
        next(iter_named_features(model, data, ['y_v'], False))


def test_pooled_features_and_probes(model):
    labels = [0, 1, 2] * 4
    train = batches(4, 3, labels=labels, seed=0)
    val = batches(2, 3, labels=labels[:6], seed=1)
    model.train()
    feats, y = extract_pooled_features(model, train, ['x_mean', 'z_mean'])
    assert model.training  # mode restored
    assert feats['x_mean'].shape == (12, 2 * D)
    assert y.tolist() == labels
    val_feats, val_y = extract_pooled_features(model, val,
                                               ['x_mean', 'z_mean'])
    results = run_probes(feats, y, val_feats, val_y, ['x_mean', 'z_mean'],
                         knn_k=3)
    assert set(results) == {'x_mean/linear_top1', 'x_mean/knn_top1',
                            'z_mean/linear_top1', 'z_mean/knn_top1'}
    # inputs shifted by +-label: even a random CNN separates the classes
    assert results['x_mean/linear_top1'] == 1.0
    with pytest.raises(ValueError, match='features must be among'):
        extract_pooled_features(model, train, ['cnn_a'])


def test_sample_label_forms():
    s = ActionDataSample()
    assert sample_label(s) is None
    s.set_gt_labels(4)
    assert sample_label(s) == 4
    multi = ActionDataSample()
    multi.set_gt_labels(torch.tensor([0., 1., 0., 1.]))
    assert sample_label(multi) == [1, 3]


def test_load_weights_reports_missing_and_unexpected(tmp_path, model):
    state = {f'audio_backbone.{k}': v.clone() + 1 for k, v in
             model.audio_backbone.state_dict().items()
             if k != 'norm.weight'}
    state['audio_backbone.extra.weight'] = torch.zeros(1)
    state['neck.w'] = torch.zeros(1)
    path = tmp_path / 'ckpt.pth'
    torch.save(dict(state_dict={f'module.{k}': v for k, v in state.items()},
                    meta={}), path)
    assert set(read_state_dict(str(path))) == set(state)
    fresh = build_model(model_cfg())[0].audio_backbone
    report = load_weights(fresh, str(path), 'audio_backbone.', strict=False)
    assert report.missing == ['norm.weight']
    assert report.unexpected == ['extra.weight']
    assert report.ignored == ['neck.w']
    as_dict = report.to_dict()
    assert as_dict['missing'] == ['norm.weight']
    assert as_dict['unexpected'] == ['extra.weight']
    assert as_dict['ignored'] == 1 and as_dict['prefix'] == 'audio_backbone.'
    assert as_dict['loaded'] == len(state) - 2
    torch.testing.assert_close(fresh.proj.weight,
                               state['audio_backbone.proj.weight'])
    with pytest.raises(WeightsMismatchError, match='missing'):
        load_weights(fresh, str(path), 'audio_backbone.', strict=True)
    with pytest.raises(WeightsMismatchError, match='no weights under'):
        load_weights(fresh, str(path), 'visual_backbone.', strict=False)
    bad = dict(state)
    bad['audio_backbone.proj.weight'] = torch.zeros(3, 3)
    torch.save(dict(state_dict=bad), tmp_path / 'bad.pth')
    with pytest.raises(WeightsMismatchError, match='shapes'):
        load_weights(fresh, str(tmp_path / 'bad.pth'), 'audio_backbone.',
                     strict=False)
    with pytest.raises(FileNotFoundError, match='none.pth'):
        read_state_dict(str(tmp_path / 'none.pth'))


def test_build_model_reads_every_state_dict_entry(tmp_path, model):
    """Probes and feature extraction read the same checkpoints as the
    classifiers: PySlowFast's ``model_state`` too, not only mmengine's
    ``state_dict``."""
    state = {k: v + 1 for k, v in model.state_dict().items()}
    path = tmp_path / 'slowfast_style.pyth'
    torch.save(dict(model_state=state, epoch=3), path)
    loaded, report = build_model(model_cfg(), str(path))
    assert report['missing'] == [] and report['loaded'] == len(state)
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_output_dir_is_never_overwritten_silently(tmp_path):
    out = tmp_path / 'feats'
    check_output_dir(str(out))  # created
    (out / 'x_a.npy').write_bytes(b'old')
    (out / 'notes.txt').write_text('keep')
    # temporary files of an interrupted extraction
    (out / '.x_a.npy.k2j4_x9q.tmp').write_bytes(b'half')
    (out / '.features-000001.tar.a1b2c3d4.tmp').write_bytes(b'half')
    with pytest.raises(FileExistsError, match='--overwrite'):
        check_output_dir(str(out))
    check_output_dir(str(out), overwrite=True)
    assert sorted(os.listdir(out)) == ['notes.txt']  # only features removed
    (tmp_path / 'file').write_text('')
    with pytest.raises(FileExistsError, match='not a folder'):
        check_output_dir(str(tmp_path / 'file'), overwrite=True)


@pytest.mark.parametrize('known_length', [True, False])
def test_npy_writer(tmp_path, known_length):
    writer = NpyFeatureWriter(str(tmp_path), 5 if known_length else None)
    a = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    writer.write(dict(x_a=a[:3]), [dict(sample_idx=i) for i in range(3)])
    writer.write(dict(x_a=a[3:]), [dict(sample_idx=i) for i in range(3, 5)])
    # nothing under the final names until the writer is closed
    assert not any(n.endswith('.npy') for n in os.listdir(tmp_path))
    index = writer.close()
    assert sorted(os.listdir(tmp_path)) == ['index.json', 'x_a.npy']
    np.testing.assert_array_equal(np.load(tmp_path / 'x_a.npy'), a)
    with open(tmp_path / 'index.json') as f:
        assert json.load(f) == index
    assert index['features'] == dict(x_a=[5, 2, 3])
    assert [s['row'] for s in index['samples']] == list(range(5))


@pytest.mark.parametrize('fmt', ['npy', 'webdataset'])
def test_failed_extraction_leaves_no_feature_files(tmp_path, model, fmt):
    """A run that fails half-way leaves neither arrays or shards that look
    complete nor temporary files."""

    class Failing:
        """6 samples announced (arrays written through memory maps), the
        loader fails after 4."""
        dataset = list(range(6))

        def __iter__(self):
            yield from batches(2)
            raise RuntimeError('a worker died')

    out = tmp_path / 'feats'
    with pytest.raises(RuntimeError, match='worker died'):
        extract_to_dir(model, Failing(), ['x_a'], str(out), fmt=fmt,
                       shard_size=3, progress=False)
    left = os.listdir(out)
    if fmt == 'webdataset':  # the first shard was complete
        assert left == ['features-000000.tar']
    else:
        assert left == []


def test_extract_to_dir_npy_and_webdataset(tmp_path, model):
    index = extract_to_dir(model, batches(2), ['x_a', 'z_summary'],
                           str(tmp_path / 'npy'), progress=False)
    assert index['features'] == dict(x_a=[4, T, D], z_summary=[4, 2 * D])
    assert np.load(tmp_path / 'npy' / 'x_a.npy').shape == (4, T, D)
    with pytest.raises(FileExistsError):
        extract_to_dir(model, batches(2), ['x_a'], str(tmp_path / 'npy'))
    with pytest.raises(ValueError, match='unknown features'):
        extract_to_dir(model, batches(1), ['logits'], str(tmp_path / 'x'))

    import webdataset as wds
    index = extract_to_dir(model, batches(2), ['x_a', 'z_summary'],
                           str(tmp_path / 'wds'), fmt='webdataset',
                           shard_size=3, progress=False)
    assert index['num_samples'] == 4 and len(index['shards']) == 2
    urls = [str(tmp_path / 'wds' / s) for s in index['shards']]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode())
    assert len(samples) == 4
    assert samples[0]['x_a.npy'].shape == (T, D)
    assert samples[3]['json']['filename'] == 'v3.mp4'
    reference = np.load(tmp_path / 'npy' / 'z_summary.npy')
    np.testing.assert_allclose(samples[2]['z_summary.npy'], reference[2],
                               rtol=1e-5, atol=1e-6)
