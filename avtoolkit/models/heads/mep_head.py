"""Masked embedding prediction (MEP) head: InfoNCE over sampled negatives.

Paper section 2.1, Eqs. 4-6.  For a Transformer output ``o_t`` at a masked
position ``t`` and the CNN embedding ``x_t`` that was masked there, the
compatibility is ``I(x, o_t) = exp(FFN(o_t)^T W_I x)`` with a two-layer GELU
network ``FFN: D -> H -> P`` and ``W_I in R^{P x D_x}`` (``P = 256``); the loss
is the cross-entropy of picking ``x_t`` among ``{x_t} + {x_j : j in neg(t)}``.
The head keeps one ``(FFN, W_I)`` pair per Transformer output stream:

* ``'v'``: visual Transformer outputs ``y_v`` against visual targets ``x_v``;
* ``'a'``: audio Transformer outputs ``y_a`` against audio targets ``x_a``;
* ``'av'``: multimodal Transformer outputs ``z`` against the joint pool of
  visual and audio targets.

``L_MEP = L_NCE(x_a, y_a) + L_NCE(x_v, y_v) + L_NCE([x_a; x_v], z)`` is
returned as three terms, ``loss_mep_v``, ``loss_mep_a``, ``loss_mep_av``
(mmengine sums every ``loss*`` entry), each the mean over the masked
positions of its stream.

Joint ('av') term.  Its predictions are the ``2T`` non-BOS outputs of the
multimodal Transformer, visual half first (``z_1..z_T`` then
``z_{T+2}..z_{2T+1}``, see :func:`strip_multimodal_bos`), and its mask is the
MEP mask repeated for both halves.  Its target pool is the flattened visual
pool followed by the flattened audio pool, ``N_v + N_a`` rows: visual clip
``(b, t)`` is row ``b*T + t`` and audio clip ``(b, t)`` is row
``N_v + b*T + t``.  Unless the caller passes explicit joint negatives, they
are derived from the per-modality sampler indices (``av_negatives``):

* ``'within_modality'`` (default): a visual prediction is contrasted with
  the visual sampler's negatives, an audio prediction with the audio
  sampler's (shifted by ``N_v``); ``K_v`` must equal ``K_a``.  Cross-modal
  negatives would differ from the positive by modality alone, which the
  separately trained CNNs make trivially visible, so they would add little
  but cost;
* ``'both'``: each prediction gets its own modality's ``K`` negatives
  followed by the other modality's ``K'`` negatives of the same clip
  position, ``K + K'`` in all.
"""
from typing import Dict, Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from avtoolkit.models.losses import info_nce
from avtoolkit.registry import MODELS

__all__ = ['MEPHead']

_STREAMS = ('v', 'a', 'av')


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
            docstring).
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

    def _joint_negatives(self, neg: Dict[str, Tensor],
                         n_visual: int) -> Tensor:
        """``LongTensor[B, 2T, K*]`` into the joint pool from per-modality."""
        neg_v, neg_a = neg['v'], neg['a'] + n_visual
        if self.av_negatives == 'within_modality':
            if neg_v.shape[-1] != neg_a.shape[-1]:
                raise ValueError(
                    "av_negatives='within_modality' needs as many visual as "
                    f'audio negatives, got {neg_v.shape[-1]} and '
                    f'{neg_a.shape[-1]}; pass neg_indices["av"] or use '
                    "av_negatives='both'.")
            return torch.cat([neg_v, neg_a], dim=1)
        return torch.cat([
            torch.cat([neg_v, neg_a], dim=2),
            torch.cat([neg_a, neg_v], dim=2)
        ], dim=1)

    def _stream_loss(self, stream: str, pred: Tensor, mask: Tensor,
                     positives: Tensor, pool: Tensor,
                     negatives: Tensor) -> Tuple[Tensor, Tensor]:
        """One InfoNCE term over the masked positions of one stream.

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
        loss, correct = info_nce(queries, pos, proj(pool), neg)
        return loss, correct.float().mean()

    @staticmethod
    def _flat_pool(x: Tensor, channels: int) -> Tensor:
        return x.reshape(-1, channels)

    def loss(self,
             targets: Dict[str, Tensor],
             predictions: Dict[str, Tensor],
             mask: Tensor,
             neg_indices: Dict[str, Tensor],
             pools: Optional[Dict[str, Tensor]] = None) -> Dict[str, Tensor]:
        """The MEP loss terms and accuracies.

        Args:
            targets: CNN embeddings of the local batch, ``{'v': x_v, 'a':
                x_a}``, each ``Tensor[B, T, D_x]`` (the unmasked embeddings:
                the positive of a masked position is the clip that was hidden).
                The modalities needed by ``streams`` must be present (both for
                ``'av'``).
            predictions: Transformer outputs at positions ``1..T`` (BOS
                excluded): ``'v'``: ``y_v[:, 1:]`` and ``'a'``: ``y_a[:, 1:]``,
                each ``Tensor[B, T, D]``; ``'av'``: ``Tensor[B, 2T, D]``, the
                output of :func:`strip_multimodal_bos`.  One entry per stream
                of the head.
            mask: ``BoolTensor[B, T]``, the masked positions (shared by both
                modalities); the loss is computed there only.
            neg_indices: sampler outputs ``{'v': LongTensor[B, T, K_v], 'a':
                LongTensor[B, T, K_a]}`` indexing the flattened pool of their
                modality, and optionally ``'av'``: ``LongTensor[B, 2T, K]``
                indexing the joint pool (module docstring) to override
                ``av_negatives``.
            pools: the target pools the indices refer to, ``{'v': ..., 'a':
                ...}``, each ``Tensor[B_pool, T, D_x]`` or ``Tensor[N, D_x]``.
                Default: ``targets`` (a sampler without
                ``gather_across_ranks``).  With a gathering sampler pass
                ``gather_sequences(x)[0]`` per modality.

        Returns:
            ``loss_mep_<s>`` (float32 scalar, ``loss_weight`` applied) and
            ``acc_mep_<s>`` (fraction of masked positions whose positive logit
            beats all its negatives) for every stream ``s``.  With no masked
            position a stream's loss is a zero that still reaches every
            parameter of the head, and its accuracy is 0.
        """
        if mask.dim() != 2 or mask.dtype != torch.bool:
            raise ValueError('mask must be BoolTensor[B, T], got '
                             f'{mask.dtype} of shape {tuple(mask.shape)}')
        pools = dict(targets) if pools is None else pools
        out = {}
        for s in self.streams:
            if s not in predictions:
                raise KeyError(f'predictions has no entry for stream {s!r}')
            pred = predictions[s]
            if s == 'av':
                pos = torch.cat([targets['v'], targets['a']], dim=1)
                pool_v = self._flat_pool(pools['v'], pos.shape[-1])
                pool_a = self._flat_pool(pools['a'], pos.shape[-1])
                pool = torch.cat([pool_v, pool_a], dim=0)
                stream_mask = torch.cat([mask, mask], dim=1)
                negatives = neg_indices.get('av')
                if negatives is None:
                    negatives = self._joint_negatives(neg_indices,
                                                      pool_v.shape[0])
            else:
                pos = targets[s]
                pool = self._flat_pool(pools[s], pos.shape[-1])
                stream_mask = mask
                negatives = neg_indices[s]
            expected = tuple(stream_mask.shape)
            if (pred.dim() != 3 or tuple(pred.shape[:2]) != expected
                    or tuple(pos.shape[:2]) != expected
                    or tuple(negatives.shape[:2]) != expected):
                raise ValueError(
                    f'stream {s!r}: predictions {tuple(pred.shape)}, targets '
                    f'{tuple(pos.shape)} and negatives '
                    f'{tuple(negatives.shape)} must all start with '
                    f'{expected}')
            loss, acc = self._stream_loss(s, pred, stream_mask, pos, pool,
                                          negatives)
            out[f'loss_mep_{s}'] = loss * self.loss_weight
            out[f'acc_mep_{s}'] = acc.detach()
        return out
