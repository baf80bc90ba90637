"""Log-mel on the model's device: ``AVDataPreprocessor(audio_features=...)``
computes, batched, the features ``LogMelSpectrogram`` + ``AudioNormalize``
compute in the data pipeline."""
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose, pseudo_collate

from av_test_media import write_marker_video

from avtoolkit.utils import register_all_modules

register_all_modules()

MEL = dict(sample_rate=16000, n_mels=64, n_fft=512, win_length=400,
           hop_length=160, num_frames=101)
HEAD = [dict(type='AVInit', modalities=('audio', )),
        dict(type='AVSampleClips', num_clips=3, clip_duration=1.0,
             frames_per_clip=0, mode='random'),
        dict(type='AVDecode', sample_rate=16000)]
PACK = [dict(type='PackAVInputs')]


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp('device_log_mel')
    return [write_marker_video(str(root / f'v{i}.mp4'), duration=4.0,
                               seed=i)['path'] for i in range(2)]


def batch(videos, pipeline, seed=0):
    compose = Compose(pipeline)
    np.random.seed(seed)
    return pseudo_collate([compose(dict(filename=v)) for v in videos])


def test_device_log_mel_equals_the_pipeline(videos):
    from avtoolkit.models.data_preprocessors import AVDataPreprocessor
    in_pipeline = batch(videos, HEAD + [
        dict(type='LogMelSpectrogram', **MEL),
        dict(type='AudioNormalize', mean=-4.0, std=4.0)] + PACK)
    waves = batch(videos, HEAD + PACK)
    assert waves['inputs']['audio'][0].shape == (3, 16000)
    host = AVDataPreprocessor(audio_mean=None, audio_std=None)(in_pipeline)
    device = AVDataPreprocessor(audio_mean=-4.0, audio_std=4.0,
                                audio_features=MEL)(waves)
    a, b = host['inputs']['audio'], device['inputs']['audio']
    assert a.shape == b.shape == (2, 3, 1, 64, 101)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-4)
    # the same clips: the metadata of both batches agree
    assert [s.clip_starts for s in host['data_samples']] == \
        [s.clip_starts for s in device['data_samples']]


def test_device_log_mel_errors_name_the_option(videos):
    from avtoolkit.models.data_preprocessors import AVDataPreprocessor
    waves = batch(videos, HEAD + PACK)
    with pytest.raises(ValueError, match='audio_features'):
        AVDataPreprocessor()(waves)
    mels = batch(videos, HEAD + [dict(type='LogMelSpectrogram', **MEL)] +
                 PACK)
    with pytest.raises(ValueError, match='remove LogMelSpectrogram'):
        AVDataPreprocessor(audio_features=MEL)(mels)
    with pytest.raises(ValueError, match='num_frames is 220'):
        AVDataPreprocessor(audio_features=dict(MEL, num_frames=220))(waves)


def test_device_log_mel_config_matches_the_host_recipe():
    """The ablation config ships waveforms and computes on the device the
    log-mel of the paper recipe, with its statistics."""
    import os.path as osp

    from mmengine.config import Config

    from avtoolkit.registry import MODELS
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    host = Config.fromfile(osp.join(repo, 'configs', 'pretrain',
                                    'k700_mid_part.py'))
    dev = Config.fromfile(osp.join(repo, 'configs', 'pretrain', 'ablations',
                                   'k700_mid_part_device_logmel.py'))
    assert dev.train_dataloader.dataset.pipeline.audio == []
    steps = {s['type']: s for s in host.train_dataloader.dataset.pipeline.audio}
    mel = dict(steps['LogMelSpectrogram'])
    mel.pop('type')
    pre = dev.model.data_preprocessor
    assert pre.audio_features == mel
    assert (pre.audio_mean, pre.audio_std) == (
        steps['AudioNormalize']['mean'], steps['AudioNormalize']['std'])
    model = MODELS.build(dev.model)
    assert model.data_preprocessor.log_mel.n_mels == 128


def test_device_log_mel_adds_nothing_to_checkpoints():
    """The window and the filterbank are derived from the config: a model
    computing the log-mel on the device saves and loads the same weights
    as the host-log-mel model."""
    from avtoolkit.models.data_preprocessors import AVDataPreprocessor
    assert AVDataPreprocessor(audio_features=MEL).state_dict() == {}
    assert list(AVDataPreprocessor(audio_features=MEL).buffers())
