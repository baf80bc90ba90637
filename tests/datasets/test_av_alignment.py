"""Sound and picture of every clip come from the same time span, on files
with the defects of real videos: holes in the audio timestamps, audio that
starts before the video, variable frame rate, a video shorter than the
clips (loop mode), and a real Xvid AVI with packed B-frames.

The generated files carry a white flash frame and a 1 kHz burst at the same
absolute instants (``av_test_media``).  For every clip the flash times (from
the frames) and the burst onsets (from the audio window) are compared with
the known event times and with each other.
"""
import os.path as osp

import av
import numpy as np
import pytest

from av_test_media import burst_onsets, flash_frames, write_marker_video

from avtoolkit.datasets.bad_input import BadInputError
from avtoolkit.datasets.io import MediaReader
from avtoolkit.datasets.io.frame_conversion import frame_to_rgb
from avtoolkit.datasets.transforms import AVDecode, AVInit, AVSampleClips

REAL = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__))))), 'shared', 'data', 'real')
REAL_AVI = osp.join(REAL, 'mmaction2_test.avi')
FPS = 16
SR = 16000
# An onset is found on a 2-ms envelope grid; AAC smears it by a little more.
ONSET_TOL = 0.005


def events_every_second(until, phase=0.3):
    return tuple(np.arange(phase, until, 1.0))


@pytest.fixture(scope='module')
def media(tmp_path_factory):
    """The generated files, written once for the module."""
    root = tmp_path_factory.mktemp('alignment')
    files = {}
    files['hole'] = write_marker_video(
        str(root / 'hole.mp4'), duration=35.0, fps=FPS,
        events=events_every_second(35), audio_holes=[(10.0, 0.06)])
    files['big_hole'] = write_marker_video(
        str(root / 'big_hole.mp4'), duration=8.0, fps=FPS,
        events=events_every_second(8), audio_holes=[(4.0, 0.5)])
    files['early_audio'] = write_marker_video(
        str(root / 'early_audio.mp4'), duration=12.3, fps=FPS,
        video_start=0.5, audio_span=(0.0, 12.8),
        events=events_every_second(12.8))
    files['vfr'] = write_marker_video(
        str(root / 'vfr.mkv'), duration=14.0, fps=FPS, vfr=True,
        events=events_every_second(14))
    return files


def run_pipeline(info, seed, **clips):
    """AVInit -> AVSampleClips -> AVDecode on one file; 16 frames per 1-s
    clip, so that every frame of the 16-fps source is sampled once."""
    np.random.seed(seed)
    results = dict(filename=info['path'])
    clip_args = dict(num_clips=10, clip_duration=1.0, frames_per_clip=FPS,
                     mode='random')
    clip_args.update(clips)
    for t in (AVInit(), AVSampleClips(**clip_args), AVDecode()):
        results = t(results)
    return results


def clip_lags(results, info):
    """For every clip, the audio onset minus the flash time of each event
    seen in both streams (seconds); checks on the way that every flash and
    every onset sits at a true event time.

    Times are seconds from the video start (the reader's origin), wrapped
    into the usable span in loop mode.
    """
    origin = info['video_start']
    events = np.asarray(info['events']) - origin
    period = results['loop_period']
    lo = results['usable_start']

    def wrap(t):
        return t if period is None else lo + np.mod(t - lo, period)

    T, F = results['frame_times'].shape
    frame_period = info['max_frame_period']
    lags, seen = [], 0
    for t in range(T):
        imgs = results['imgs'][t * F:(t + 1) * F]
        flashes = wrap(results['frame_times'][t][flash_frames(imgs)])
        onsets = wrap(results['audio_starts'][t] + np.asarray(
            burst_onsets(results['audio'][t], results['sample_rate'])))
        for f in flashes:  # the frame on screen shows the event
            d = f - events
            assert np.any((d >= -1e-6) & (d < frame_period + 1e-6)), \
                (t, f, 'flash at no event time')
        for o in onsets:  # the audio has the burst at its true time
            assert np.min(np.abs(o - events)) <= ONSET_TOL, \
                (t, o, 'burst at no event time')
        for f in flashes:
            near = [o for o in onsets if abs(o - f) <= 2 * frame_period]
            if near:
                lags.append(min(near, key=lambda o: abs(o - f)) - f)
                seen += 1
    return np.asarray(lags), seen


def assert_aligned(results, info, min_events):
    lags, seen = clip_lags(results, info)
    assert seen >= min_events, (seen, 'too few events seen in both streams')
    # The flash frame starts at the event; the burst starts with it.
    assert np.all(np.abs(lags) <= info['max_frame_period'] + 1e-6), lags


def records(results, reason):
    return [r for r in results.get('bad_inputs', []) if r['reason'] == reason]


# ------------------------------------------------------ holes in the audio
def test_a_window_reads_the_same_alone_and_after_a_hole(media):
    """The window at 12 s is the same whether its decoding run starts at
    12 s or at 9 s, before the 60-ms hole (it used to come 60 ms early)."""
    info = media['hole']
    alone = MediaReader(info['path']).read_audio([12.0], SR, SR)[0]
    reader = MediaReader(info['path'])
    three = reader.read_audio([9.0, 10.5, 12.0], SR, SR)
    np.testing.assert_array_equal(three[2], alone)
    (start, length), = reader.audio_gaps
    assert start == pytest.approx(info['holes'][0][0], abs=1e-3)
    assert length == pytest.approx(0.06, abs=1e-3)
    # the burst of the event at 12.25 s is where it belongs in both
    assert burst_onsets(alone, SR)[0] == pytest.approx(0.25, abs=ONSET_TOL)


@pytest.mark.parametrize('seed', range(4))
def test_clips_stay_aligned_across_an_audio_hole(media, seed):
    """30 clips of a 35-s file with a 60-ms hole at 10 s: every clip is
    aligned (23 of 30 lagged by 60-65 ms before), and the silence filled
    into the window that holds the hole is counted."""
    info = media['hole']
    results = run_pipeline(info, seed, num_clips=30)
    assert_aligned(results, info, min_events=25)
    filled, = records(results, 'audio_filled')
    assert filled['source'] == info['path']
    assert '0.060s' in filled['detail'] and '1 audio window' in filled['detail']


def test_a_hole_longer_than_max_audio_gap_skips_the_sample(media):
    info = media['big_hole']
    with pytest.raises(BadInputError) as e:
        run_pipeline(info, 0, num_clips=6)  # the clips cover the hole
    assert e.value.reason == 'audio_gap'
    assert 'max_audio_gap' in str(e.value) and info['path'] in str(e.value)
    # without a limit the hole is silence at its place, and counted
    np.random.seed(0)
    results = dict(filename=info['path'])
    for t in (AVInit(), AVSampleClips(num_clips=6, clip_duration=1.0,
                                      frames_per_clip=FPS),
              AVDecode(max_audio_gap=None)):
        results = t(results)
    assert records(results, 'audio_filled')
    assert_aligned(results, info, min_events=4)
    hole_start = info['holes'][0][0]
    k = int(np.searchsorted(results['audio_starts'], hole_start) - 1)
    first = int(round((hole_start + 0.01 - results['audio_starts'][k]) * SR))
    assert np.all(results['audio'][k][first:first + 4000] == 0)


def test_overlapping_audio_frames_are_trimmed(tmp_path):
    """Audio packets whose timestamps go back (an overlap) are cut, not
    appended: the later samples keep their times."""
    path = str(tmp_path / 'overlap.mkv')
    src = write_marker_video(str(tmp_path / 'src.mp4'), duration=6.0,
                             events=events_every_second(6))
    # Copy the streams, moving the audio packets after 3 s back by 40 ms:
    # 40 ms of audio then overlap the packets before them.
    with av.open(src['path']) as inp, av.open(path, 'w') as out:
        streams = {s.index: out.add_stream_from_template(s)
                   for s in inp.streams}
        a_index = inp.streams.audio[0].index
        for packet in inp.demux():
            if packet.dts is None:
                continue
            stream = streams[packet.stream.index]
            if packet.stream.index == a_index and \
                    packet.pts * packet.time_base >= 3:
                shift = int(round(0.04 / packet.time_base))
                packet.pts -= shift
                packet.dts -= shift
            packet.stream = stream
            out.mux(packet)
    late = MediaReader(path).read_audio([4.0], SR, SR)[0]
    # The burst of the event at 4.25 s comes 40 ms early in the packets
    # moved back; the overlap is trimmed instead of pushing them later.
    event = [e for e in src['events'] if 4.0 < e < 5.0][0]
    onset = burst_onsets(late, SR)[0]
    assert onset == pytest.approx(event - 4.0 - 0.04, abs=ONSET_TOL)
    reader = MediaReader(path)
    run = reader.read_audio([1.0, 2.5, 4.0], SR, SR)[2]
    np.testing.assert_array_equal(run, late)
    assert reader.audio_gaps == []


# ------------------------------------------------- offsets, VFR, loop mode
@pytest.mark.parametrize('seed', range(3))
def test_audio_starting_before_the_video(media, seed):
    """Audio from 0 s, video from 0.5 s: clip times count from the video
    start, and each clip's audio is cut from the same span."""
    info = media['early_audio']
    results = run_pipeline(info, seed, num_clips=10)
    assert results['usable_start'] == pytest.approx(0.0, abs=1e-3)
    assert_aligned(results, info, min_events=8)


@pytest.mark.parametrize('seed', range(3))
def test_variable_frame_rate(media, seed):
    info = media['vfr']
    results = run_pipeline(info, seed, num_clips=12)
    assert_aligned(results, info, min_events=6)


def test_loop_mode_wraps_audio_at_the_usable_start(media):
    """12.3 s of video from 0.5 s, audio from 0 s to 12.8 s, 30 centred
    clips with short_policy='loop' (the evaluation pipelines): audio near
    every wrap comes from the start of the video, never from the half
    second of audio before it, and the period is the usable span."""
    info = media['early_audio']
    results = run_pipeline(info, 0, num_clips=30, mode='center',
                           short_policy='loop')
    assert results['loop_period'] == pytest.approx(12.3, abs=0.02)
    assert_aligned(results, info, min_events=25)
    # The burst at 0.3 s lies before the video (-0.2 s from its start): it
    # never plays, so every burst heard is at an event of the video.
    sr, period, lo = results['sample_rate'], results['loop_period'], \
        results['usable_start']
    assert info['events'][0] == pytest.approx(0.3)
    # A window of the second cycle is the window one period earlier; the
    # part of a window after a wrap is the audio from the usable start.
    a, n = results['audio_starts'], results['audio'].shape[1]
    reader = MediaReader(info['path'])
    j = int(np.argmax(a > lo + period))
    np.testing.assert_allclose(
        results['audio'][j], reader.read_audio([a[j] - period], n, sr)[0],
        atol=1e-6)
    k = j - 1  # crosses the wrap
    after = int(round((a[k] + n / sr - (lo + period)) * sr))
    assert 0 < after < n
    np.testing.assert_allclose(results['audio'][k][n - after:],
                               reader.read_audio([lo], after, sr)[0],
                               atol=1e-6)


# -------------------------------------------------------------- real files
def need_real():
    if not osp.isfile(REAL_AVI):
        pytest.skip(f'real media not found at {REAL} (shared/ beside the '
                    'checkout)')


def test_real_avi_audio_windows_follow_their_timestamps():
    """MP3 in AVI at its own rate (no resampling): every window equals the
    samples an independent decode places by frame timestamps."""
    need_real()
    container = av.open(REAL_AVI)
    stream = container.streams.audio[0]
    sr = stream.codec_context.sample_rate
    origin = float(container.streams.video[0].start_time *
                   container.streams.video[0].time_base)
    timeline = np.zeros(int(8 * sr), np.float32)
    end = 0
    for frame in container.decode(stream):
        mono = frame.to_ndarray().reshape(frame.layout.nb_channels
                                          if frame.format.is_planar else 1,
                                          -1)
        if not frame.format.is_planar:
            mono = mono.reshape(-1, frame.layout.nb_channels).T
        mono = mono.astype(np.float32).mean(axis=0)
        at = int(round((float(frame.time) - origin) * sr))
        timeline[at:at + len(mono)] = mono
        end = max(end, at + len(mono))
    container.close()
    reader = MediaReader(REAL_AVI)
    starts = [0.5, 2.0, 2.7, 5.0]
    got = reader.read_audio(starts, sr // 2, sr)
    for s, window in zip(starts, got):
        first = int(round(s * sr))
        np.testing.assert_allclose(window, timeline[first:first + sr // 2],
                                   atol=1e-5)
    assert reader.audio_gaps == []


def test_real_avi_frames_after_a_seek_are_timed_by_slot():
    """Xvid with packed B-frames: the decoder's pts run backwards, so each
    frame is timed by its slot (dts).  A frame read right after a seek is
    the one an independent sequential decode puts in that slot (the slot
    after a seek used to show the previous frame)."""
    need_real()
    container = av.open(REAL_AVI)
    vs = container.streams.video[0]
    tb = float(vs.time_base)
    slots = {}
    for frame in container.decode(vs):
        if frame.dts is None:  # the flushed last frame
            continue
        slots[int(round(frame.dts * tb * 25))] = frame_to_rgb(
            frame, vs.codec_context.width, vs.codec_context.height,
            'BILINEAR')
    container.close()
    # each slot's time plus a quarter period, read one at a time (a seek
    # each) and all in one decoding run
    keys = sorted(slots)[1:]
    times = [(k + 0.25) / 25 for k in keys]
    run = MediaReader(REAL_AVI, need_audio=False).read_frames(
        times, seek_gap=100.0)
    for k, t, from_run in zip(keys, times, run):
        np.testing.assert_array_equal(from_run, slots[k], err_msg=f'slot {k}')
    for k, t in list(zip(keys, times))[::5]:
        alone = MediaReader(REAL_AVI, need_audio=False).read_frames([t])[0]
        np.testing.assert_array_equal(alone, slots[k], err_msg=f'slot {k}')
