"""Packing of decoded clips into model inputs and a data sample.

Output of :class:`PackAVInputs` for one video (T clips, F frames per clip,
V spatial views)::

    {'inputs': {'video': (T, C, F, H, W)        if V == 1
                         (V, T, C, F, H, W)     if V > 1 (e.g. ThreeCrop)
                'audio': (T, 1, n_mels, frames)},
     'data_samples': ActionDataSample(gt_labels=..., metainfo=...)}

Only the modalities the pipeline decoded appear in ``inputs``.  Tensors keep
the dtype the pipeline produced (float32 after ``VideoNormalize`` /
``LogMelSpectrogram``; uint8 video if normalisation is left to a data
preprocessor).

Collation: mmengine's ``pseudo_collate`` turns a list of such samples into
``{'inputs': {'video': [tensor, ...], 'audio': [tensor, ...]},
'data_samples': [ActionDataSample, ...]}``, and ``default_collate`` into
``{'inputs': {'video': (B, T, C, F, H, W), 'audio': (B, T, 1, n_mels,
frames)}, 'data_samples': [...]}``.  Both need samples of equal shapes, which
fixed T, F and crop sizes guarantee.
"""
from typing import Dict, Sequence

import numpy as np
import torch
from mmaction.structures import ActionDataSample
from mmcv.transforms import BaseTransform

from avtoolkit.registry import TRANSFORMS
from ..bad_input import META_KEY

DEFAULT_META_KEYS = ('filename', 'sample_idx', 'clip_starts', 'clip_ends',
                     'clip_duration', 'num_clips', 'num_views', 'fps',
                     'duration', 'sample_rate', 'looped', 'flip',
                     'crop_bbox', 'audio_masked', 'img_shape')


def _to_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.contiguous()
    return torch.from_numpy(np.ascontiguousarray(x))


def _plain(value):
    """Numpy values as plain Python numbers / lists (JSON-friendly meta)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@TRANSFORMS.register_module()
class PackAVInputs(BaseTransform):
    """Pack ``imgs`` / ``audio`` into ``inputs`` and metadata into an
    ``ActionDataSample``.

    Required keys: ``imgs`` as (V*T, C, F, H, W) from
    ``FormatShape('NCTHW')`` and ``num_clips`` (T), and/or ``audio`` as
    (T, 1, n_mels, frames) from :class:`LogMelSpectrogram` (or (T, N)
    waveforms from :class:`AVDecode`, for a data preprocessor that computes
    the log-mel on the device); optional ``label``.

    The metainfo gets ``clip_starts`` / ``clip_ends`` (seconds from the
    start of the video stream, one per clip), ``num_views``, the ``meta_keys``
    present in ``results`` and always ``bad_inputs``: the records of
    policy decisions about this input (e.g. ``looped``), to which the
    dataset adds the records of the inputs it skipped before it.

    Args:
        meta_keys: keys of ``results`` copied into the metainfo when present.
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: Dict) -> Dict:
        inputs = {}
        num_views = 1
        if 'imgs' in results:
            imgs = results['imgs']
            if isinstance(imgs, list) or getattr(imgs, 'ndim', 0) != 5:
                raise ValueError(
                    'PackAVInputs expects imgs in the (V*T, C, F, H, W) '
                    'layout; put FormatShape(input_format="NCTHW") before it')
            T = int(results['num_clips'])
            if imgs.shape[0] % T:
                raise ValueError(f'{imgs.shape[0]} clip stacks are not a '
                                 f'multiple of num_clips={T}')
            num_views = imgs.shape[0] // T
            video = _to_tensor(imgs)
            if num_views > 1:
                video = video.reshape((num_views, T) + tuple(video.shape[1:]))
            inputs['video'] = video
        if 'audio' in results:
            audio = _to_tensor(results['audio'])
            if audio.ndim not in (2, 4):
                raise ValueError(
                    'PackAVInputs expects audio as (T, 1, n_mels, frames) '
                    '(after LogMelSpectrogram), or as (T, N) waveforms for '
                    'a data preprocessor with audio_features; got '
                    f'{tuple(audio.shape)}')
            inputs['audio'] = audio
        if not inputs:
            raise ValueError('PackAVInputs found neither "imgs" nor "audio"')

        if 'clip_starts' in results and 'clip_duration' in results:
            starts = np.asarray(results['clip_starts'], dtype=np.float64)
            results['clip_ends'] = starts + float(results['clip_duration'])
        results['num_views'] = num_views
        box = results.get('crop_bbox')
        if isinstance(box, np.ndarray) and box.ndim == 2:
            # ThreeCrop stores one box per frame: keep one per view.
            _, first = np.unique(box, axis=0, return_index=True)
            results['crop_bbox'] = box[np.sort(first)]

        data_sample = ActionDataSample()
        if results.get('label') is not None:
            data_sample.set_gt_labels(results['label'])
        meta = {k: _plain(results[k]) for k in self.meta_keys if k in results}
        # Reported decisions about this input (e.g. a looped short video)
        # always travel with the sample, whatever ``meta_keys`` says.
        meta[META_KEY] = list(results.get(META_KEY) or [])
        data_sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self):
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
