"""Random pairings of a batch for correct pair prediction.

:func:`make_derangement` pairs every sequence with another one (the
mismatched audio-visual pairs); :func:`sample_positions` picks the clip
positions whose outputs the pair classifiers score.
"""
from typing import Optional, Union

import torch
from torch import Tensor

__all__ = ['make_derangement', 'sample_positions']


def make_derangement(n: int,
                     generator: Optional[torch.Generator] = None,
                     device: Union[str, torch.device, None] = None) -> Tensor:
    """A random permutation of ``range(n)`` without fixed points.

    A uniformly random permutation ``s`` and a shift ``k`` uniform in
    ``[1, n - 1]`` give ``perm[s[i]] = s[(i + k) mod n]``: no element maps to
    itself because ``k`` is not a multiple of ``n``.  (The result is uniform
    over the permutations whose cycles all have the length ``n / gcd(n, k)``,
    not over all derangements; any derangement balances the CPP classes.)

    Args:
        n: the batch size, at least 2.
        generator: optional ``torch.Generator``.
        device: device of the result (default: the generator's, else CPU).

    Returns:
        ``LongTensor[n]``.
    """
    if n < 2:
        raise ValueError(f'a derangement needs at least 2 elements, got {n}')
    gen_device = generator.device if generator is not None else (
        device if device is not None else 'cpu')
    order = torch.randperm(n, generator=generator, device=gen_device)
    shift = torch.randint(1, n, (1, ), generator=generator, device=gen_device)
    perm = torch.empty_like(order)
    perm[order] = order[(torch.arange(n, device=gen_device) + shift) % n]
    return perm.to(gen_device if device is None else device)


def sample_positions(batch_size: int,
                     seq_len: int,
                     num_positions: int,
                     generator: Optional[torch.Generator] = None,
                     device: Union[str, torch.device, None] = None) -> Tensor:
    """Distinct random clip positions per sequence, in ``[1, seq_len]``.

    Returns:
        ``LongTensor[batch_size, num_positions]`` (Transformer positions, so
        BOS = 0 is excluded).
    """
    if not 0 <= num_positions <= seq_len:
        raise ValueError(f'num_positions={num_positions} must lie in '
                         f'[0, {seq_len}]')
    gen_device = generator.device if generator is not None else (
        device if device is not None else 'cpu')
    scores = torch.rand((batch_size, seq_len), generator=generator,
                        device=gen_device)
    pos = scores.topk(num_positions, dim=1).indices + 1
    return pos.to(gen_device if device is None else device)
