"""One Transformer layer with factorised (low-rank, shared) dense maps, and
a stack of them (optionally one layer applied ``depth`` times).

Shapes: ``(G, B, S, D)``, G groups of sequences (one per Transformer that
shares the stack in this call), B sequences of S tokens of width D.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from .lowrank_linear import FactorizedLinear

# Per-forward factors of the factorized maps: entry ``cache_slot`` of a map
# holds, for the first group of each group range it will be called with, the
# output of :meth:`FactorizedLinear.prepare`.
FactorCache = Sequence[Dict[int, Tuple[Tensor, Optional[Tensor]]]]


class TransformerLayer(nn.Module):
    """One Transformer encoder layer, dense or factorized.

    Post-LN (the default, as in BERT and the authors' release)::

        a = LN(x + Drop(W_o MHA(x)))
        h = LN(a + Drop(W_2 gelu(W_1 a)))

    Pre-LN (``norm_first=True``)::

        a = x + Drop(W_o MHA(LN(x)))
        h = a + Drop(W_2 gelu(W_1 LN(a)))

    With ``rank=None`` the maps are ``nn.Linear`` (the query, key and value
    projections fused in one ``(3D, D)`` matrix, as in
    ``torch.nn.MultiheadAttention``); otherwise each map is a
    :class:`FactorizedLinear` with ``num_groups`` private parts.

    Args:
        embed_dim: D.
        num_heads: A, must divide D.
        ffn_dim: E.
        dropout: dropout on the outputs of the two sub-layers.
        attn_dropout: dropout on the attention probabilities.
        norm_first: pre-LN instead of post-LN.
        layer_norm_eps: epsilon of the LayerNorms.
        rank: O of the factorization, or None for dense maps.
        num_groups: number of Transformers with private ``V``/``Σ``.
        init_std: std of the normal init of the weight matrices.
    """

    def __init__(self,
                 embed_dim: int,
                 num_heads: int,
                 ffn_dim: int,
                 dropout: float = 0.1,
                 attn_dropout: float = 0.1,
                 norm_first: bool = False,
                 layer_norm_eps: float = 1e-12,
                 rank: Optional[int] = None,
                 num_groups: int = 1,
                 init_std: float = 0.02) -> None:
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f'embed_dim={embed_dim} is not divisible by '
                             f'num_heads={num_heads}')
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.ffn_dim = ffn_dim
        self.norm_first = norm_first
        self.attn_dropout = attn_dropout
        self.factorized = rank is not None
        if self.factorized:
            def make(n_in, n_out, maps=1):
                return FactorizedLinear(n_in, n_out, rank, num_groups,
                                        num_maps=maps, init_std=init_std)
            self.qkv = make(embed_dim, embed_dim, 3)
        else:
            def make(n_in, n_out):
                linear = nn.Linear(n_in, n_out)
                nn.init.normal_(linear.weight, std=init_std)
                nn.init.zeros_(linear.bias)
                return linear
            self.qkv = make(embed_dim, 3 * embed_dim)
        self.out_proj = make(embed_dim, embed_dim)
        self.ffn1 = make(embed_dim, ffn_dim)
        self.ffn2 = make(ffn_dim, embed_dim)
        self.norm1 = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def _map(self, linear: nn.Module, x: Tensor, factors: FactorCache,
             groups: slice) -> Tensor:
        if not self.factorized:
            return linear(x)
        slot = linear.cache_slot
        if slot is None or slot >= len(factors) or \
                groups.start not in factors[slot]:
            raise RuntimeError(
                'no per-forward factors for this factorized map; run the '
                'layer through SharedLowRankTransformer, which prepares them')
        return linear(x, factors[slot][groups.start])

    def _attention(self, x: Tensor, factors: FactorCache, groups: slice,
                   attn_mask: Optional[Tensor]) -> Tensor:
        num_sel, batch, length, dim = x.shape
        heads, head_dim = self.num_heads, self.head_dim
        flat = x.reshape(num_sel, batch * length, dim)
        if self.factorized:
            qkv = self._map(self.qkv, flat, factors, groups)  # (3, G, BS, D)
            qkv = qkv.view(3, num_sel * batch, length, heads, head_dim)
            qkv = qkv.transpose(2, 3)
        else:
            qkv = self.qkv(flat)  # (G, BS, 3D)
            qkv = qkv.view(num_sel * batch, length, 3, heads, head_dim)
            qkv = qkv.permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (G*B, A, S, D/A)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask,
            dropout_p=self.attn_dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(num_sel, batch * length, dim)
        out = self._map(self.out_proj, out, factors, groups)
        return self.dropout(out).view(num_sel, batch, length, dim)

    def _feed_forward(self, x: Tensor, factors: FactorCache,
                      groups: slice) -> Tensor:
        num_sel, batch, length, dim = x.shape
        flat = x.reshape(num_sel, batch * length, dim)
        hidden = F.gelu(self._map(self.ffn1, flat, factors, groups))
        out = self._map(self.ffn2, hidden, factors, groups)
        return self.dropout(out).view(num_sel, batch, length, dim)

    def forward(self,
                x: Tensor,
                factors: FactorCache = (),
                groups: slice = slice(0, 1),
                attn_mask: Optional[Tensor] = None) -> Tensor:
        """Transform G stacked sequences.

        Args:
            x: (G, B, S, D); the g-th block uses the private weights of group
                ``groups.start + g`` (dense layers apply the same weights to
                all G blocks).
            factors: per-forward factors of every factorized map of the
                network, indexed by each map's ``cache_slot`` and then by the
                first group of ``groups`` (see
                :meth:`SharedLowRankTransformer.prepare_factors`); unused by
                dense layers.
            groups: contiguous range of groups, of length G.
            attn_mask: (G*B, 1, 1, S) bool, True where a key may be attended.

        Returns:
            (G, B, S, D).
        """
        if self.norm_first:
            x = x + self._attention(self.norm1(x), factors, groups, attn_mask)
            x = x + self._feed_forward(self.norm2(x), factors, groups)
        else:
            x = self.norm1(x + self._attention(x, factors, groups, attn_mask))
            x = self.norm2(x + self._feed_forward(x, factors, groups))
        return x


class TransformerStack(nn.Module):
    """``depth`` applications of Transformer layers, optionally one shared.

    Args:
        depth: number of layer applications.
        share_layers: keep one layer and apply it ``depth`` times.
        layer_cfg: keyword arguments of :class:`TransformerLayer`.
    """

    def __init__(self, depth: int, share_layers: bool,
                 layer_cfg: dict) -> None:
        super().__init__()
        self.depth = depth
        self.share_layers = share_layers
        num_distinct = 1 if share_layers else depth
        self.layers = nn.ModuleList(
            TransformerLayer(**layer_cfg) for _ in range(num_distinct))
        if layer_cfg.get('norm_first', False):
            self.final_norm = nn.LayerNorm(
                layer_cfg['embed_dim'],
                eps=layer_cfg.get('layer_norm_eps', 1e-12))
        else:
            self.final_norm = None

    def forward(self,
                x: Tensor,
                factors: FactorCache = (),
                groups: slice = slice(0, 1),
                key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """Args:
            x: (G, B, S, D).
            factors, groups: see :meth:`TransformerLayer.forward`.
            key_padding_mask: (B, S) bool, True at padded positions.

        Returns:
            (G, B, S, D).
        """
        attn_mask = None
        if key_padding_mask is not None:
            attn_mask = (~key_padding_mask)[:, None, None, :]
            attn_mask = attn_mask.repeat(x.shape[0], 1, 1, 1)
        for i in range(self.depth):
            layer = self.layers[0 if self.share_layers else i]
            x = layer(x, factors, groups, attn_mask)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x
