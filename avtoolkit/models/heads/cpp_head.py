"""Correct pair prediction (CPP) head: are audio and visual from one video?

Paper section 2.1, Eq. 7 and appendix B.4.  Two binary classifiers read
:class:`~avtoolkit.models.structures.AVOutputs`:

* ``'uni'`` scores pairs of unimodal Transformer outputs ``[y_v ; y_a]``;
* ``'multi'`` scores pairs of multimodal Transformer outputs
  ``[z_v ; z_a]``.

Each classifier sees the summary pair (the BOS outputs) and the pairs at
``num_positions`` random clip positions ``t in [1, T]``, and its loss is
``BCE(summary pairs) + BCE(position pairs)``, each the mean over its pairs
(the two terms of Eq. 7).  Matched pairs (label 1) come from the same video;
mismatched pairs (label 0) pair the visual side of video ``b`` with the audio
side of video ``perm[b]``, ``perm`` a derangement of the batch drawn by the
algorithm, so there are as many mismatched as matched pairs.  The multimodal
mismatched pairs are the halves of ``outputs.mismatched`` (the neck ran the
multimodal Transformer on ``[w_v(b) ; w_a(perm[b])]``); the unimodal ones are
formed here from ``y_v`` and ``y_a[perm]``, as the unimodal Transformers see
one modality each.  At a position ``t`` both sides use the same ``t``, so the
two classes differ in the videos only.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from avtoolkit.models.structures import AVOutputs
from avtoolkit.models.utils.pairing import sample_positions
from avtoolkit.registry import MODELS

__all__ = ['CPPHead']

_CLASSIFIERS = ('uni', 'multi')


def _classifier(in_channels: int, hidden_channels: Optional[int]) -> nn.Module:
    if hidden_channels is None:
        return nn.Linear(in_channels, 1)
    return nn.Sequential(
        nn.Linear(in_channels, hidden_channels), nn.GELU(),
        nn.Linear(hidden_channels, 1))


@MODELS.register_module()
class CPPHead(BaseModule):
    """Two binary pair classifiers, unimodal and multimodal.

    Args:
        in_channels: ``D``, width of one Transformer output (default 768); a
            classifier reads ``2D`` features.
        hidden_channels: width of the hidden layer of each classifier (default
            768): ``Linear(2D, H) -> GELU -> Linear(H, 1)``.  ``None`` makes a
            single ``Linear(2D, 1)``.  The paper does not specify it.  A hidden
            layer is the default because a linear score of ``[y_v ; y_a]`` is
            ``u.y_v + w.y_a``, a sum of one term per side: matched and
            mismatched unimodal pairs share their per-side distributions, so
            such a score cannot tell them apart; the classifier needs an
            interaction between the two sides.
        num_positions: random positions per sequence (default 2, the paper's);
            0 keeps only the summary term (the ablation of appendix B.4).
            Positions are distinct within a sequence.
        classifiers: which of ``'uni'``, ``'multi'`` to build (default both;
            a late-fusion model has no multimodal Transformer).
        loss_weight: factor on both losses (the paper's ``alpha``, default
            1.0).
        init_cfg: mmengine initialisation config (default ``None``: PyTorch's
            default ``nn.Linear`` initialisation).
    """

    def __init__(self,
                 in_channels: int = 768,
                 hidden_channels: Optional[int] = 768,
                 num_positions: int = 2,
                 classifiers: Tuple[str, ...] = _CLASSIFIERS,
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        classifiers = tuple(classifiers)
        if (not classifiers or set(classifiers) - set(_CLASSIFIERS)
                or len(set(classifiers)) != len(classifiers)):
            raise ValueError(f'classifiers must be distinct entries of '
                             f'{_CLASSIFIERS}, got {classifiers}')
        if num_positions < 0:
            raise ValueError(f'num_positions must be >= 0, got '
                             f'{num_positions}')
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.num_positions = num_positions
        self.classifiers = classifiers
        self.loss_weight = loss_weight
        self.heads = nn.ModuleDict({
            c: _classifier(2 * in_channels, hidden_channels)
            for c in classifiers
        })

    @staticmethod
    def _pairs(vis: Tensor, aud: Tensor, positions: Tensor) -> Tensor:
        """``[vis_0 ; aud_0]`` and ``[vis_t ; aud_t]`` at ``positions``.

        ``vis``, ``aud``: ``Tensor[B, T + 1, D]`` (BOS first);
        ``positions``: ``LongTensor[B, P]``.  Returns ``Tensor[B, 1 + P, 2D]``,
        the summary pair first.
        """
        idx = torch.cat([positions.new_zeros((positions.shape[0], 1)),
                         positions], dim=1)
        idx = idx.unsqueeze(-1).expand(-1, -1, vis.shape[-1])
        return torch.cat([vis.gather(1, idx), aud.gather(1, idx)], dim=-1)

    def _classify(self, name: str, matched: Tensor,
                  mismatched: Tensor) -> Tuple[Tensor, Tensor]:
        """Loss and accuracy of one classifier.

        ``matched``, ``mismatched``: ``Tensor[B, 1 + P, 2D]``.
        """
        logits = self.heads[name](torch.stack([matched, mismatched]))
        logits = logits.squeeze(-1).float()  # (2, B, 1 + P)
        labels = torch.zeros_like(logits)
        labels[0] = 1.0
        with torch.autocast(device_type=logits.device.type, enabled=False):
            per_pair = F.binary_cross_entropy_with_logits(
                logits, labels, reduction='none')
        loss = per_pair[:, :, 0].mean()
        if logits.shape[-1] > 1:
            loss = loss + per_pair[:, :, 1:].mean()
        acc = ((logits > 0).float() == labels).float().mean()
        return loss, acc

    def loss(self,
             outputs: AVOutputs,
             perm: Tensor,
             positions: Optional[Tensor] = None,
             generator: Optional[torch.Generator] = None
             ) -> Dict[str, Tensor]:
        """CPP losses and accuracies (B sequences of T clips, width D).

        Args:
            outputs: ``'uni'`` reads ``y_v``, ``y_a`` (Tensor[B, T+1, D]);
                ``'multi'`` reads the halves ``z_v``, ``z_a`` of ``z`` and
                of ``z_mismatched`` (``outputs.mismatched``), each
                Tensor[B, T+1, D].
            perm: LongTensor[B], the derangement of the batch that forms the
                mismatched pairs (``[y_v ; y_a[perm]]``, and the one the
                neck used for ``z_mismatched``).  Required: the algorithm
                draws it (``AVBERT.sample_step``).
            positions: LongTensor[B, num_positions] in ``[1, T]``; drawn with
                :func:`sample_positions` when None.  Matched and mismatched
                pairs of sequence ``b`` use the same positions, and both
                classifiers use them.
            generator: optional generator for ``positions``.

        Returns:
            ``loss_cpp_uni``/``loss_cpp_multi`` (float32 scalars,
            ``loss_weight`` applied) and ``acc_cpp_uni``/``acc_cpp_multi``
            (fraction of all matched and mismatched pairs, summary and
            positions, classified right: logit > 0 means "same video"), for
            the classifiers of the head.
        """
        if perm is None:
            raise ValueError(
                'perm is required: pass the derangement of the batch '
                '(LongTensor[B]) that forms the mismatched pairs, the one '
                'the neck got as mismatch_perm (AVBERT.sample_step draws it)')
        pairs = {}
        if 'uni' in self.classifiers:
            if outputs.y_v is None or outputs.y_a is None:
                raise ValueError("the 'uni' classifier needs y_v and y_a")
            pairs['uni'] = (outputs.y_v, outputs.y_a)
        if 'multi' in self.classifiers:
            mismatched = outputs.mismatched
            if outputs.z is None or mismatched is None:
                raise ValueError("the 'multi' classifier needs z and "
                                 'z_mismatched (run the neck with '
                                 'mismatch_perm=perm)')
            if outputs.z.shape != outputs.z_mismatched.shape:
                raise ValueError(
                    f'z {tuple(outputs.z.shape)} and z_mismatched '
                    f'{tuple(outputs.z_mismatched.shape)} must both be '
                    '[B, 2T + 2, D]')
            pairs['multi'] = (outputs.z_v, outputs.z_a, mismatched.z_v,
                              mismatched.z_a)
        ref = next(iter(pairs.values()))[0]
        batch, seq_len = ref.shape[0], outputs.num_clips
        for name, sides in pairs.items():
            for side in sides:
                if side is None or tuple(side.shape[:2]) != (batch,
                                                             seq_len + 1):
                    what = ('y_v and y_a' if name == 'uni' else
                            'z and z_mismatched')
                    size = '[B, T + 1, D]' if name == 'uni' else \
                        '[B, 2T + 2, D]'
                    raise ValueError(f'{what} must both be {size} with '
                                     f'B = {batch}, T = {seq_len}')
        if positions is None:
            positions = sample_positions(batch, seq_len, self.num_positions,
                                         generator, ref.device)
        if tuple(positions.shape) != (batch, self.num_positions):
            raise ValueError(f'positions must be [{batch}, '
                             f'{self.num_positions}], got '
                             f'{tuple(positions.shape)}')
        perm = perm.to(ref.device)
        positions = positions.to(ref.device)
        out = {}
        if 'uni' in pairs:
            y_v, y_a = pairs['uni']
            matched = self._pairs(y_v, y_a, positions)
            mismatched = self._pairs(y_v, y_a[perm], positions)
            loss, acc = self._classify('uni', matched, mismatched)
            out['loss_cpp_uni'] = loss * self.loss_weight
            out['acc_cpp_uni'] = acc.detach()
        if 'multi' in pairs:
            z_v, z_a, neg_v, neg_a = pairs['multi']
            matched = self._pairs(z_v, z_a, positions)
            mismatched = self._pairs(neg_v, neg_a, positions)
            loss, acc = self._classify('multi', matched, mismatched)
            out['loss_cpp_multi'] = loss * self.loss_weight
            out['acc_cpp_multi'] = acc.detach()
        return out
