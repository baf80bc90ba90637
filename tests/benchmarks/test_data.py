"""The data-loading benchmark on tiny settings, and its video generator."""
import os

import av
import numpy as np
import pytest

from avtoolkit.benchmarks import data as data_bench
from avtoolkit.benchmarks.data import (WholeVideoDecode, format_summary,
                                       generate_videos, run_benchmark)
from avtoolkit.datasets.io import MediaReader
from avtoolkit.datasets.transforms import AVDecode, AVInit, AVSampleClips


def test_benchmark_smoke(tmp_path):
    """The data benchmark runs end to end on a tiny setting, and its
    whole-video baseline picks the same frames and audio as AVDecode."""
    summary = run_benchmark(num_videos=1, duration=31.0, width=96,
                            height=64, fps=16, sample_rate=22050, rounds=1,
                            work_dir=str(tmp_path), verbose=False)
    for name in ('shards', 'raw_segments', 'raw_whole'):
        res = summary['results'][name]
        assert res['output_shapes'] == {'video': [30, 3, 32, 112, 112],
                                        'audio': [30, 1, 128, 220]}
        assert res['cpu_s_per_sample'] > 0
    assert 'vs (c)' in format_summary(summary)

    path = generate_videos(str(tmp_path / 'videos'), 1)[0]  # reused file
    np.random.seed(0)
    res = {'filename': path}
    for t in (AVInit(), AVSampleClips(num_clips=3, frames_per_clip=8)):
        res = t(res)
    res.pop('av_reader').close()
    whole = WholeVideoDecode(16000)(dict(res))
    res['av_reader'] = MediaReader(path)
    seg = AVDecode(sample_rate=16000)(res)
    assert whole['imgs'].shape == seg['imgs'].shape
    assert np.abs(whole['imgs'].astype(int) - seg['imgs']).mean() < 2.0
    assert np.corrcoef(whole['audio'].ravel(), seg['audio'].ravel())[0,
                                                                     1] > 0.9


def test_generated_video_has_the_requested_streams(tmp_path):
    path, = generate_videos(str(tmp_path), 1, duration=2.0, width=64,
                            height=48, fps=8, sample_rate=16000)
    assert os.listdir(tmp_path) == ['video_00.mp4']  # no temporary file
    with av.open(path) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.width, video.height) == (64, 48)
        assert video.average_rate == 8
        assert audio.sample_rate == 16000 and audio.channels == 2
        frames = list(container.decode(video))
    assert len(frames) == 16
    # x264's default key-frame interval: one key frame in 2 s without cuts.
    assert sum(f.key_frame for f in frames) == 1


def test_an_interrupted_video_leaves_no_file(tmp_path, monkeypatch):
    def fail(path, *args):
        with open(path, 'wb') as f:
            f.write(b'half a video')
        raise KeyboardInterrupt

    monkeypatch.setattr(data_bench, '_encode', fail)
    with pytest.raises(KeyboardInterrupt):
        generate_videos(str(tmp_path), 1, duration=1.0, width=64, height=48,
                        fps=8, sample_rate=16000)
    assert os.listdir(tmp_path) == []
