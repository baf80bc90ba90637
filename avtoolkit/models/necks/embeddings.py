"""Token embeddings of the AVBERT Transformers: BOS and mask vectors, and
time (+ modality) embeddings.  Shapes: ``(B, T, D)`` in, ``(B, T+1, D)`` /
``(B, S, D)`` out."""
from typing import Optional

import torch
from torch import Tensor, nn

class ClipTokens(nn.Module):
    """BOS vector and mask embedding of one modality.

    Args:
        embed_dim: D.
        init_std: std of their normal init.
    """

    def __init__(self, embed_dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.bos = nn.Parameter(torch.randn(embed_dim) * init_std)
        self.mask_token = nn.Parameter(torch.randn(embed_dim) * init_std)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Replace masked clips by the mask embedding and prepend BOS.

        Args:
            x: (B, T, D) clip embeddings.
            mask: (B, T) bool, True where the clip is masked, or None.

        Returns:
            (B, T+1, D); index 0 is BOS (never masked).
        """
        if mask is not None:
            x = torch.where(mask.unsqueeze(-1), self.mask_token.to(x.dtype), x)
        bos = self.bos.to(x.dtype).expand(x.shape[0], 1, x.shape[-1])
        return torch.cat([bos, x], dim=1)


class TimeEmbedding(nn.Module):
    """``LN(x_t + p_t [+ m])`` followed by dropout.

    Args:
        embed_dim: D.
        num_positions: rows of the time table (positions 0..num_positions-1).
        num_modalities: rows of the modality table, 0 for none.
        layer_norm_eps: epsilon of the LayerNorm.
        dropout: dropout after the LayerNorm.
        init_std: std of the normal init of the tables.
    """

    def __init__(self,
                 embed_dim: int,
                 num_positions: int,
                 num_modalities: int = 0,
                 layer_norm_eps: float = 1e-12,
                 dropout: float = 0.1,
                 init_std: float = 0.02) -> None:
        super().__init__()
        self.time = nn.Parameter(torch.randn(num_positions, embed_dim) *
                                 init_std)
        if num_modalities > 0:
            self.modality = nn.Parameter(
                torch.randn(num_modalities, embed_dim) * init_std)
        else:
            self.modality = None
        self.norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, modality: Optional[int] = None) -> Tensor:
        """Args:
            x: (B, S, D), position s gets time embedding s.
            modality: row of the modality table to add (needed iff the module
                has one).

        Returns:
            (B, S, D).
        """
        length = x.shape[1]
        if length > self.time.shape[0]:
            raise ValueError(f'sequence of length {length} is longer than the '
                             f'time table ({self.time.shape[0]} positions)')
        x = x + self.time[:length].to(x.dtype)
        if self.modality is not None:
            if modality is None:
                raise ValueError('this embedding needs a modality index')
            x = x + self.modality[modality].to(x.dtype)
        elif modality is not None:
            raise ValueError('this embedding has no modality table')
        return self.dropout(self.norm(x))
