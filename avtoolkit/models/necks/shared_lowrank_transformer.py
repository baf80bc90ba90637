"""The Transformers of AVBERT with cross-layer and cross-Transformer sharing.

Section 2 of "Parameter Efficient Multimodal Transformers for Video
Representation Learning" (Lee et al., ICLR 2021) contextualises per-clip CNN
embeddings with three Transformers:

* the visual Transformer ``g_V`` over
  ``u^v_{0:T} = LN(x^v_{0:T} + p^v_{0:T})``,
* the audio Transformer ``g_A`` over ``u^a_{0:T} = LN(x^a_{0:T} + p^a_{0:T})``,
* the multimodal Transformer ``h_AV`` over ``[w^v_{0:T} ; w^a_{0:T}]`` with
  ``w^m_t = LN(y^m_t + p_t + m_m)``; ``p`` is one table for both halves, so the
  audio half restarts at time 0.

``x^m_0`` is a learned BOS vector per modality.  Section 2.2 reduces the
parameters by sharing one layer across depth (ALBERT style) and by factorising
every dense map of a layer as ``U Σ_m normalize(V_m x) + b`` with ``U``, ``b``
shared by the Transformers and ``V_m``, ``Σ_m`` private (see
:mod:`.lowrank_linear`).

Module layout (a parameter counter reports these apart):

* ``self.transformers``: :class:`~torch.nn.ModuleDict` of
  :class:`TransformerStack`, the Transformer layer weights only.  With
  ``share_transformers='none'`` one stack per Transformer (``visual``,
  ``audio``, ``multimodal``); with ``'all'`` or ``'part'`` a single ``shared``
  stack used by all of them.
* ``self.embeddings``: :class:`~torch.nn.ModuleDict` of BOS / mask vectors
  (``visual_tokens``, ``audio_tokens``) and of time(+modality) embeddings with
  their LayerNorm (``visual``, ``audio``, ``multimodal``).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from avtoolkit.models.structures import AVOutputs
from avtoolkit.registry import MODELS

from .embeddings import ClipTokens, TimeEmbedding
from .lowrank_linear import FactorizedLinear, orthogonal_from_generator
from .transformer_layer import FactorCache, TransformerStack

FUSIONS = ('mid', 'early', 'late')
SHARING_MODES = ('none', 'all', 'part')
# Transformers used by each fusion, in the order that gives their index m in
# the factorized layers (visual 0, audio 1, multimodal 2 for mid fusion).
_ROLES = {
    'mid': ('visual', 'audio', 'multimodal'),
    'early': ('multimodal', ),
    'late': ('visual', 'audio'),
}
_MODALITY_INDEX = {'visual': 0, 'audio': 1}


@MODELS.register_module()
class SharedLowRankTransformer(BaseModule):
    """Visual, audio and multimodal Transformers of AVBERT.

    Args:
        embed_dim: D (768).
        num_layers: L, layers per Transformer (6); early and late fusion use
            2L layers in their Transformers.
        num_heads: A (12).
        ffn_dim: E (3072).
        fusion: ``'mid'`` (visual + audio + multimodal Transformers),
            ``'early'`` (one multimodal Transformer of 2L layers on the
            embedded inputs) or ``'late'`` (visual and audio Transformers of
            2L layers, no multimodal one), as in section 3.1 of the paper.
        share_layers: one layer per Transformer, applied ``depth`` times.
        share_transformers: ``'none'`` (separate dense Transformers), ``'all'``
            (the Transformers are one dense Transformer) or ``'part'`` (one
            Transformer whose maps are factorized, ``U`` and biases and
            LayerNorms shared, ``V_m`` and ``Σ_m`` private per Transformer).
        rank: O of the factorization for ``'part'`` (128).
        dropout: dropout of the embeddings and of the sub-layer outputs.
        attn_dropout: dropout of the attention probabilities.
        max_seq_len: largest number of clips T; the time tables have
            ``max_seq_len + 1`` rows (positions 0..T, 0 being BOS).
        norm_first: pre-LN layers (with a final LayerNorm per stack) instead of
            post-LN.
        layer_norm_eps: epsilon of every LayerNorm (1e-12 as in BERT).
        init_std: std of the normal init of weights and embeddings.
        fold_rotations: how the orthogonal ``Σ`` of ``'part'`` layers enter
            the computation: True folds them into ``V`` once per forward, False
            applies them to every token, None (default) picks the cheaper one
            per map from the batch size and sequence length.  The results are
            the same up to rounding.
        init_cfg: mmengine init config.

    Inputs of :meth:`forward` are per-clip embeddings ``x_v``, ``x_a`` of shape
    (B, T, D); the output is an :class:`AVOutputs`.
    """

    def __init__(self,
                 embed_dim: int = 768,
                 num_layers: int = 6,
                 num_heads: int = 12,
                 ffn_dim: int = 3072,
                 fusion: str = 'mid',
                 share_layers: bool = True,
                 share_transformers: str = 'part',
                 rank: int = 128,
                 dropout: float = 0.1,
                 attn_dropout: float = 0.1,
                 max_seq_len: int = 64,
                 norm_first: bool = False,
                 layer_norm_eps: float = 1e-12,
                 init_std: float = 0.02,
                 fold_rotations: Optional[bool] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if fusion not in FUSIONS:
            raise ValueError(
                f'fusion must be one of {FUSIONS}, got {fusion!r}')
        if share_transformers not in SHARING_MODES:
            raise ValueError(f'share_transformers must be one of '
                             f'{SHARING_MODES}, got {share_transformers!r}')
        for name, value in (('embed_dim', embed_dim),
                            ('num_layers', num_layers),
                            ('num_heads', num_heads), ('ffn_dim', ffn_dim),
                            ('max_seq_len', max_seq_len)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f'{name} must be a positive int, got {value!r}')
        if share_transformers == 'part':
            if not isinstance(rank, int) or not 1 <= rank <= embed_dim:
                raise ValueError(f'rank must be an int in [1, embed_dim='
                                 f'{embed_dim}], got {rank!r}')
        for name, value in (('dropout', dropout),
                            ('attn_dropout', attn_dropout)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f'{name} must be in [0, 1), got {value!r}')
        self.embed_dim = embed_dim
        self.num_layers = num_layers
        self.fusion = fusion
        self.share_layers = bool(share_layers)
        self.share_transformers = share_transformers
        self.rank = rank if share_transformers == 'part' else None
        self.max_seq_len = max_seq_len
        self.roles = _ROLES[fusion]
        depth = num_layers if fusion == 'mid' else 2 * num_layers
        self.depth = depth
        if fold_rotations not in (None, True, False):
            raise ValueError('fold_rotations must be None, True or False, got '
                             f'{fold_rotations!r}')
        self.fold_rotations = fold_rotations

        layer_cfg = dict(
            embed_dim=embed_dim,
            num_heads=num_heads,
            ffn_dim=ffn_dim,
            dropout=dropout,
            attn_dropout=attn_dropout,
            norm_first=norm_first,
            layer_norm_eps=layer_norm_eps,
            init_std=init_std)
        if share_transformers == 'none':
            self.transformers = nn.ModuleDict({
                role: TransformerStack(depth, self.share_layers, layer_cfg)
                for role in self.roles
            })
            self._stack_of = {role: role for role in self.roles}
        else:
            if share_transformers == 'part':
                layer_cfg.update(rank=rank, num_groups=len(self.roles))
            self.transformers = nn.ModuleDict({
                'shared': TransformerStack(depth, self.share_layers, layer_cfg)
            })
            self._stack_of = {role: 'shared' for role in self.roles}
        # Index m of each Transformer in the factorized maps.
        self._group_of = {role: i for i, role in enumerate(self.roles)}

        # Every factorized map gets a slot in the per-forward cache.
        self._factorized = tuple(
            m for m in self.transformers.modules()
            if isinstance(m, FactorizedLinear))
        for slot, module in enumerate(self._factorized):
            module.cache_slot = slot

        embeddings = {}
        for modality in ('visual', 'audio'):
            embeddings[f'{modality}_tokens'] = ClipTokens(embed_dim, init_std)
        emb_cfg = dict(
            embed_dim=embed_dim,
            num_positions=max_seq_len + 1,
            layer_norm_eps=layer_norm_eps,
            dropout=dropout,
            init_std=init_std)
        if 'visual' in self.roles:
            embeddings['visual'] = TimeEmbedding(**emb_cfg)
            embeddings['audio'] = TimeEmbedding(**emb_cfg)
        if 'multimodal' in self.roles:
            embeddings['multimodal'] = TimeEmbedding(
                num_modalities=2, **emb_cfg)
        self.embeddings = nn.ModuleDict(embeddings)

    # ---------------------------------------------------------------- Σ cache
    def compute_sigmas(self) -> List[Tensor]:
        """``Σ`` of every factorized map, in one batched matrix exponential.

        Returns:
            list indexed by ``cache_slot``; entry i has the shape of that map's
            ``sigma_generator`` (num_groups, num_maps, O, O), float32.  Empty
            for dense Transformers.
        """
        if not self._factorized:
            return []
        generators = [m.sigma_generator for m in self._factorized]
        rank = generators[0].shape[-1]
        flat = torch.cat([g.reshape(-1, rank, rank) for g in generators])
        rotations = orthogonal_from_generator(flat)
        sizes = [g.shape[0] * g.shape[1] for g in generators]
        return [
            r.view(g.shape)
            for r, g in zip(torch.split(rotations, sizes), generators)
        ]

    def prepare_factors(
            self, runs: Sequence[Tuple[slice, int]]) -> FactorCache:
        """Per-forward factors of every factorized map for the given runs.

        ``Σ`` is computed once (:meth:`compute_sigmas`) and, for each run,
        either folded into ``V`` or kept to be applied per token, whichever
        takes fewer multiply-adds: folding costs O^2 * in per group, applying
        costs O^2 per token and layer application.

        Args:
            runs: ``(groups, tokens)`` of each call of the shared stack in this
                forward pass: the group range and the number of tokens (B * S)
                per group.

        Returns:
            the cache for :meth:`TransformerLayer.forward`; empty for dense
            Transformers.
        """
        if not self._factorized:
            return []
        rotations = self.compute_sigmas()
        applications = self.depth if self.share_layers else 1
        cache = []
        for module, rot in zip(self._factorized, rotations):
            entry = {}
            for groups, tokens in runs:
                if self.fold_rotations is None:
                    fold = applications * tokens >= module.in_features
                else:
                    fold = self.fold_rotations
                entry[groups.start] = module.prepare(rot, groups, fold)
            cache.append(entry)
        return cache

    # --------------------------------------------------------------- checking
    def _check_inputs(self, x_v: Optional[Tensor], x_a: Optional[Tensor],
                      mask: Optional[Tensor],
                      padding_mask: Optional[Tensor]) -> Tuple[int, int]:
        present = {n: x for n, x in (('x_v', x_v), ('x_a', x_a))
                   if x is not None}
        if not present:
            raise ValueError('at least one of x_v and x_a must be given')
        shape = None
        for name, x in present.items():
            if not isinstance(x, Tensor) or not x.is_floating_point():
                raise TypeError(f'{name} must be a floating point tensor')
            if x.dim() != 3 or x.shape[-1] != self.embed_dim:
                raise ValueError(f'{name} must have shape (B, T, '
                                 f'{self.embed_dim}), got {tuple(x.shape)}')
            if shape is not None and x.shape[:2] != shape:
                raise ValueError('x_v and x_a must have the same (B, T), got '
                                 f'{tuple(x_v.shape[:2])} and '
                                 f'{tuple(x_a.shape[:2])}')
            shape = x.shape[:2]
        batch, length = shape
        if length < 1:
            raise ValueError('the sequences must hold at least one clip')
        if length > self.max_seq_len:
            raise ValueError(
                f'sequences of T={length} clips exceed max_seq_len='
                f'{self.max_seq_len}; build the neck with a larger '
                'max_seq_len')
        for name, m in (('mask', mask), ('padding_mask', padding_mask)):
            if m is None:
                continue
            if not isinstance(m, Tensor) or m.dtype != torch.bool:
                raise TypeError(f'{name} must be a bool tensor (True = '
                                f'{"masked" if name == "mask" else "padded"})')
            if tuple(m.shape) != (batch, length):
                raise ValueError(f'{name} must have shape (B, T) = '
                                 f'{(batch, length)}, got {tuple(m.shape)}')
        if self.fusion == 'early' and len(present) < 2:
            raise ValueError('early fusion runs one multimodal Transformer '
                             'over both modalities and needs both x_v and x_a')
        return batch, length

    # ---------------------------------------------------------------- helpers
    def _runs(self, roles: Sequence[str]) -> List[Tuple[str, slice, int, int]]:
        """Split ``roles`` into calls of the stacks.

        Transformers that are the same stack with consecutive group indices
        run as one batched call.

        Returns:
            ``(stack key, groups, first role index, end role index)`` per call.
        """
        runs = []
        i = 0
        while i < len(roles):
            j = i + 1
            key = self._stack_of[roles[i]]
            while (j < len(roles) and self._stack_of[roles[j]] == key
                   and self._group_of[roles[j]]
                   == self._group_of[roles[j - 1]] + 1):
                j += 1
            start = self._group_of[roles[i]]
            runs.append((key, slice(start, start + j - i), i, j))
            i = j
        return runs

    def _multimodal_input(self, halves: Dict[str, Tensor],
                          mismatch_perm: Optional[Tensor] = None) -> Tensor:
        """(B, H(T+1), D) ``[w_v ; w_a]`` from the H present halves; with
        ``mismatch_perm`` followed (batch dimension, 2B in all) by the
        mismatched ``[w_v(b) ; w_a(perm[b])]``."""
        embed = self.embeddings['multimodal']
        parts = [embed(y, _MODALITY_INDEX[m]) for m, y in halves.items()]
        w = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if mismatch_perm is None:
            return w
        # The multimodal embedding is per token, so permuting the embedded
        # audio half equals embedding the permuted y_a.
        visual, audio = parts
        return torch.cat([w, torch.cat([visual, audio[mismatch_perm]], dim=1)])

    # ---------------------------------------------------------------- forward
    def forward(self,
                x_v: Optional[Tensor] = None,
                x_a: Optional[Tensor] = None,
                mask: Optional[Tensor] = None,
                padding_mask: Optional[Tensor] = None,
                mismatch_perm: Optional[Tensor] = None) -> AVOutputs:
        """Contextualise the clip embeddings.

        Args:
            x_v: (B, T, D) visual clip embeddings, or None (audio only).
            x_a: (B, T, D) audio clip embeddings, or None (visual only).
            mask: (B, T) bool, True where the clip is replaced by the mask
                embedding of its modality (same clips in both modalities).
            padding_mask: (B, T) bool, True at padding clips, which no position
                attends to.
            mismatch_perm: (B,) long, a permutation of the batch.  When given
                (mid and early fusion, both modalities), the multimodal
                Transformer also runs on the mismatched sequences
                ``[w_v(b) ; w_a(perm[b])]``, in the same batched call as the
                matched ones (2B sequences), and their output is returned as
                ``z_mismatched``.

        Returns:
            :class:`AVOutputs` with ``y_v``/``y_a`` (B, T+1, D) (mid, late) and
            ``z`` (B, H(T+1), D) over the H present modalities (mid, early).
        """
        batch, length = self._check_inputs(x_v, x_a, mask, padding_mask)
        present = {
            m: x
            for m, x in (('visual', x_v), ('audio', x_a)) if x is not None
        }
        modalities = tuple(present)
        seq_len = length + 1

        # Which calls of the stacks this pass makes, to prepare the factors
        # of the factorized maps (Σ once per forward) for exactly those.
        unimodal_runs = []
        if self.fusion != 'early':
            unimodal_runs = self._runs(modalities)
        mm_runs = []
        if 'multimodal' in self.roles:
            mm_runs = self._runs(('multimodal', ))
        if mismatch_perm is not None:
            if not mm_runs or len(modalities) != 2:
                raise ValueError('mismatch_perm needs a multimodal '
                                 'Transformer (mid or early fusion) and both '
                                 'modalities')
            if mismatch_perm.shape != (batch, ) or mismatch_perm.dtype != \
                    torch.long:
                raise ValueError('mismatch_perm must be a LongTensor of shape '
                                 f'(B,) = ({batch},)')
        mm_batch = batch * (2 if mismatch_perm is not None else 1)
        factors = self.prepare_factors(
            [(g, batch * seq_len) for _, g, _, _ in unimodal_runs] +
            [(g, mm_batch * seq_len * len(modalities))
             for _, g, _, _ in mm_runs])

        tokens = {
            m: self.embeddings[f'{m}_tokens'](x, mask)
            for m, x in present.items()
        }
        seq_pad = None
        if padding_mask is not None:
            seq_pad = F.pad(padding_mask, (1, 0), value=False)  # (B, T+1)
        out = AVOutputs(
            x_v=x_v,
            x_a=x_a,
            mask=mask,
            padding_mask=padding_mask,
            z_modalities=modalities)

        if self.fusion == 'early':
            unimodal = tokens
        else:
            embedded = [self.embeddings[m](tokens[m]) for m in modalities]
            ys: List[Tensor] = []
            for key, groups, i, j in unimodal_runs:
                x = torch.stack(embedded[i:j]) if j - i > 1 else \
                    embedded[i].unsqueeze(0)
                ys.extend(self.transformers[key](x, factors, groups,
                                                 seq_pad).unbind(0))
            unimodal = dict(zip(modalities, ys))
            out.y_v = unimodal.get('visual')
            out.y_a = unimodal.get('audio')

        if mm_runs:
            key, groups, _, _ = mm_runs[0]
            w = self._multimodal_input(unimodal, mismatch_perm)
            mm_pad = None
            if seq_pad is not None:
                mm_pad = torch.cat([seq_pad] * len(modalities), dim=1)
            if mismatch_perm is not None:
                if mm_pad is not None:
                    mm_pad = torch.cat([
                        mm_pad,
                        torch.cat([seq_pad, seq_pad[mismatch_perm]], dim=1)
                    ])
            z = self.transformers[key](w.unsqueeze(0), factors, groups,
                                       mm_pad).squeeze(0)
            out.z = z[:batch]
            if mismatch_perm is not None:
                out.z_mismatched = z[batch:]
        return out

    def extra_repr(self) -> str:
        return (f'fusion={self.fusion}, share_layers={self.share_layers}, '
                f'share_transformers={self.share_transformers!r}, '
                f'rank={self.rank}, max_seq_len={self.max_seq_len}')
