"""Tests of the synthetic audio-visual data generator."""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import av
import decord
import numpy as np
import pytest

from avtoolkit.data_prep.synthetic_av import (BROKEN_KINDS,
                                              generate_synthetic_av,
                                              write_broken_inputs)
from avtoolkit.data_prep.synthetic_render import render_audio, render_frames
from avtoolkit.data_prep.synthetic_spec import (SyntheticAVConfig,
                                                class_specs,
                                                sample_video_plan)

SR = 16000
# AAC works in frames of 1024 samples: the decoded track is rounded up to a
# whole frame.
AAC_SLACK_S = 1024 / SR + 1e-3
LIST_LINE = re.compile(r'^videos/synth_\d{5}\.mp4 \d+$')


def _decode_frames(path):
    """(T, H, W, 3) float32 frames of a file, decoded with decord."""
    reader = decord.VideoReader(path)
    return reader.get_batch(list(range(len(reader)))).asnumpy().astype(
        np.float32)


def _decode_audio(path, sample_rate=SR):
    """(N,) float32 mono samples of a file, decoded with decord."""
    reader = decord.AudioReader(path, sample_rate=sample_rate, mono=True)
    return reader[:].asnumpy()[0]


def _load_summary(out_dir):
    with open(osp.join(out_dir, 'summary.json')) as f:
        return json.load(f)


def _foreground(frames, params):
    """Frames minus their scene's static background, estimated as the
    per-pixel temporal median over the scene (the object is on screen less
    than half of every second)."""
    from avtoolkit.data_prep.synthetic_spec import scene_bounds
    fps = params['fps']
    out = np.empty_like(frames)
    for start, end in scene_bounds(params['seconds'],
                                   params['scene_seconds']):
        part = frames[start * fps:end * fps]
        out[start * fps:end * fps] = part - np.median(part, axis=0)
    return out


def _per_second_features(out_dir):
    """Per-second visual and audio features of every video.

    Visual: mean colour of what differs from the scene's static background
    (see :func:`_foreground`), one RGB triple per second.
    Audio: log2 of the strongest frequency (150-4000 Hz) of each second.
    """
    summary = _load_summary(out_dir)
    params = summary['params']
    fps, seconds = params['fps'], params['seconds']
    visual, audio, labels, videos = [], [], [], []
    for vid, video in enumerate(summary['videos']):
        path = osp.join(out_dir, video['path'])
        frames = _decode_frames(path)
        foreground = _foreground(frames, params)
        samples = _decode_audio(path)
        freqs = np.fft.rfftfreq(SR, 1 / SR)
        band = (freqs > 150) & (freqs < 4000)
        for s in range(seconds):
            visual.append(foreground[s * fps:(s + 1) * fps].mean((0, 1, 2)))
            segment = samples[s * SR:(s + 1) * SR] * np.hanning(SR)
            spectrum = np.abs(np.fft.rfft(segment))
            audio.append([np.log2(freqs[band][np.argmax(spectrum[band])])])
            labels.append(video['label'])
            videos.append(vid)
    return (np.asarray(visual), np.asarray(audio), np.asarray(labels),
            np.asarray(videos))


def _nearest_centroid_accuracy(features, labels, videos, num_classes):
    """Fit class centroids on half of each class's videos, test on the
    other half (whole videos are held out, never single seconds)."""
    train = np.zeros(len(labels), bool)
    for c in range(num_classes):
        members = np.unique(videos[labels == c])
        assert len(members) >= 2, 'need two videos per class'
        train |= np.isin(videos, members[::2])
    centroids = np.stack(
        [features[train & (labels == c)].mean(0) for c in range(num_classes)])
    test = ~train
    dist = ((features[test][:, None] - centroids[None])**2).sum(-1)
    return float((dist.argmin(1) == labels[test]).mean())


@pytest.fixture(scope='module')
def probe_dir(tmp_path_factory):
    """6 classes x 4 videos x 3 s, for the supervised checks."""
    out_dir = str(tmp_path_factory.mktemp('probe') / 'data')
    generate_synthetic_av(out_dir, num_videos=24, seconds=3, num_classes=6,
                          seed=3, height=64, width=64, fps=8,
                          verbose=False)
    return out_dir


def test_layout_and_lists(synthetic_av_dir):
    summary = _load_summary(synthetic_av_dir)
    params = summary['params']
    names = {}
    for split in ('train', 'val'):
        with open(osp.join(synthetic_av_dir, f'{split}_list.txt')) as f:
            lines = f.read().splitlines()
        assert len(lines) == summary['splits'][split]['num_videos']
        for line in lines:
            assert LIST_LINE.match(line), line
            rel, label = line.split(' ')
            assert osp.isfile(osp.join(synthetic_av_dir, rel))
            assert 0 <= int(label) < params['num_classes']
            assert rel not in names, f'{rel} listed twice'
            names[rel] = (split, int(label))
    assert len(names) == params['num_videos'] == len(summary['videos'])
    for video in summary['videos']:
        assert names[video['path']] == (video['split'], video['label'])
        assert len(video['events']) == params['seconds']
    # Labels are balanced and every class has train and val videos.
    for split in ('train', 'val'):
        per_class = summary['splits'][split]['per_class']
        assert min(per_class) >= 1
        assert max(per_class) - min(per_class) <= 1
    with open(osp.join(synthetic_av_dir, 'classes.txt')) as f:
        classes = f.read().splitlines()
    assert classes == [s.describe() for s in class_specs(
        params['num_classes'])]
    assert len(set(classes)) == params['num_classes']
    sizes = sum(
        osp.getsize(osp.join(synthetic_av_dir, rel)) for rel in names)
    assert summary['total_bytes'] == sizes


def test_files_decode_with_decord(synthetic_av_dir):
    summary = _load_summary(synthetic_av_dir)
    params = summary['params']
    for video in summary['videos'][:4]:
        path = osp.join(synthetic_av_dir, video['path'])
        reader = decord.VideoReader(path)
        assert len(reader) == params['seconds'] * params['fps']
        assert reader.get_avg_fps() == pytest.approx(params['fps'])
        assert reader[0].shape == (params['height'], params['width'], 3)
        frames = reader.get_batch([0, len(reader) - 1]).asnumpy()
        assert frames.dtype == np.uint8 and frames.std() > 1

        samples = _decode_audio(path, params['sample_rate'])
        duration = len(samples) / params['sample_rate']
        assert params['seconds'] <= duration <= params['seconds'] + \
            AAC_SLACK_S
        assert 0.02 < np.abs(samples).max() <= 1.0
        with av.open(path) as container:
            kinds = sorted(s.type for s in container.streams)
            assert kinds == ['audio', 'video']
            assert container.streams.video[0].codec_context.name == 'h264'
            assert container.streams.audio[0].codec_context.name == 'aac'
            assert container.streams.audio[0].channels == 1


def test_audio_and_picture_share_per_second_events(synthetic_av_dir):
    """The object shows up exactly when the sound plays."""
    summary = _load_summary(synthetic_av_dir)
    fps = summary['params']['fps']
    matched, shifted = [], []
    for video in summary['videos'][:6]:
        path = osp.join(synthetic_av_dir, video['path'])
        frames = _decode_frames(path)
        n = len(frames)
        motion = np.abs(_foreground(frames, summary['params'])).mean(
            (1, 2, 3))
        samples = _decode_audio(path)[:n * (SR // fps)]
        loudness = np.sqrt((samples.reshape(n, -1)**2).mean(1))
        times = np.arange(n) / fps + 0.5 / fps
        inside = np.zeros(n, bool)
        for event in video['events']:
            inside |= (times >= event['onset']) & (
                times < event['onset'] + event['duration'])
        # Both modalities are stronger inside the listed events.
        assert loudness[inside].mean() > 1.3 * loudness[~inside].mean()
        assert motion[inside].mean() > 1.2 * motion[~inside].mean()
        matched.append(np.corrcoef(motion, loudness)[0, 1])
        shifted.append(np.corrcoef(motion, np.roll(loudness, fps // 2))[0,
                                                                          1])
    assert np.mean(matched) > 0.5
    assert np.mean(matched) > np.mean(shifted) + 0.5


def test_labels_recoverable_from_each_modality(probe_dir):
    visual, audio, labels, videos = _per_second_features(probe_dir)
    num_classes = 6
    chance = 1 / num_classes
    visual_acc = _nearest_centroid_accuracy(visual, labels, videos,
                                            num_classes)
    audio_acc = _nearest_centroid_accuracy(audio, labels, videos,
                                           num_classes)
    assert visual_acc > 3 * chance, visual_acc
    assert audio_acc > 3 * chance, audio_acc
    # Control: with labels shuffled between videos the same probe is near
    # chance, so the accuracy above comes from the content.
    rng = np.random.default_rng(0)
    video_labels = {v: labels[videos == v][0] for v in np.unique(videos)}
    keys = sorted(video_labels)
    shuffled = dict(zip(keys, rng.permutation([video_labels[k]
                                               for k in keys])))
    fake = np.asarray([shuffled[v] for v in videos])
    for features in (visual, audio):
        assert _nearest_centroid_accuracy(features, fake, videos,
                                          num_classes) < 2 * chance


def test_same_seed_same_content_any_worker_count(tmp_path):
    kwargs = dict(num_videos=3, seconds=2, num_classes=2, height=32,
                  width=32, fps=8, verbose=False)
    a = generate_synthetic_av(str(tmp_path / 'a'), seed=5, workers=1,
                              **kwargs)
    b = generate_synthetic_av(str(tmp_path / 'b'), seed=5, workers=2,
                              **kwargs)
    c = generate_synthetic_av(str(tmp_path / 'c'), seed=6, workers=1,
                              **kwargs)
    rel = a['videos'][1]['path']
    frames_a = _decode_frames(osp.join(a['out_dir'], rel))
    frames_b = _decode_frames(osp.join(b['out_dir'], rel))
    frames_c = _decode_frames(osp.join(c['out_dir'], rel))
    assert np.array_equal(frames_a, frames_b)
    assert np.array_equal(_decode_audio(osp.join(a['out_dir'], rel)),
                          _decode_audio(osp.join(b['out_dir'], rel)))
    assert frames_a.shape == frames_c.shape
    assert np.abs(frames_a - frames_c).mean() > 5
    # Single-threaded encoders: even the bytes are the same.
    for video in a['videos']:
        with open(osp.join(a['out_dir'], video['path']), 'rb') as fa, \
                open(osp.join(b['out_dir'], video['path']), 'rb') as fb:
            assert fa.read() == fb.read()
    for name in ('train_list.txt', 'val_list.txt', 'classes.txt'):
        with open(osp.join(a['out_dir'], name)) as fa, \
                open(osp.join(b['out_dir'], name)) as fb:
            assert fa.read() == fb.read()
    assert [v['events'] for v in a['videos']] == \
        [v['events'] for v in b['videos']]


def test_plan_and_rendering_shapes():
    config = SyntheticAVConfig(num_videos=1, seconds=2, num_classes=3,
                               height=40, width=48, fps=6, sample_rate=8000)
    plan = sample_video_plan(config, 0, 2)
    assert plan['label'] == 2 and len(plan['events']) == 2
    for s, event in enumerate(plan['events']):
        assert s < event['onset'] < event['onset'] + event['duration'] < s + 1
    frames = render_frames(plan, config)
    assert frames.shape == (12, 40, 48, 3) and frames.dtype == np.uint8
    audio = render_audio(plan, config)
    assert audio.shape == (16000, ) and audio.dtype == np.float32
    assert np.abs(audio).max() <= 0.9 + 1e-6
    assert render_frames(plan, config, 5).shape == (5, 40, 48, 3)
    # A plan depends on the seed and the index only.
    assert sample_video_plan(config, 0, 2) == plan
    assert sample_video_plan(config, 1, 2)['seed'] != plan['seed']
    with pytest.raises(ValueError, match='num_frames'):
        render_frames(plan, config, 13)
    with pytest.raises(ValueError, match='num_samples'):
        render_audio(plan, config, 16001)


def _backdrop(frames, fps, second):
    """Per-pixel median of one second's frames: the static background."""
    return np.median(frames[second * fps:(second + 1) * fps].astype(
        np.float32), axis=0)


def test_scenes_redraw_the_backdrop_not_the_class():
    fps = 8
    common = dict(num_videos=1, seconds=4, num_classes=3, height=48,
                  width=48, fps=fps, sample_rate=8000)
    cut = SyntheticAVConfig(scene_seconds=1, **common)
    static = SyntheticAVConfig(scene_seconds=0, **common)
    two = SyntheticAVConfig(scene_seconds=3, **common)
    assert SyntheticAVConfig(**common).scene_seconds == 1  # the default
    plan_cut = sample_video_plan(cut, 0, 1)
    plan_static = sample_video_plan(static, 0, 1)
    assert [(sc['start'], sc['end']) for sc in plan_cut['scenes']] == \
        [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert [(sc['start'], sc['end']) for sc in plan_static['scenes']] == \
        [(0, 4)]
    assert [(sc['start'], sc['end'])
            for sc in sample_video_plan(two, 0, 1)['scenes']] == \
        [(0, 3), (3, 4)]
    # Blob visibility stays inside its scene.
    for scene in plan_cut['scenes']:
        for blob in scene['blobs']:
            for a, b in blob['visible']:
                assert scene['start'] <= a < b <= scene['end']
    # The class's recipe is the same whatever the scenes.
    for key in ('label', 'shape', 'motion', 'timbre', 'pulses',
                'pitch_centre_hz'):
        assert plan_cut[key] == plan_static[key]

    def backdrop_change(config, plan):
        frames = render_frames(plan, config)
        return [float(np.abs(_backdrop(frames, fps, s + 1) -
                             _backdrop(frames, fps, s)).mean())
                for s in range(config.seconds - 1)]

    # One scene: the backdrop barely changes from second to second (grating
    # drift, flicker and noise only); a scene per second: it changes a lot.
    assert max(backdrop_change(static, plan_static)) < 6.0
    assert min(backdrop_change(cut, plan_cut)) > 2 * max(
        backdrop_change(static, plan_static))
    # The audio background is rendered per scene: with the events and
    # distractors removed, each second's level follows its scene's noise.
    import copy
    bare = copy.deepcopy(plan_cut)
    bare['events'], bare['distractor_tones'], bare['clicks'] = [], [], []
    levels = [0.01, 0.04, 0.02, 0.03]
    for scene, level in zip(bare['scenes'], levels):
        scene['noise'].update(level=level, hum_level=0.0)
    audio = render_audio(bare, cut)
    rms = [float(np.sqrt(np.mean(audio[s * 8000:(s + 1) * 8000]**2)))
           for s in range(cut.seconds)]
    np.testing.assert_allclose(rms, levels, rtol=0.02)


@pytest.mark.parametrize('kwargs, error', [
    (dict(num_videos=0), ValueError),
    (dict(seconds=0), ValueError),
    (dict(seconds=1.5), TypeError),
    (dict(num_classes=1), ValueError),
    (dict(num_classes=31), ValueError),
    (dict(height=33), ValueError),
    (dict(width=16), ValueError),
    (dict(fps=2), ValueError),
    (dict(sample_rate=12345), ValueError),
    (dict(val_fraction=1.0), ValueError),
    (dict(val_fraction=-0.1), ValueError),
    (dict(scene_seconds=-1), ValueError),
    (dict(scene_seconds=0.5), TypeError),
    (dict(workers=0), ValueError),
])
def test_bad_parameters_are_rejected(tmp_path, kwargs, error):
    out_dir = tmp_path / 'out'
    with pytest.raises(error):
        generate_synthetic_av(str(out_dir), verbose=False, **kwargs)
    assert not out_dir.exists()


def test_skip_replace_refuse_and_resume(tmp_path, capsys):
    kwargs = dict(num_videos=3, seconds=1, num_classes=2, height=32,
                  width=32, fps=8)
    out_dir = str(tmp_path / 'data')
    first = generate_synthetic_av(out_dir, seed=0, verbose=False, **kwargs)
    assert first['skipped'] is False and first['generated'] == 3
    video = osp.join(out_dir, first['videos'][0]['path'])
    mtime = os.stat(video).st_mtime_ns

    # Same parameters: nothing is rewritten, and it says so.
    again = generate_synthetic_av(out_dir, seed=0, verbose=True, **kwargs)
    assert again['skipped'] is True
    assert os.stat(video).st_mtime_ns == mtime
    printed = capsys.readouterr().out
    assert 'already holds a complete synthetic dataset' in printed
    assert 'train' in printed and 'val' in printed

    # Temporary files of writes cut short by a killed run (and those of
    # older versions, NAME.part); anything else in the folder is kept.
    stale = ['videos/.synth_00002.mp4.ab12cd_4.tmp',
             '.summary.json.x8y7z6w5.tmp', '.train_list.txt.q1w2e3r4.tmp',
             'videos/synth_00002.mp4.part', 'classes.txt.part']
    kept = ['videos/.notes.txt.ab12cd_4.tmp', '.other.json.x8y7z6w5.tmp']

    def leave_files():
        for rel in stale + kept:
            with open(osp.join(out_dir, rel), 'wb') as f:
                f.write(b'half')

    # Different parameters in a folder of ours: replaced.
    leave_files()
    other = generate_synthetic_av(out_dir, seed=1, verbose=False, **kwargs)
    assert other['skipped'] is False
    assert _load_summary(out_dir)['params']['seed'] == 1
    assert not any(osp.exists(osp.join(out_dir, r)) for r in stale)
    assert all(osp.exists(osp.join(out_dir, r)) for r in kept)

    # An interrupted run (no summary yet, one video missing) is resumed.
    os.remove(osp.join(out_dir, 'summary.json'))
    os.remove(osp.join(out_dir, other['videos'][2]['path']))
    leave_files()
    resumed = generate_synthetic_av(out_dir, seed=1, verbose=False, **kwargs)
    assert resumed['reused'] == 2 and resumed['generated'] == 1
    assert resumed['videos'] == other['videos']
    assert not any(osp.exists(osp.join(out_dir, r)) for r in stale)
    assert all(osp.exists(osp.join(out_dir, r)) for r in kept)

    # A folder that is not ours is refused unless overwrite is given.
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='overwrite'):
        generate_synthetic_av(str(foreign), verbose=False, **kwargs)
    assert sorted(os.listdir(foreign)) == ['notes.txt']
    done = generate_synthetic_av(str(foreign), overwrite=True,
                                 verbose=False, **kwargs)
    assert done['skipped'] is False
    assert (foreign / 'notes.txt').read_text() == 'keep me'

    (tmp_path / 'file').write_text('x')
    with pytest.raises(NotADirectoryError):
        generate_synthetic_av(str(tmp_path / 'file'), verbose=False, **kwargs)


def test_broken_inputs_are_broken(tmp_path):
    fps = 8
    paths = write_broken_inputs(str(tmp_path), seed=0, height=32, width=32,
                                fps=fps)
    assert sorted(paths) == sorted(BROKEN_KINDS)
    declared_frames = 2 * fps

    # truncated: the header survives and declares 2 s, the data does not.
    with av.open(paths['truncated']) as container:
        assert container.duration / 1e6 == pytest.approx(2.0, abs=0.1)
        decoded = 0
        try:
            for _ in container.decode(video=0):
                decoded += 1
        except av.error.FFmpegError:
            pass
    assert decoded < declared_frames
    try:
        reader = decord.VideoReader(paths['truncated'])
        frames = len(reader.get_batch(list(range(len(reader)))))
    except (RuntimeError, decord.DECORDError):
        frames = 0
    assert frames < declared_frames
    samples = _decode_audio(paths['truncated'])
    assert len(samples) / SR < 2.0 - 0.5

    # no_index: the container itself cannot be opened.
    with pytest.raises((RuntimeError, decord.DECORDError)):
        decord.VideoReader(paths['no_index'])
    with pytest.raises(av.error.FFmpegError):
        av.open(paths['no_index'])

    # no_audio: a fine video without an audio stream.
    with av.open(paths['no_audio']) as container:
        assert [s.type for s in container.streams] == ['video']
    assert len(decord.VideoReader(paths['no_audio'])) == declared_frames
    with pytest.raises((RuntimeError, decord.DECORDError)):
        decord.AudioReader(paths['no_audio'], sample_rate=SR, mono=True)

    # short: valid but under one second in both streams.
    reader = decord.VideoReader(paths['short'])
    assert 1 <= len(reader) < fps
    assert len(_decode_audio(paths['short'])) / SR < 1.0

    # empty: zero bytes.
    assert osp.getsize(paths['empty']) == 0
    with pytest.raises((RuntimeError, decord.DECORDError)):
        decord.VideoReader(paths['empty'])


def _load_cli(repo_root):
    path = osp.join(repo_root, 'tools', 'data', 'make_synthetic_av.py')
    spec = importlib.util.spec_from_file_location('make_synthetic_av', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_refuses_foreign_folder(repo_root, tmp_path, capsys):
    cli = _load_cli(repo_root)
    (tmp_path / 'mine.txt').write_text('x')
    code = cli.main([str(tmp_path), '--num-videos', '2', '--quiet'])
    assert code == 2
    assert 'not written by the synthetic data generator' in \
        capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['mine.txt']
    assert cli.main([str(tmp_path / 'x'), '--height', '31']) == 2


@pytest.mark.slow
def test_cli_end_to_end(repo_root, tmp_path):
    out_dir = str(tmp_path / 'demo')
    cmd = [
        sys.executable,
        osp.join(repo_root, 'tools', 'data', 'make_synthetic_av.py'),
        out_dir, '--num-videos', '4', '--seconds', '1', '--num-classes',
        '2', '--height', '48', '--width', '64', '--fps', '8',
        '--val-fraction', '0.5', '--seed', '7', '--broken'
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f'Synthetic audio-visual dataset in {out_dir}' in run.stdout
    assert re.search(r'train:\s+2 videos, 2 s', run.stdout), run.stdout
    assert re.search(r'val\s*:\s+2 videos, 2 s', run.stdout), run.stdout
    assert 'generated 4 videos' in run.stdout
    for kind in BROKEN_KINDS:
        assert osp.isfile(osp.join(out_dir, 'broken', kind + '.mp4'))
    summary = _load_summary(out_dir)
    assert summary['params']['seed'] == 7
    assert summary['params']['width'] == 64
    reader = decord.VideoReader(
        osp.join(out_dir, summary['videos'][0]['path']))
    assert reader[0].shape == (48, 64, 3)

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert 'already holds a complete synthetic dataset' in rerun.stdout


def test_events_follow_the_class_motif():
    """Per-second pitch steps cycle through the class motif from a random
    phase, so a masked second is predictable from its neighbours and the
    class; the six cyclic orders are distinct."""
    from avtoolkit.data_prep.synthetic_spec import class_motif
    cycles = {class_motif(c) for c in range(6)}
    assert len(cycles) == 6
    config = SyntheticAVConfig(num_videos=4, seconds=9, num_classes=10)
    phases = set()
    for index in range(12):
        label = index % 10
        plan = sample_video_plan(config, index, label)
        motif = class_motif(label)
        steps = [e['motif_step'] for e in plan['events']]
        phase = motif.index(steps[0])
        phases.add(phase)
        assert steps == [motif[(phase + s) % 4] for s in range(9)]
        # the sounded pitch follows the step (+-0.5 semitone jitter and the
        # per-video offset of +-1)
        centre = plan['pitch_centre_hz']
        for e in plan['events']:
            semis = 12 * np.log2(e['pitch_hz'] / centre)
            assert abs(semis - e['motif_step']) <= 1.5 + 1e-9
            # and so does the horizontal start position
            assert (e['centre'][0] - 0.5) * e['motif_step'] > 0
    assert len(phases) > 1
