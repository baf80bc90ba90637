"""Masked embedding prediction (MEP) head: InfoNCE over sampled negatives.

Paper section 2.1, Eqs. 4-6.  For a Transformer output ``o_t`` at a masked
position ``t`` and the CNN embedding ``x_t`` that was masked there, the
compatibility is ``I(x, o_t) = exp(FFN(o_t)^T W_I x)`` with a two-layer GELU
network ``FFN: D -> H -> P`` and ``W_I in R^{P x D_x}``; the loss (built from
the ``loss`` config, :class:`~avtoolkit.models.losses.InfoNCELoss`) is the
cross-entropy of picking ``x_t`` among ``{x_t} + {x_j : j in neg(t)}``.  One
``(FFN, W_I)`` pair per stream of :class:`~avtoolkit.models.structures.
AVOutputs`:

* ``'v'``: ``y_v`` against the visual targets ``x_v``;
* ``'a'``: ``y_a`` against the audio targets ``x_a``;
* ``'av'``: the ``2T`` clip outputs of ``z`` (``AVOutputs.z_clips``, visual
  half first) against the joint pool: the flattened visual pool, then the
  flattened audio pool (row ``N_v + i`` is audio row ``i``).

``L_MEP = L_NCE(x_a, y_a) + L_NCE(x_v, y_v) + L_NCE([x_a; x_v], z)`` is
returned as ``loss_mep_v``, ``loss_mep_a``, ``loss_mep_av``, each the mean
over the masked positions of its stream.  The joint negatives derive from the
per-modality ones (``av_negatives``): ``'within_modality'`` (a visual
prediction gets the visual negatives, an audio one the audio negatives) or
``'both'`` (its own modality's, then the other modality's at the same clip).
"""
from typing import Dict, Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from avtoolkit.models.structures import AVOutputs
from avtoolkit.registry import MODELS

__all__ = ['MEPHead']

_STREAMS = ('v', 'a', 'av')
# The AVOutputs fields each stream predicts from (BOS dropped) and the target
# modalities it scores against.
_PREDICTIONS = {'v': 'y_v_clips', 'a': 'y_a_clips', 'av': 'z_clips'}
_TARGETS = {'v': 'x_v', 'a': 'x_a'}


class _Predictor(nn.Module):
    """``FFN``: Linear(D, H) -> GELU -> Linear(H, P), ``[..., D] -> [..., P]``.
    """

    def __init__(self, in_channels: int, hidden_channels: int,
                 proj_channels: int):
        super().__init__()
        self.fc1 = nn.Linear(in_channels, hidden_channels)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_channels, proj_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


@MODELS.register_module()
class MEPHead(BaseModule):
    """InfoNCE heads of the three MEP terms.

    Args:
        in_channels: ``D``, width of the Transformer outputs (default 768, the
            paper's).
        target_channels: ``D_x``, width of the CNN embeddings used as targets
            (default ``None`` = ``in_channels``; they are equal in the paper).
        proj_channels: ``P``, the width of the space in which predictions and
            targets meet (default 256, the paper's).
        hidden_channels: ``H``, hidden width of the FFN (default ``None`` =
            ``in_channels``; the paper only says "two-layer").
        streams: which of ``'v'``, ``'a'``, ``'av'`` get a head and a loss
            term (default all three, Eq. 6; dropping ``'av'`` is the ablation
            of appendix B.3, and a late-fusion model has no ``'av'``).
        detach_targets: stop the MEP gradient at the CNN embeddings used as
            targets (default ``True``: the paper trains the CNNs only through
            the Transformers, "no direct supervision to the CNN layers").  The
            embeddings fed to the Transformers are unaffected.
        av_negatives: ``'within_modality'`` (default) or ``'both'``; how the
            joint term's negatives derive from the per-modality ones (module
            docstring).  ``'within_modality'`` needs ``K_v == K_a``.
        loss: config of the contrastive loss (default
            ``dict(type='InfoNCELoss')``); called as ``loss(queries,
            positives, pool, negatives) -> (loss, correct)``.
        loss_weight: factor on every loss term (default 1.0).
        init_cfg: mmengine initialisation config (default ``None``: PyTorch's
            default ``nn.Linear`` initialisation).
    """

    def __init__(self,
                 in_channels: int = 768,
                 target_channels: Optional[int] = None,
                 proj_channels: int = 256,
                 hidden_channels: Optional[int] = None,
                 streams: Tuple[str, ...] = _STREAMS,
                 detach_targets: bool = True,
                 av_negatives: str = 'within_modality',
                 loss: Optional[dict] = None,
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        streams = tuple(streams)
        unknown = set(streams) - set(_STREAMS)
        if unknown or not streams or len(set(streams)) != len(streams):
            raise ValueError(f'streams must be distinct entries of {_STREAMS},'
                             f' got {streams}')
        if av_negatives not in ('within_modality', 'both'):
            raise ValueError("av_negatives must be 'within_modality' or "
                             f"'both', got {av_negatives!r}")
        self.in_channels = in_channels
        self.target_channels = target_channels or in_channels
        self.proj_channels = proj_channels
        self.hidden_channels = hidden_channels or in_channels
        self.streams = streams
        self.detach_targets = detach_targets
        self.av_negatives = av_negatives
        self.loss_weight = loss_weight
        self.predictors = nn.ModuleDict({
            s: _Predictor(in_channels, self.hidden_channels, proj_channels)
            for s in streams
        })
        self.target_projs = nn.ModuleDict({
            s: nn.Linear(self.target_channels, proj_channels, bias=False)
            for s in streams
        })
        # Parameter-free: adds nothing to the state dict.
        self.loss_module = MODELS.build(loss or dict(type='InfoNCELoss'))

    def _joint_negatives(self, neg: Dict[str, Tensor],
                         n_visual: int) -> Tensor:
        """``LongTensor[B, 2T, K*]`` into the joint pool from per-modality."""
        neg_v, neg_a = neg['v'], neg['a'] + n_visual
        if self.av_negatives == 'within_modality':
            if neg_v.shape[-1] != neg_a.shape[-1]:
                raise ValueError(
                    "av_negatives='within_modality' needs as many visual as "
                    f'audio negatives, got {neg_v.shape[-1]} and '
                    f'{neg_a.shape[-1]}; pass negatives["av"] or use '
                    "av_negatives='both'.")
            return torch.cat([neg_v, neg_a], dim=1)
        return torch.cat([
            torch.cat([neg_v, neg_a], dim=2),
            torch.cat([neg_a, neg_v], dim=2)
        ], dim=1)

    def _stream_loss(self, stream: str, pred: Tensor, mask: Tensor,
                     positives: Tensor, pool: Tensor,
                     negatives: Tensor) -> Tuple[Tensor, Tensor]:
        """One loss term over the masked positions of one stream.

        Shapes: ``pred [B, L, D]``, ``mask [B, L]``, ``positives [B, L, D_x]``,
        ``pool [N, D_x]``, ``negatives [B, L, K]``.
        """
        if self.detach_targets:
            positives, pool = positives.detach(), pool.detach()
        sel = mask.reshape(-1).nonzero(as_tuple=True)[0]
        if sel.numel() == 0:
            # Keep the graph connected (data-parallel training expects every
            # parameter to receive a gradient) but contribute nothing.
            zero = pred.sum() * 0.0 + sum(
                p.sum() for p in self.predictors[stream].parameters()) * 0.0
            zero = zero + self.target_projs[stream].weight.sum() * 0.0
            return zero.float(), pred.new_zeros((), dtype=torch.float32)
        flat_pred = pred.reshape(-1, pred.shape[-1])[sel]
        queries = self.predictors[stream](flat_pred)
        proj = self.target_projs[stream]
        pos = proj(positives.reshape(-1, positives.shape[-1])[sel])
        neg = negatives.reshape(-1, negatives.shape[-1])[sel]
        loss, correct = self.loss_module(queries, pos, proj(pool), neg)
        return loss, correct.float().mean()

    @staticmethod
    def _flat_pool(x: Tensor, channels: int) -> Tensor:
        return x.reshape(-1, channels)

    def _read(self, outputs: AVOutputs, field: str, stream: str) -> Tensor:
        value = getattr(outputs, field)
        if value is None:
            raise KeyError(f'MEP stream {stream!r} needs outputs.{field}, '
                           'which is None')
        return value

    def loss(self,
             outputs: AVOutputs,
             negatives: Dict[str, Tensor],
             pools: Optional[Dict[str, Tensor]] = None) -> Dict[str, Tensor]:
        """The MEP loss terms and accuracies (B sequences of T clips).

        Args:
            outputs: the masked pass.  Reads ``mask`` (BoolTensor[B, T]),
                the targets ``x_v``/``x_a`` (Tensor[B, T, D_x], unmasked: the
                positive of a masked clip is the embedding that was hidden)
                and the predictions ``y_v_clips``/``y_a_clips`` (Tensor[B, T,
                D]) and ``z_clips`` (Tensor[B, 2T, D]) of the head's streams.
            negatives: sampler indices ``{'v': LongTensor[B, T, K_v], 'a':
                LongTensor[B, T, K_a]}`` into the flattened pools, and
                optionally ``'av'``: ``LongTensor[B, 2T, K]`` into the joint
                pool (overrides ``av_negatives``).
            pools: the pools the indices refer to, ``{'v': ..., 'a': ...}``,
                each Tensor[B_pool, T, D_x] or Tensor[N, D_x]: what the
                sampler returned.  Default: ``x_v``, ``x_a`` (a local pool).

        Returns:
            ``loss_mep_<s>`` (float32 scalar, ``loss_weight`` applied) and
            ``acc_mep_<s>`` (fraction of masked positions whose positive logit
            beats all its negatives) for every stream ``s``.  With no masked
            position a stream's loss is a zero that still reaches every
            parameter of the head, and its accuracy is 0.
        """
        mask = outputs.mask
        if not isinstance(mask, Tensor) or mask.dim() != 2 or \
                mask.dtype != torch.bool:
            got = (f'{mask.dtype} of shape {tuple(mask.shape)}'
                   if isinstance(mask, Tensor) else repr(mask))
            raise ValueError(f'outputs.mask must be BoolTensor[B, T], got '
                             f'{got}')
        modalities = [m for m in ('v', 'a')
                      if m in self.streams or 'av' in self.streams]
        targets = {m: self._read(outputs, _TARGETS[m], m) for m in modalities}
        if pools is None:
            pools = targets
        out = {}
        for s in self.streams:
            pred = self._read(outputs, _PREDICTIONS[s], s)
            if s == 'av':
                pos = torch.cat([targets['v'], targets['a']], dim=1)
                pool_v = self._flat_pool(pools['v'], pos.shape[-1])
                pool_a = self._flat_pool(pools['a'], pos.shape[-1])
                pool = torch.cat([pool_v, pool_a], dim=0)
                stream_mask = torch.cat([mask, mask], dim=1)
                stream_negatives = negatives.get('av')
                if stream_negatives is None:
                    stream_negatives = self._joint_negatives(
                        negatives, pool_v.shape[0])
            else:
                pos = targets[s]
                pool = self._flat_pool(pools[s], pos.shape[-1])
                stream_mask = mask
                stream_negatives = negatives[s]
            expected = tuple(stream_mask.shape)
            if (pred.dim() != 3 or tuple(pred.shape[:2]) != expected
                    or tuple(pos.shape[:2]) != expected
                    or tuple(stream_negatives.shape[:2]) != expected):
                raise ValueError(
                    f'stream {s!r}: predictions {tuple(pred.shape)}, targets '
                    f'{tuple(pos.shape)} and negatives '
                    f'{tuple(stream_negatives.shape)} must all start with '
                    f'{expected}')
            loss, acc = self._stream_loss(s, pred, stream_mask, pos, pool,
                                          stream_negatives)
            out[f'loss_mep_{s}'] = loss * self.loss_weight
            out[f'acc_mep_{s}'] = acc.detach()
        return out
