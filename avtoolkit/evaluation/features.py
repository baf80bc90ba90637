"""Fixed-length features of a clip sequence, pooled from :class:`AVOutputs`.

Names usable wherever a feature is chosen (probes, feature extraction):

* ``x_mean``: CNN embeddings averaged over the clips, visual and audio
  concatenated (the "CNN only" representation);
* ``y_summary``: BOS outputs of the visual and audio Transformers;
* ``y_mean``: unimodal Transformer outputs averaged over the clips;
* ``z_summary``: the two BOS outputs of the multimodal Transformer;
* ``z_mean``: multimodal outputs averaged over the clips (BOS excluded).

Modalities absent from the outputs are left out of the concatenation.
Every feature is ``(B, C)``.
"""
from typing import List

import torch
from torch import Tensor

from avtoolkit.models.structures import AVOutputs

FEATURES = ('x_mean', 'y_summary', 'y_mean', 'z_summary', 'z_mean')


def pool_features(out: AVOutputs, name: str) -> Tensor:
    """The feature ``name`` (see the module docstring) as ``(B, C)``."""
    parts: List[Tensor] = []
    if name == 'x_mean':
        parts = [x.mean(1) for x in (out.x_v, out.x_a) if x is not None]
    elif name in ('y_summary', 'y_mean'):
        for y in (out.y_v, out.y_a):
            if y is not None:
                parts.append(y[:, 0] if name == 'y_summary' else
                             y[:, 1:].mean(1))
    elif name in ('z_summary', 'z_mean'):
        for modality in out.z_modalities:
            half = out.z_v if modality == 'visual' else out.z_a
            if half is not None:
                parts.append(half[:, 0] if name == 'z_summary' else
                             half[:, 1:].mean(1))
    else:
        raise KeyError(f'unknown feature "{name}"; choose from {FEATURES}')
    if not parts:
        raise ValueError(f'the model outputs hold nothing for "{name}" '
                         '(e.g. z features of a late-fusion model)')
    return torch.cat(parts, dim=1)
