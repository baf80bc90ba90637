"""Decoding, clip sampling, audio/video transforms and packing."""
import os.path as osp
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
import torchaudio
from mmengine.dataset import Compose, default_collate, pseudo_collate

from av_test_media import (burst_onsets, flash_frames,  # noqa: E402
                           write_marker_avi, write_marker_video)

from avtoolkit.datasets.bad_input import BadInputError  # noqa: E402
from avtoolkit.datasets.io import MediaReader  # noqa: E402
from avtoolkit.datasets.transforms import (AVDecode, AVInit,  # noqa: E402
                                           AVSampleClips, frames_for_samples,
                                           samples_for_frames)

MARKERS = {
    'mp4_16fps_16k_mono': dict(fps=16, sample_rate=16000, channels=1),
    'mp4_30fps_48k_stereo': dict(fps=30, sample_rate=48000, channels=2),
    'mp4_29.97fps_44k_stereo': dict(fps=Fraction(30000, 1001),
                                    sample_rate=44100, channels=2),
    'mp4_12.5fps_22k_mono': dict(fps=Fraction(25, 2), sample_rate=22050,
                                 channels=1),
    'mp4_25fps_32k_5.1': dict(fps=25, sample_rate=32000, channels=6),
    'mp4_vfr_20-40ms_16k': dict(fps=25, sample_rate=16000, vfr=True),
}


@pytest.fixture(scope='module')
def markers(tmp_path_factory):
    root = tmp_path_factory.mktemp('markers')
    out = {name: write_marker_video(str(root / f'{name}.mp4'), **kw)
           for name, kw in MARKERS.items()}
    out['avi_25fps_44k_stereo_mp3'] = write_marker_avi(str(root / 'm.avi'))
    out['wide_320x240'] = write_marker_video(str(root / 'wide.mp4'),
                                             size=(320, 240), fps=16)
    return out


def run(transforms, results):
    for t in transforms:
        results = t(results)
    return results


def pretrain_pipeline(num_clips=5, frames=32, **sample_kw):
    return Compose([
        dict(type='AVInit'),
        dict(type='AVSampleClips', num_clips=num_clips, clip_duration=1.0,
             frames_per_clip=frames, mode='random', **sample_kw),
        dict(type='AVDecode', short_side=128, sample_rate=16000),
        dict(type='RandomCrop', size=112),
        dict(type='Flip', flip_ratio=0.5),
        dict(type='VideoNormalize'),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='LogMelSpectrogram', num_frames=220),
        dict(type='AudioNormalize', mean=-6.0, std=4.0),
        dict(type='AudioMask', prob=1.0),
        dict(type='PackAVInputs'),
    ])


# --------------------------------------------------------------- real media
def test_real_avi_pretrain_shapes(real_media_dir):
    path = osp.join(real_media_dir, 'mmaction2_test.avi')
    out = pretrain_pipeline(num_clips=5)(dict(filename=path, label=4))
    video, audio = out['inputs']['video'], out['inputs']['audio']
    assert video.shape == (5, 3, 32, 112, 112) and video.dtype == torch.float32
    assert audio.shape == (5, 1, 128, 220) and audio.dtype == torch.float32
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()
    meta = out['data_samples'].metainfo
    starts, ends = np.array(meta['clip_starts']), np.array(meta['clip_ends'])
    assert len(starts) == 5 and np.allclose(ends - starts, 1.0)
    assert np.allclose(np.diff(starts), 1.0)  # back-to-back clips
    assert starts[0] >= 0 and ends[-1] <= meta['duration'] + 1e-6
    assert meta['filename'] == path and meta['num_views'] == 1
    assert out['data_samples'].gt_labels.item.tolist() == [4]


def test_real_avi_short_policy(real_media_dir):
    """6.56 s of video cannot give 30 one-second clips: 'error' raises with
    the file name, 'loop' repeats the video."""
    path = osp.join(real_media_dir, 'mmaction2_test.avi')
    with pytest.raises(BadInputError, match='too_short.*mmaction2_test'):
        pretrain_pipeline(num_clips=30)(dict(filename=path))
    out = pretrain_pipeline(num_clips=30, frames=8,
                            short_policy='loop')(dict(filename=path))
    assert out['inputs']['video'].shape == (30, 3, 8, 112, 112)
    assert out['inputs']['audio'].shape == (30, 1, 128, 220)
    assert out['data_samples'].metainfo['looped'] is True


@pytest.mark.parametrize('name,rate', [('crowd_cheering.wav', 44100),
                                       ('typing.wav', 48000)])
def test_real_stereo_wavs(real_media_dir, name, rate):
    """Audio-only ESC-50-style protocol: 10 evenly spaced 2-s clips; the
    decoder's mono 16 kHz signal matches an independent torchaudio
    resample of the channel mean."""
    path = osp.join(real_media_dir, name)
    pipe = Compose([
        dict(type='AVInit', modalities=('audio', )),
        dict(type='AVSampleClips', num_clips=10, clip_duration=2.0,
             frames_per_clip=0, mode='uniform'),
        dict(type='AVDecode', sample_rate=16000, audio_samples=32047),
        dict(type='LogMelSpectrogram', num_frames=440),
        dict(type='PackAVInputs'),
    ])
    out = pipe(dict(filename=path))
    assert set(out['inputs']) == {'audio'}
    assert out['inputs']['audio'].shape == (10, 1, 128, 440)
    starts = np.array(out['data_samples'].metainfo['clip_starts'])
    dur = out['data_samples'].metainfo['duration']
    assert np.allclose(starts, np.linspace(0, dur - 2.0, 10))

    reader = MediaReader(path, need_video=False)
    assert (reader.sample_rate, reader.channels) == (rate, 2)
    mine = reader.read_audio([1.0], 32000, 16000)[0]
    with av.open(path) as c:
        native = np.concatenate([f.to_ndarray().reshape(2, -1)
                                 if f.format.is_planar else
                                 f.to_ndarray().reshape(-1, 2).T
                                 for f in c.decode(audio=0)], axis=1)
    if native.dtype == np.int16:
        native = native.astype(np.float32) / 32768.0
    ref = torchaudio.functional.resample(
        torch.from_numpy(native.astype(np.float32)).mean(0), rate,
        16000).numpy()[16000:48000]
    # Compare below 4 kHz: both resamplers agree there up to sub-sample
    # phase differences.
    lp = np.ones(4) / 4
    a, b = np.convolve(mine, lp, 'valid'), np.convolve(ref, lp, 'valid')
    assert np.corrcoef(a, b)[0, 1] > 0.99
    assert abs(a.std() / b.std() - 1) < 0.05



@pytest.mark.parametrize('name', ['mp4_30fps_48k_stereo',
                                  'mp4_25fps_32k_5.1',
                                  'avi_25fps_44k_stereo_mp3'])
def test_audio_batches_join_seamlessly(markers, name, monkeypatch):
    """Audio is converted in batches of ``audio_batch_seconds``; a span read
    in many small batches equals the same span read in one batch (the
    resampler's state carries over), and so does every window of it."""
    path = markers[name]['path']
    reader = MediaReader(path, need_video=False)
    a, b = 0.3, min(reader.end, 5.0) - 0.2
    one, t_one = reader.read_audio_span(a, b, 16000)
    monkeypatch.setattr(MediaReader, 'audio_batch_seconds', 0.25)
    many, t_many = MediaReader(path, need_video=False).read_audio_span(
        a, b, 16000)
    assert t_one == t_many
    assert len(one) == len(many) >= int((b - a) * 16000)
    np.testing.assert_allclose(many, one, atol=1e-6)
    assert np.abs(one).max() > 0.01  # not silence


def test_read_frames_repeats_and_order(markers):
    """Times out of order and repeated: each row is the frame on screen at
    its time, repeated frames are equal copies (not views of one row)."""
    path = markers['mp4_30fps_48k_stereo']['path']
    times = [2.0, 0.5, 2.0, 2.01, 0.5]
    got = MediaReader(path, need_audio=False).read_frames(times,
                                                          short_side=64)
    assert got.shape[0] == 5 and got.dtype == np.uint8
    single = [MediaReader(path, need_audio=False).read_frames(
        [t], short_side=64)[0] for t in times]
    for row, ref in zip(got, single):
        assert np.array_equal(row, ref)
    assert np.array_equal(got[0], got[2]) and np.array_equal(got[0], got[3])
    got[0] += 1
    assert not np.array_equal(got[0], got[2])


@pytest.mark.parametrize('power', [2.0, 1.0, 1.5])
def test_logmel_matches_torchaudio(power):
    """The log-mel equals log(torchaudio's MelSpectrogram + eps) with the
    same parameters, whatever the power."""
    from avtoolkit.datasets.transforms import LogMelSpectrogram
    wave = torch.from_numpy(np.random.default_rng(1).standard_normal(
        (3, 16000)).astype(np.float32))
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=1024, win_length=400, hop_length=73,
        n_mels=128, power=power, center=True, pad_mode='reflect',
        mel_scale='htk')
    got = LogMelSpectrogram(power=power)(dict(audio=wave.numpy()))['audio']
    torch.testing.assert_close(got[:, 0], torch.log(ref(wave) + 1e-6),
                               rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match='power'):
        LogMelSpectrogram(power=0)


# ------------------------------------------------- frames and synchronisation
@pytest.mark.parametrize('which', ['real_avi', 'mp4_30fps_48k_stereo'])
def test_segment_decoding_matches_sequential(which, markers,
                                             real_media_dir):
    """Frames found by seeking equal the frames on screen in a full
    sequential decode, at arbitrary times."""
    path = osp.join(real_media_dir, 'mmaction2_test.avi') \
        if which == 'real_avi' else markers[which]['path']
    seq = MediaReader(path, need_audio=False)
    w, h = seq.output_size(64)
    from avtoolkit.datasets.io import frame_to_rgb
    times, imgs = zip(*[(t, frame_to_rgb(f, w, h))
                        for t, f in seq.iter_video_frames(0.0)])
    times = np.array(times)
    rng = np.random.default_rng(0)
    query = np.concatenate([rng.uniform(0, seq.end - 0.05, 12),
                            [0.0, seq.end - 0.01, 3.0, 3.0]])
    got = MediaReader(path).read_frames(query, short_side=64, seek_gap=0.3)
    for t, frame in zip(query, got):
        k = max(0, np.searchsorted(times, t, side='right') - 1)
        assert np.array_equal(frame, imgs[k]), f'time {t:.3f}'


@pytest.mark.parametrize('name', sorted(MARKERS) +
                         ['avi_25fps_44k_stereo_mp3'])
def test_audio_video_synchronised(markers, name):
    """In every clip holding an event, the flash frame and the onset of the
    audio burst are less than one frame period apart, at absolute times
    given by the clip timestamps.

    The flash frame starts between the last sampled time that does not show
    it and the first one that does (samples are 1/32 s apart).  The AVI's
    own timestamps put its video one frame late (FFmpeg's AVI timing) and
    its MP3 audio 25 ms late (encoder delay, not signalled in AVI); the
    difference is still within a frame."""
    info = markers[name]
    period = info['max_frame_period']
    np.random.seed(1)
    pipe = [AVInit(), AVSampleClips(num_clips=4, clip_duration=1.0,
                                    frames_per_clip=32, mode='random',
                                    jitter=0.3),
            AVDecode(sample_rate=16000)]
    checked = 0
    for _ in range(8):
        res = run(pipe, dict(filename=info['path']))
        flashes = flash_frames(res['imgs']).reshape(4, 32)
        for c in range(4):
            start = res['clip_starts'][c]
            a_start = res['audio_starts'][c]
            assert abs(a_start - start) < 1e-9  # window == clip
            targets = start + (np.arange(32) + 0.5) / 32
            inside = [e for e in info['events']
                      if start + 0.01 < e < start + 1 - period - 0.04]
            if not inside:
                continue
            assert len(inside) == 1
            onsets = [a_start + o for o in burst_onsets(res['audio'][c],
                                                        16000)]
            video_t = targets[flashes[c]]
            assert len(video_t) and len(onsets) == 1, (start, inside)
            first = video_t[0]  # flash frame starts in (first - 1/32, first]
            assert first - 1 / 32 - period - 1e-3 < onsets[0] < first + period
            assert abs(onsets[0] - inside[0]) < period
            if name.startswith('mp4'):  # exact timestamps
                assert inside[0] - 1e-6 <= first < inside[0] + 1 / 32 + 1e-6
            checked += 1
    assert checked >= 3


def test_bytes_input_equals_path(markers):
    path = markers['mp4_16fps_16k_mono']['path']
    with open(path, 'rb') as f:
        data = f.read()
    np.random.seed(3)
    pipe = [AVInit(), AVSampleClips(num_clips=2, frames_per_clip=8,
                                    mode='center'), AVDecode()]
    a = run(pipe, dict(filename=path))
    b = run(pipe, dict(filename='in-memory', video_bytes=data))
    assert np.array_equal(a['imgs'], b['imgs'])
    assert np.array_equal(a['audio'], b['audio'])
    assert 'video_bytes' not in b


# --------------------------------------------------------------- sampling
def test_sampling_modes():
    res = dict(duration=20.0, usable_start=0.5)
    uni = AVSampleClips(num_clips=10, clip_duration=2.0, mode='uniform')
    out = uni(dict(res))
    assert np.allclose(out['clip_starts'], 0.5 + np.linspace(0, 18, 10))
    cen = AVSampleClips(num_clips=4, clip_duration=1.0, stride=2.0,
                        frames_per_clip=4, mode='center')
    out = cen(dict(res))
    # span 7 s centred in 20 s starting at 0.5
    assert np.allclose(out['clip_starts'], 0.5 + 6.5 + np.array([0, 2, 4,
                                                                 6]))
    assert out['frame_times'].shape == (4, 4)
    assert np.allclose(out['frame_times'][0],
                       out['clip_starts'][0] + (np.arange(4) + 0.5) / 4)
    np.random.seed(0)
    jit = AVSampleClips(num_clips=20, clip_duration=1.0, mode='random',
                        jitter=0.4)
    for _ in range(20):
        s = jit(dict(res))['clip_starts']
        assert s.min() >= 0.5 - 1e-9 and s.max() <= 0.5 + 19.0 + 1e-9
    with pytest.raises(ValueError):
        AVSampleClips(mode='sideways')


# ------------------------------------------------------------- transforms
def test_logmel_frame_counts():
    assert frames_for_samples(16000, 73, 1024) == 220
    assert frames_for_samples(32000, 73, 1024) == 439
    assert samples_for_frames(440, 73, 1024) == 32047
    assert frames_for_samples(32047, 73, 1024) == 440
    from avtoolkit.datasets.transforms import LogMelSpectrogram
    one = LogMelSpectrogram(num_frames=220)
    out = one(dict(audio=np.zeros((3, 16000), np.float32),
                   sample_rate=16000))
    assert out['audio'].shape == (3, 1, 128, 220)
    assert torch.allclose(out['audio'], torch.tensor(np.log(1e-6),
                                                     dtype=torch.float32))
    two = LogMelSpectrogram(num_frames=440)
    rng = np.random.default_rng(0)
    assert two(dict(audio=rng.standard_normal((2, 32047)).astype(
        np.float32)))['audio'].shape == (2, 1, 128, 440)
    with pytest.raises(ValueError, match='audio_samples=32047'):
        two(dict(audio=np.zeros((2, 32000), np.float32)))
    with pytest.raises(ValueError, match='16000 Hz'):
        one(dict(audio=np.zeros((1, 16000), np.float32), sample_rate=22050))


def test_audio_mask_and_normalize():
    from avtoolkit.datasets.transforms import AudioMask, AudioNormalize
    x = torch.randn(6, 1, 128, 220) * 3 + 5
    norm = AudioNormalize(mean=5.0, std=3.0)(dict(audio=x.clone()))['audio']
    assert torch.allclose(norm, (x - 5) / 3)
    inst = AudioNormalize(mode='per_sample')(dict(audio=x.clone()))['audio']
    assert abs(inst.mean()) < 1e-4 and abs(inst.std() - 1) < 1e-3
    torch.manual_seed(0)
    np.random.seed(0)
    out = AudioMask(freq_mask_param=20, time_mask_param=30,
                    prob=1.0, mask_value=-99.0)(dict(audio=norm.clone()))
    masked = out['audio'] == -99.0
    assert out['audio_masked'] and out['audio'].shape == norm.shape
    per_clip = masked.flatten(1).sum(1)
    assert (per_clip > 0).all()
    # clips get their own masks
    assert len({tuple(m[0].all(1).tolist()) for m in masked}) > 1
    keep = AudioMask(prob=0.0)(dict(audio=norm.clone()))
    assert torch.equal(keep['audio'], norm) and not keep['audio_masked']


def test_flip_with_duplicated_frames(markers):
    """A 16 fps video sampled at 32 frames/s repeats frames; each repeated
    slot must own its memory or the in-place Flip would undo itself."""
    path = markers['wide_320x240']['path']
    base = [AVInit(), AVSampleClips(num_clips=2, frames_per_clip=32,
                                    mode='center'), AVDecode(short_side=64)]
    plain = run(base, dict(filename=path))['imgs'].copy()
    assert (plain[0::2] == plain[1::2]).all()  # duplicated content
    flipped = Compose(
        base + [dict(type='Flip', flip_ratio=1.0)])(dict(filename=path))
    assert flipped['flip']
    assert np.array_equal(np.stack(flipped['imgs']), plain[:, :, ::-1])


def test_three_crop_views(markers):
    path = markers['wide_320x240']['path']
    pipe = Compose([
        dict(type='AVInit'),
        dict(type='AVSampleClips', num_clips=3, clip_duration=1.0,
             frames_per_clip=8, mode='uniform'),
        dict(type='AVDecode', short_side=128),
        dict(type='ThreeCrop', crop_size=128),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='LogMelSpectrogram'),
        dict(type='PackAVInputs'),
    ])
    out = pipe(dict(filename=path))
    video = out['inputs']['video']
    assert video.shape == (3, 3, 3, 8, 128, 128) and video.dtype == torch.uint8
    assert out['inputs']['audio'].shape == (3, 1, 128, 220)
    meta = out['data_samples'].metainfo
    assert meta['num_views'] == 3
    # 320x240 -> 170x128; left, right, middle crops
    assert [b[0] for b in meta['crop_bbox']] == [0, 42, 21]


def test_pack_collate_and_preprocess(markers):
    path = markers['mp4_16fps_16k_mono']['path']
    pipe = Compose([
        dict(type='AVInit'),
        dict(type='AVSampleClips', num_clips=3, frames_per_clip=8),
        dict(type='AVDecode', short_side=64),
        dict(type='RandomCrop', size=56),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='LogMelSpectrogram'),
        dict(type='PackAVInputs'),
    ])
    samples = [pipe(dict(filename=path, label=i)) for i in range(2)]
    batch = pseudo_collate(samples)
    assert [v.shape for v in batch['inputs']['video']] == [(3, 3, 8, 56,
                                                            56)] * 2
    stacked = default_collate(samples)
    assert stacked['inputs']['video'].shape == (2, 3, 3, 8, 56, 56)
    assert stacked['inputs']['audio'].shape == (2, 3, 1, 128, 220)
    assert len(stacked['data_samples']) == 2
    # uint8 video normalised by the data preprocessor on the device
    from avtoolkit.registry import MODELS
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    pre = MODELS.build(dict(type='AVDataPreprocessor', video_mean=mean,
                            video_std=std))
    ref = (batch['inputs']['video'][1].float() - torch.tensor(mean).view(
        3, 1, 1, 1)) / torch.tensor(std).view(3, 1, 1, 1)
    for collated in (batch, stacked):
        out = pre(collated)
        v = out['inputs']['video']
        assert v.shape == (2, 3, 3, 8, 56, 56) and v.dtype == torch.float32
        assert torch.allclose(v[1], ref, atol=1e-5)
        assert out['inputs']['audio'].shape == (2, 3, 1, 128, 220)


def test_transforms_registered():
    from avtoolkit.registry import TRANSFORMS
    for name in ('AVInit', 'AVSampleClips', 'AVDecode', 'LogMelSpectrogram',
                 'AudioNormalize', 'AudioMask', 'VideoNormalize',
                 'PackAVInputs', 'RandomCrop', 'Flip', 'ThreeCrop',
                 'FormatShape'):
        assert TRANSFORMS.get(name) is not None, name
    with pytest.raises(ValueError):
        AVDecode(interpolation='SMOOTH')
