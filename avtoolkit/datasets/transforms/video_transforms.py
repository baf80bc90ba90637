"""Video normalisation for stacks of frames.

Scaling happens while decoding (``AVDecode(short_side=...)``), and cropping,
flipping and the three test crops are mmaction2's transforms, which already
treat ``results['imgs']`` -- (T*F, H, W, 3), clip-major -- as one stack and
apply the same crop or flip to every frame:

* ``RandomCrop(size=112)``: one random 112x112 window for all frames;
* ``Flip(flip_ratio=0.5)``: horizontal flip of all frames (in place; every
  frame row owns its memory, see :meth:`MediaReader.read_frames`);
* ``ThreeCrop(crop_size=128)``: three equidistant 128x128 crops along the long
  side (left, right, middle), giving ``3 * T * F`` frames, view-major;
* ``FormatShape(input_format='NCTHW')``: (V*T, C, F, H, W).

Only the normalisation is missing there (mmaction2 normalises in its data
preprocessor); :class:`VideoNormalize` does it in the pipeline for models
that take float inputs straight from the loader.
"""
from typing import Dict, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from avtoolkit.registry import TRANSFORMS


@TRANSFORMS.register_module()
class VideoNormalize(BaseTransform):
    """``(imgs - mean) / std`` per channel, as float32.

    Works on ``results['imgs']`` before ``FormatShape`` (frames last-axis
    RGB: a list of (H, W, 3) arrays or an (N, H, W, 3) array) and returns an
    (N, H, W, 3) float32 array.

    Args:
        mean, std: per-channel values on the 0-255 scale (RGB order).
    """

    def __init__(self, mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375)):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape or self.mean.size not in (1, 3):
            raise ValueError('mean and std must both have 1 or 3 values')
        if (self.std <= 0).any():
            raise ValueError(f'std must be positive, got {std}')

    def transform(self, results: Dict) -> Dict:
        imgs = results['imgs']
        if not isinstance(imgs, np.ndarray):
            imgs = np.stack(imgs)
        if imgs.ndim != 4 or imgs.shape[-1] != 3:
            raise ValueError('VideoNormalize expects (N, H, W, 3) frames, '
                             f'got {imgs.shape}')
        out = imgs.astype(np.float32)  # a new array: safe to work in place
        out -= self.mean
        out *= 1.0 / self.std
        results['imgs'] = out
        results['img_norm_cfg'] = dict(mean=self.mean.tolist(),
                                       std=self.std.tolist())
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(mean={self.mean.tolist()}, '
                f'std={self.std.tolist()})')
