"""Collective helpers of the models (the one place that talks to other
ranks from inside a forward pass)."""
from typing import List, Tuple

import torch
from mmengine import dist as mm_dist
from torch import Tensor

__all__ = ['gather_sequences']


def gather_sequences(x: Tensor) -> Tuple[Tensor, int]:
    """Concatenate the sequences of every data-parallel rank, in rank order.

    Ranks may hold different numbers of sequences (the last, smaller batch of
    an epoch); they must agree on every other dimension.

    Args:
        x: ``Tensor[B, T, ...]``, the local sequences.

    Returns:
        ``(pool, first)``: ``pool`` is ``Tensor[B_total, T, ...]`` and
        ``first`` the index in ``pool`` of this rank's first sequence, so that
        the local clip ``(b, t)`` is row ``(first + b) * T + t`` of the
        flattened pool.  The rows of other ranks carry no gradient; the local
        rows *are* ``x`` (the same autograd node), so a loss on the pool
        back-propagates into this rank's ``x``.  Outside an initialised
        process group of several ranks this returns ``(x, 0)``.
    """
    world_size = mm_dist.get_world_size()
    if world_size == 1:
        return x, 0
    rank = mm_dist.get_rank()
    shape = torch.tensor(list(x.shape), dtype=torch.long, device=x.device)
    shapes = [s.tolist() for s in mm_dist.all_gather(shape)]
    for r, other in enumerate(shapes):
        if len(other) != x.dim() or other[1:] != list(x.shape[1:]):
            raise ValueError(
                f'gather_sequences: rank {r} holds a tensor of shape {other} '
                f'and rank {rank} one of shape {list(x.shape)}; all but the '
                'first dimension must agree.')
    sizes = [s[0] for s in shapes]
    most = max(sizes)
    local = x.detach()
    if local.shape[0] < most:
        pad = local.new_zeros((most - local.shape[0], ) + tuple(x.shape[1:]))
        local = torch.cat([local, pad], dim=0)
    parts: List[Tensor] = [
        part[:size]
        for part, size in zip(mm_dist.all_gather(local.contiguous()), sizes)
    ]
    parts[rank] = x
    return torch.cat(parts, dim=0), sum(sizes[:rank])
