"""The frozen-feature SVM protocol (ESC-50) and tools/test.py's dispatch."""
import csv
import glob
import json
import os
import os.path as osp
import wave

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric

from avtoolkit.apis import test as test_api
from avtoolkit.checkpoint import NotACheckpointError, WeightsMismatchError
from avtoolkit.evaluation import cross_validation
from avtoolkit.evaluation.linear_svm import LinearSVM
from avtoolkit.evaluation.cross_validation import (cross_validate_svm,
                                                   validation_split)
from avtoolkit.evaluation.protocols import (FrozenFeatureSVMProtocol,
                                            format_results_table)
from avtoolkit.registry import METRICS, MODELS, PROTOCOLS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'downstream', 'demo',
                       'esc50_audio_svm.py')
TOY_CONFIG = osp.join(REPO, 'tests', 'data', 'configs', 'toy_runner.py')
NUM_CLASSES, PER_FOLD, SECONDS, RATE = 3, 1, 5, 16000


# ------------------------------------------------------------- fixtures
def write_tone(path, freq, seed, seconds=SECONDS, rate=RATE):
    """A 16-bit mono wav: a tone with two harmonics plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds * rate) / rate
    x = sum(np.sin(2 * np.pi * freq * h * t + rng.uniform(0, 6)) / h
            for h in (1, 2, 3))
    x = 0.2 * x + 0.01 * rng.standard_normal(len(t))
    with wave.open(path, 'wb') as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(x, -1, 1) * 32767).astype('<i2').tobytes())


def make_esc50(root, num_classes=NUM_CLASSES, per_fold=PER_FOLD):
    """ESC-50 layout: audio/*.wav and meta/esc50.csv over 5 folds, the class
    deciding the tone's pitch."""
    os.makedirs(osp.join(root, 'audio'))
    os.makedirs(osp.join(root, 'meta'))
    rows = []
    for fold in range(1, 6):
        for c in range(num_classes):
            for i in range(per_fold):
                name = f'{fold}-{100 + 10 * c + i}-A-{c}.wav'
                write_tone(osp.join(root, 'audio', name), 250 * (c + 1),
                           seed=fold * 100 + c * 10 + i)
                rows.append(dict(filename=name, fold=fold, target=c,
                                 category=f'class{c}', esc10=False,
                                 src_file=100 + c, take='A'))
    with open(osp.join(root, 'meta', 'esc50.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope='module')
def esc50_root(tmp_path_factory):
    return make_esc50(str(tmp_path_factory.mktemp('esc50') / 'ESC-50'))


def write_config(tmp_path, esc50_root, **protocol):
    """The demo ESC-50 config on the fixture: 4 one-second clips of 64 x 101
    log-mel frames per recording (what the tiny audio CNN saw in
    pretraining) and a loosely solved SVM, to keep the test fast."""
    pipeline = [
        dict(type='AVInit', modalities=('audio', )),
        dict(type='AVSampleClips', num_clips=4, clip_duration=1.0,
             frames_per_clip=0, mode='uniform'),
        dict(type='AVDecode', sample_rate=16000),
        dict(type='LogMelSpectrogram', sample_rate=16000, n_mels=64,
             n_fft=512, win_length=400, hop_length=160, num_frames=101),
        dict(type='AudioNormalize', mean=-4.0, std=4.0),
        dict(type='PackAVInputs'),
    ]
    overrides = dict(dataset=dict(data_root=esc50_root, pipeline=pipeline),
                     num_workers=0, batch_size=8, progress=False,
                     C_grid=[0.1, 1.0],
                     svm=dict(max_iter=60, tol=1e-3))
    overrides.update(protocol)
    path = tmp_path / 'esc50_test.py'
    path.write_text(
        f'_base_ = [{DEMO_CONFIG!r}]\n'
        f'work_dir = {str(tmp_path / "work")!r}\n'
        f'load_from = None\n'
        f'protocol = {overrides!r}\n')
    return str(path)


def make_checkpoint(path, seed=1, drop=(), extra=True):
    """An AVBERT-style checkpoint whose audio CNN is the tiny one of the
    demo, with weights different from the protocol's initial ones."""
    cfg = Config.fromfile(DEMO_CONFIG)
    torch.manual_seed(seed)
    backbone = MODELS.build(cfg.model.audio_backbone)
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {f'audio_backbone.{k}': v
             for k, v in backbone.state_dict().items() if k not in drop}
    if extra:
        state['neck.some.weight'] = torch.zeros(2)
    torch.save(dict(state_dict=state, meta=dict(iter=1)), path)
    return str(path)


# ------------------------------------------------------ SVM cross-validation
def blob_features(num_per_class=4, num_classes=3, clips=3, dim=6, seed=0):
    """Separable clip features of recordings in 5 folds."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(num_classes, dim, generator=g)
    labels = torch.arange(num_classes).repeat(5 * num_per_class)
    folds = torch.arange(1, 6).repeat_interleave(num_classes * num_per_class)
    feats = centres[labels][:, None, :] + 0.3 * torch.randn(
        len(labels), clips, dim, generator=g)
    return feats, labels, folds


def test_cross_validation_reports_every_fold_and_mean_std():
    feats, labels, folds = blob_features()
    result = cross_validate_svm(feats, labels, folds, [1, 2, 3, 4, 5],
                                C_grid=[0.1, 1.0])
    assert list(result['folds']) == [1, 2, 3, 4, 5]
    assert result['num_folds'] == 5
    assert result['mean']['top1'] == 1.0 and result['std']['top1'] == 0.0
    for k, sel in result['selection'].items():
        assert sel['C'] in (0.1, 1.0)
        assert sel['val_folds'] == [k % 5 + 1]  # the next training fold
        assert sel['num_test'] == 12 and sel['num_train'] == 48
    assert not torch.isnan(result['scores']).any()
    # scores are the mean of the clip scores
    svm = LinearSVM(C=result['selection'][1]['C']).fit(
        feats[folds != 1].reshape(-1, 6),
        labels[folds != 1].repeat_interleave(3), 3)
    expected = svm.decision_function(feats[folds == 1].reshape(-1, 6)).view(
        -1, 3, 3).mean(1)
    torch.testing.assert_close(result['scores'][folds == 1], expected)


def test_mean_std_over_folds_is_population_std():
    feats, labels, folds = blob_features(seed=3)
    # Scramble the labels of fold 2 so that it scores lower than the rest.
    labels = labels.clone()
    labels[folds == 2] = (labels[folds == 2] + 1) % 3
    result = cross_validate_svm(feats, labels, folds, [1, 2, 3, 4, 5],
                                C_grid=[1.0])
    top1 = np.array([result['folds'][k]['top1'] for k in range(1, 6)])
    assert top1[1] < 0.5
    assert result['mean']['top1'] == pytest.approx(top1.mean())
    assert result['std']['top1'] == pytest.approx(top1.std())


class SpySVM(LinearSVM):
    """Records every array the SVM is fitted or evaluated on."""
    calls = []

    def fit(self, x, y, num_classes=None):
        SpySVM.calls.append(('fit', x.clone()))
        return super().fit(x, y, num_classes)

    def decision_function(self, x):
        SpySVM.calls.append(('score', x.clone()))
        return super().decision_function(x)


def _rows_in(x, reference):
    """How many rows of ``x`` equal a row of ``reference``."""
    return int((x[:, None, :] == reference[None, :, :]).all(-1).any(1).sum())


@pytest.mark.parametrize('strategy', ['fold', 'stratified'])
def test_selection_never_sees_the_test_fold(monkeypatch, strategy):
    feats, labels, folds = blob_features(num_per_class=3)
    monkeypatch.setattr(cross_validation, 'LinearSVM', SpySVM)
    for k in range(1, 6):
        SpySVM.calls = []
        result = cross_validate_svm(feats, labels, folds, [k],
                                    C_grid=[0.01, 0.1, 1.0, 10.0],
                                    val_strategy=strategy)
        test_clips = feats[folds == k].reshape(-1, feats.shape[-1])
        fits = [x for kind, x in SpySVM.calls if kind == 'fit']
        scored = [x for kind, x in SpySVM.calls if kind == 'score']
        assert len(fits) == 5 and len(scored) == 5  # 4 candidates + final
        for x in fits:  # no SVM is ever trained on the test fold
            assert _rows_in(x, test_clips) == 0
        for x in scored[:-1]:  # the selection scores training folds only
            assert _rows_in(x, test_clips) == 0
        assert _rows_in(scored[-1], test_clips) == len(test_clips)
        chosen = result['selection'][k]['C']
        # Destroying the test fold cannot change the choice of C.
        poisoned_feats, poisoned_labels = feats.clone(), labels.clone()
        poisoned_feats[folds == k] = 1e3 * torch.randn_like(
            poisoned_feats[folds == k])
        poisoned_labels[folds == k] = (labels[folds == k] + 1) % 3
        again = cross_validate_svm(poisoned_feats, poisoned_labels, folds,
                                   [k], C_grid=[0.01, 0.1, 1.0, 10.0],
                                   val_strategy=strategy)
        assert again['selection'][k]['C'] == chosen
        assert again['selection'][k]['val_top1'] == \
            result['selection'][k]['val_top1']


def test_validation_split_strategies():
    feats, labels, folds = blob_features(num_per_class=5)
    train = (folds != 5).nonzero().flatten()
    fit, val, desc = validation_split(labels, folds, train, 5, 'fold')
    assert desc['val_folds'] == [1]  # wraps around after the last fold
    assert set(folds[val].tolist()) == {1}
    assert set(folds[fit].tolist()) == {2, 3, 4}
    fit, val, desc = validation_split(labels, folds, train, 5, 'stratified',
                                      val_fraction=0.25, seed=0)
    assert 5 not in folds[val].tolist() + folds[fit].tolist()
    assert set(labels[val].tolist()) == {0, 1, 2}
    assert len(val) == 15 and len(fit) == 45
    assert not set(val.tolist()) & set(fit.tolist())
    with pytest.raises(ValueError, match='two training folds'):
        validation_split(labels, folds, (folds == 1).nonzero().flatten(), 2)
    with pytest.raises(ValueError, match='val_strategy'):
        validation_split(labels, folds, train, 5, 'random')


def test_cross_validation_bad_input():
    feats, labels, folds = blob_features()
    with pytest.raises(ValueError, match='test folds'):
        cross_validate_svm(feats, labels, folds, [6])
    with pytest.raises(ValueError, match=r'\(N, T, C\)'):
        cross_validate_svm(feats[:, 0], labels, folds, [1])
    with pytest.raises(ValueError, match='C_grid'):
        cross_validate_svm(feats, labels, folds, [1], C_grid=[0.0])
    with pytest.raises(ValueError, match='C_grid'):
        cross_validate_svm(feats, labels, folds, [1], svm_cfg=dict(C=1.0))


def test_multi_margin_iterations_follow_svm_iters(monkeypatch):
    feats, labels, folds = blob_features(num_per_class=2)
    seen = []

    class Recorder(LinearSVM):
        def fit(self, x, y, num_classes=None):
            seen.append((len(x), self.epochs))
            return super().fit(x, y, num_classes)

    monkeypatch.setattr(cross_validation, 'LinearSVM', Recorder)
    cross_validate_svm(feats, labels, folds, [1], C_grid=[1.0],
                       svm_cfg=dict(loss='multi_margin', batch_size=8),
                       svm_iters=40)
    # 4 folds x 6 recordings x 3 clips = 72 clips: 9 steps per epoch.
    assert seen == [(72, 5)]


# ------------------------------------------------------- protocol end to end
def test_protocol_arguments_are_checked():
    dataset = dict(type='ESC50Dataset')
    with pytest.raises(ValueError, match='feature'):
        FrozenFeatureSVMProtocol(dataset, feature='logits')
    with pytest.raises(ValueError, match='val_strategy'):
        FrozenFeatureSVMProtocol(dataset, val_strategy='test')
    with pytest.raises(ValueError, match='folds'):
        FrozenFeatureSVMProtocol(dataset, folds=(1, 1))
    with pytest.raises(ValueError, match='loss'):
        FrozenFeatureSVMProtocol(dataset, svm=dict(loss='hinge'))
    with pytest.raises(ValueError, match='dataset'):
        FrozenFeatureSVMProtocol(dict(ann_file='x'))
    assert PROTOCOLS.get('FrozenFeatureSVMProtocol') is \
        FrozenFeatureSVMProtocol


def test_esc50_protocol_through_tools_test(tmp_path, esc50_root):
    config = write_config(tmp_path, esc50_root)
    ckpt = make_checkpoint(tmp_path / 'pretrained.pth')
    results = test_api.main([config, ckpt, '--compare-random', '--dump',
                             str(tmp_path / 'scores.pkl')])
    work = tmp_path / 'work'
    with open(work / 'protocol_results.json') as f:
        saved = json.load(f)
    assert saved['protocol'] == 'FrozenFeatureSVMProtocol'
    assert saved['num_recordings'] == 15 and saved['num_clips'] == 4
    assert saved['feature_dim'] == 256  # pooled tiny audio CNN
    for tag in ('pretrained', 'random_init'):
        r = saved[tag]
        assert list(r['folds']) == ['1', '2', '3', '4', '5']
        top1 = [r['folds'][k]['top1'] for k in r['folds']]
        assert all(0.0 <= v <= 1.0 for v in top1)
        assert r['mean']['top1'] == pytest.approx(np.mean(top1))
        assert r['std']['top1'] == pytest.approx(np.std(top1))
        assert r['timing']['cached'] is False
        scores = np.load(work / f'{tag}_scores.npz')
        assert scores['scores'].shape == (15, 3)
        assert sorted(scores['folds'].tolist()) == sorted([1, 2, 3, 4, 5] * 3)
    report = saved['pretrained']['load_report']
    assert report['missing'] == [] and report['unexpected'] == []
    assert report['ignored'] == 1 and report['loaded'] > 50
    assert saved['random_init']['load_report'] is None
    # The tones are easy: pretrained-like and random CNN features both
    # separate the three pitches.
    assert saved['pretrained']['mean']['top1'] > 0.6
    assert 'top1_gain' in saved
    assert (tmp_path / 'scores.pkl').is_file()
    assert results['results_file'] == str(work / 'protocol_results.json')
    table = format_results_table(results)
    assert 'fold 5' in table and 'random init' in table

    # The results of a run are not replaced unless asked.
    before = (work / 'protocol_results.json').read_bytes()
    with pytest.raises(FileExistsError, match='--overwrite'):
        test_api.main([config, ckpt, '--compare-random'])
    assert (work / 'protocol_results.json').read_bytes() == before

    # A second run reuses the cached features of both weight sets.
    again = test_api.main([config, ckpt, '--compare-random', '--overwrite'])
    for tag in ('pretrained', 'random_init'):
        assert again[tag]['timing']['cached'] is True
        assert again[tag]['folds'] == results[tag]['folds']

    # A recording replaced under the same name (regenerated data) makes the
    # cache stale: the features are extracted again.
    wav = sorted(glob.glob(osp.join(str(esc50_root), 'audio', '*.wav')))[0]
    stat = os.stat(wav)
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = test_api.main([config, ckpt, '--compare-random', '--overwrite'])
    for tag in ('pretrained', 'random_init'):
        assert third[tag]['timing']['cached'] is False


def test_protocol_reports_missing_and_wrong_checkpoints(tmp_path,
                                                        esc50_root):
    config = write_config(tmp_path, esc50_root, folds=[1, 2], cache=False,
                          dump_scores=False, compare_random=False)
    partial = make_checkpoint(tmp_path / 'partial.pth',
                              drop=('proj.weight', 'norm.bias'))
    results = test_api.main([config, partial])
    report = results['pretrained']['load_report']
    assert sorted(report['missing']) == ['norm.bias', 'proj.weight']
    assert list(results['pretrained']['folds']) == [1, 2]
    assert 'random_init' not in results

    strict = write_config(tmp_path, esc50_root, folds=[1, 2], cache=False,
                          compare_random=False, strict_load=True)
    with pytest.raises(WeightsMismatchError, match='missing'):
        test_api.main([strict, partial, '--overwrite'])

    other = tmp_path / 'other.pth'
    torch.save(dict(state_dict={'visual_backbone.w': torch.zeros(1)}), other)
    with pytest.raises(WeightsMismatchError,
                       match='other.pth" has no weights under '
                       '"audio_backbone."'):
        test_api.main([config, str(other), '--overwrite'])
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(other.read_bytes()[:40])
    with pytest.raises(NotACheckpointError, match='broken.pth'):
        test_api.main([config, str(broken), '--overwrite'])
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        test_api.main([config, str(tmp_path / 'nowhere.pth'), '--overwrite'])
    with pytest.raises(ValueError, match='no checkpoint'):
        test_api.main([config, '--overwrite'])


# ------------------------------------------- tools/test.py without protocol
@METRICS.register_module(force=True)
class ToyMSEMetric(BaseMetric):
    """Mean squared error of the toy regressor."""

    def process(self, data_batch, data_samples):
        target = torch.as_tensor(data_batch['data_samples'])
        for p, t in zip(data_samples, target):
            self.results.append(float((p - t)**2))

    def compute_metrics(self, results):
        return dict(mse=float(np.mean(results)))


def test_tools_test_without_protocol_runs_runner_test(tmp_path,
                                                      monkeypatch):
    monkeypatch.syspath_prepend(osp.join(REPO, 'tests', 'data'))
    config = tmp_path / 'toy_test.py'
    config.write_text(
        f'_base_ = [{TOY_CONFIG!r}]\n'
        'test_dataloader = dict(batch_size=8, num_workers=0, '
        "sampler=dict(type='DefaultSampler', shuffle=False), "
        "collate_fn=dict(type='pseudo_collate'), "
        "dataset=dict(type='ToyRegressionDataset', num_samples=16, "
        'in_dim=8))\n'
        "test_cfg = dict(type='TestLoop')\n"
        "test_evaluator = dict(type='ToyMSEMetric')\n")
    import toy_modules
    model = toy_modules.ToyRegressor(in_dim=8, hidden=16)
    ckpt = tmp_path / 'toy.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    dump = tmp_path / 'preds.pkl'
    metrics = test_api.main([str(config), str(ckpt), '--work-dir',
                             str(tmp_path / 'work'), '--dump', str(dump)])
    assert set(metrics) == {'mse'} and metrics['mse'] > 0
    assert dump.is_file()
    assert not (tmp_path / 'work' / 'protocol_results.json').exists()
    # tools/test.py reads load_from through the one checkpoint reader
    for name, data in (('empty.pth', b''), ('cut.pth',
                                            ckpt.read_bytes()[:100])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(NotACheckpointError, match=name):
            test_api.main([str(config), str(tmp_path / name), '--work-dir',
                           str(tmp_path / 'work')])
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        test_api.main([str(config), str(tmp_path / 'nowhere.pth')])
    with pytest.raises(ValueError, match='.pkl'):
        test_api.main([str(config), str(ckpt), '--dump', 'x.json'])
    with pytest.raises(ValueError, match='protocol'):
        test_api.main([str(config), str(ckpt), '--compare-random'])


@PROTOCOLS.register_module(force=True)
class UnserialisableResultsProtocol:
    """Results that format as a table but cannot be written as JSON."""

    def run(self, model_cfg, checkpoint=None, work_dir='.',
            compare_random=None, dump=None):
        return dict(name='fake', feature='cnn', num_recordings=1,
                    pretrained=dict(folds={1: dict(top1=1.0)},
                                    mean=dict(top1=1.0), std=dict(top1=0.0),
                                    selection={1: dict(C=1.0)}),
                    extra=object())


def test_protocol_results_file_is_replaced_whole(tmp_path):
    """A failure while writing the results keeps the previous file as it
    was (not a truncated one)."""
    config = tmp_path / 'fake_protocol.py'
    config.write_text("protocol = dict(type='UnserialisableResultsProtocol')"
                      "\nmodel = dict(type='Nothing')\n")
    ckpt = tmp_path / 'any.pth'
    ckpt.write_bytes(b'not read by this protocol')
    work = tmp_path / 'work'
    work.mkdir()
    previous = work / test_api.RESULTS_FILE
    previous.write_text('{"previous": "results"}')
    with pytest.raises(FileExistsError, match=test_api.RESULTS_FILE):
        test_api.main([str(config), str(ckpt), '--work-dir', str(work)])
    with pytest.raises(TypeError, match='not JSON serializable'):
        test_api.main([str(config), str(ckpt), '--work-dir', str(work),
                       '--overwrite'])
    assert previous.read_text() == '{"previous": "results"}'
    assert os.listdir(work) == [test_api.RESULTS_FILE]
