"""Typed outputs of the audio-visual encoder; the one owner of their layout.

:class:`AVOutputs` is a plain dataclass of tensors (and one tuple of
strings), so it passes through ``torch.compile`` and
``DistributedDataParallel`` (which looks for tensors inside dataclasses to find
the parameters that took part in the forward pass).  Every field is an
``__init__`` argument, as ``dataclasses.replace`` (used by DDP and
:meth:`AVOutputs.apply`) requires.

Shapes, with B the batch size, T the number of clips and D the model width:

* ``x_v``, ``x_a``: (B, T, D) clip embeddings from the CNNs, before masking.
* ``y_v``, ``y_a``: (B, T+1, D) outputs of the visual / audio Transformer;
  index 0 is the BOS (summary) output, index t the output of clip t.
* ``z``: (B, H*(T+1), D) output of the multimodal Transformer, the halves in
  the order of ``z_modalities`` (H of them): normally the visual half (BOS
  at 0) then the audio half (BOS at T+1), i.e. (B, 2T+2, D).
* ``mask``: (B, T) bool, True where the clip input was replaced by the mask
  embedding (the same clips in both modalities).
* ``padding_mask``: (B, T) bool, True where a clip is padding.
* ``z_mismatched``: (B, 2T+2, D) multimodal output on mismatched pairs, the
  visual half of video b with the audio half of video ``perm[b]`` (only when
  the neck is called with ``mismatch_perm``; used by correct pair prediction),
  laid out like ``z``.

Code outside this module reads ``z`` through the helpers (``z_v``, ``z_a``,
``z_clips``, ``mismatched``, ``summary_multimodal``), never by slicing.

Fixed-length features pooled from the outputs (:data:`POOLED_FEATURES`, each
``(B, C)``, modalities absent from the outputs left out of the
concatenation), used by the classifiers, the probes and feature extraction:

* ``x_mean``: CNN embeddings averaged over the clips, visual and audio
  concatenated (the "CNN only" representation);
* ``y_summary``: BOS outputs of the visual and audio Transformers;
* ``y_mean``: unimodal Transformer outputs averaged over the clips;
* ``z_summary``: the two BOS outputs of the multimodal Transformer;
* ``z_mean``: multimodal outputs averaged over the clips (BOS excluded).
"""
import dataclasses
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

MODALITIES = ('visual', 'audio')
POOLED_FEATURES = ('x_mean', 'y_summary', 'y_mean', 'z_summary', 'z_mean')


@dataclass
class AVOutputs:
    """Embeddings produced by the CNNs and the Transformers of AVBERT.

    Fields that a configuration does not produce are ``None``: ``y_v``/``y_a``
    with early fusion, ``z`` with late fusion, everything of a modality whose
    input was not given.
    """

    x_v: Optional[Tensor] = None
    x_a: Optional[Tensor] = None
    y_v: Optional[Tensor] = None
    y_a: Optional[Tensor] = None
    z: Optional[Tensor] = None
    mask: Optional[Tensor] = None
    padding_mask: Optional[Tensor] = None
    z_modalities: Tuple[str, ...] = MODALITIES
    z_mismatched: Optional[Tensor] = None

    def _z_half(self, modality: str) -> Optional[Tensor]:
        if self.z is None or modality not in self.z_modalities:
            return None
        num_halves = len(self.z_modalities)
        length = self.z.shape[1]
        if self.z.dim() != 3 or length % num_halves or \
                length < 2 * num_halves:
            raise ValueError(
                f'z of shape {tuple(self.z.shape)} cannot be split into the '
                f'halves {self.z_modalities}: it must be '
                f'[B, {num_halves}T + {num_halves}, D] with T >= 1')
        half = length // num_halves
        index = self.z_modalities.index(modality)
        return self.z[:, index * half:(index + 1) * half]

    @property
    def z_v(self) -> Optional[Tensor]:
        """(B, T+1, D) visual half of ``z`` (BOS at 0), or None."""
        return self._z_half('visual')

    @property
    def z_a(self) -> Optional[Tensor]:
        """(B, T+1, D) audio half of ``z`` (BOS at 0), or None."""
        return self._z_half('audio')

    @property
    def z_clips(self) -> Optional[Tensor]:
        """(B, H*T, D) the clip outputs of ``z``, BOS outputs dropped.

        The halves in the order of ``z_modalities``: normally (B, 2T, D),
        ``[z_v1 .. z_vT ; z_a1 .. z_aT]``.  None without ``z``.
        """
        if self.z is None:
            return None
        halves = [self._z_half(m)[:, 1:] for m in self.z_modalities]
        return halves[0] if len(halves) == 1 else torch.cat(halves, dim=1)

    @property
    def y_v_clips(self) -> Optional[Tensor]:
        """(B, T, D) visual Transformer outputs of the clips (BOS dropped)."""
        return None if self.y_v is None else self.y_v[:, 1:]

    @property
    def y_a_clips(self) -> Optional[Tensor]:
        """(B, T, D) audio Transformer outputs of the clips (BOS dropped)."""
        return None if self.y_a is None else self.y_a[:, 1:]

    @property
    def mismatched(self) -> Optional['AVOutputs']:
        """The mismatched pass as outputs of its own, or None.

        An :class:`AVOutputs` whose ``z`` is ``z_mismatched`` (same
        ``z_modalities``; every other field None), so ``mismatched.z_v`` is
        the visual half of video b and ``mismatched.z_a`` the audio half of
        video ``perm[b]``, each (B, T+1, D).
        """
        if self.z_mismatched is None:
            return None
        return AVOutputs(z=self.z_mismatched, z_modalities=self.z_modalities)

    @property
    def summary_unimodal(self) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """(B, D) BOS outputs of the visual and audio Transformers."""
        return (None if self.y_v is None else self.y_v[:, 0],
                None if self.y_a is None else self.y_a[:, 0])

    @property
    def summary_multimodal(self) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """(B, D) BOS outputs of the two halves of the multimodal output."""
        z_v, z_a = self.z_v, self.z_a
        return (None if z_v is None else z_v[:, 0],
                None if z_a is None else z_a[:, 0])

    @property
    def num_clips(self) -> int:
        """T, the number of clips per sequence."""
        for name in ('x_v', 'x_a'):
            value = getattr(self, name)
            if value is not None:
                return value.shape[1]
        for name in ('y_v', 'y_a'):
            value = getattr(self, name)
            if value is not None:
                return value.shape[1] - 1
        if self.z is not None:
            return self.z.shape[1] // len(self.z_modalities) - 1
        raise ValueError('AVOutputs holds no tensor to read T from')

    def apply(self, fn: Callable[[Tensor], Tensor]) -> 'AVOutputs':
        """A copy with ``fn`` applied to every tensor field (e.g. detach)."""
        changes = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Tensor):
                changes[field.name] = fn(value)
        return dataclasses.replace(self, **changes)


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
        raise KeyError(f'unknown feature "{name}"; choose from '
                       f'{POOLED_FEATURES}')
    if not parts:
        raise ValueError(f'the model outputs hold nothing for "{name}" '
                         '(e.g. z features of a late-fusion model)')
    return torch.cat(parts, dim=1)
