"""Selection of the masked positions of the MEP task.

The mask is ``BoolTensor[B, T]`` over the clip positions of a batch of ``B``
sequences of ``T`` clips; ``True`` marks a clip whose input embedding the
algorithm replaces (by a mask embedding or otherwise) and whose prediction the
MEP loss scores.  Transformer position ``t + 1`` (``t = 0 .. T - 1``)
corresponds to ``mask[:, t]``; the BOS position 0 is not part of the mask, so
it is never masked.  One mask serves both modalities: the paper masks the
same positions in the audio and visual streams so that the multimodal
Transformer cannot recover a masked clip from the other modality (appendix
B.3).
"""
from typing import Optional, Union

import torch
from torch import Tensor

from avtoolkit.registry import TASK_UTILS

__all__ = ['MaskGenerator', 'generate_mask']


def generate_mask(batch_size: int,
                  seq_len: int,
                  ratio: float = 0.15,
                  mode: str = 'fixed',
                  min_masked: int = 1,
                  generator: Optional[torch.Generator] = None,
                  device: Union[str, torch.device, None] = None) -> Tensor:
    """Draw the masked positions of a batch; see :class:`MaskGenerator`.

    Returns:
        ``BoolTensor[batch_size, seq_len]`` on ``device`` (default: the
        generator's device, else the CPU).
    """
    return MaskGenerator(ratio, mode, min_masked)(batch_size, seq_len,
                                                  generator, device)


@TASK_UTILS.register_module()
class MaskGenerator:
    """Random masked positions, at least ``min_masked`` per sequence.

    Args:
        ratio: fraction of the ``T`` positions to mask (default 0.15, BERT's
            rate; the paper gives none).  For the paper's ``T = 30`` this masks
            5 positions per sequence with ``mode='fixed'`` and 4.5 on average
            with ``mode='bernoulli'``.
        mode: ``'fixed'`` (default) masks exactly
            ``max(min_masked, floor(ratio * T + 0.5))`` positions per sequence,
            drawn uniformly without replacement (BERT's data pipeline also
            picks a fixed count per sequence); the number of MEP targets is
            then the same for every step, which keeps the loss scale steady.
            ``'bernoulli'`` masks each position independently with
            probability ``ratio`` and then, in every sequence with fewer than
            ``min_masked`` masked positions, masks random unmasked ones until
            it has ``min_masked``.
        min_masked: lower bound on masked positions per sequence (default 1,
            so every sequence contributes to the MEP loss).  Must not exceed
            ``T``.
    """

    def __init__(self,
                 ratio: float = 0.15,
                 mode: str = 'fixed',
                 min_masked: int = 1):
        if not 0.0 <= float(ratio) <= 1.0:
            raise ValueError(f'ratio must lie in [0, 1], got {ratio}')
        if mode not in ('fixed', 'bernoulli'):
            raise ValueError(f"mode must be 'fixed' or 'bernoulli', got "
                             f'{mode!r}')
        if int(min_masked) < 0:
            raise ValueError(f'min_masked must be >= 0, got {min_masked}')
        self.ratio = float(ratio)
        self.mode = mode
        self.min_masked = int(min_masked)

    def num_masked(self, seq_len: int) -> int:
        """Positions masked per sequence in ``'fixed'`` mode."""
        count = int(self.ratio * seq_len + 0.5)
        return min(seq_len, max(self.min_masked, count))

    def expected_masked(self, seq_len: int) -> float:
        """Expected masked positions per sequence (exact for both modes)."""
        if self.mode == 'fixed':
            return float(self.num_masked(seq_len))
        # E[max(X, m)] for X ~ Binomial(T, r): add the shortfall below m.
        from math import comb
        expected = self.ratio * seq_len
        for k in range(min(self.min_masked, seq_len + 1)):
            prob = comb(seq_len, k) * self.ratio**k * (1 - self.ratio)**(
                seq_len - k)
            expected += (self.min_masked - k) * prob
        return expected

    def __call__(self,
                 batch_size: int,
                 seq_len: int,
                 generator: Optional[torch.Generator] = None,
                 device: Union[str, torch.device, None] = None) -> Tensor:
        """Draw a mask.

        Args:
            batch_size: ``B``.
            seq_len: ``T`` (clips, BOS excluded).
            generator: optional ``torch.Generator`` (the draw is then a
                function of its state).
            device: device of the mask (default: the generator's, else CPU).

        Returns:
            ``BoolTensor[B, T]``.
        """
        if self.min_masked > seq_len:
            raise ValueError(f'min_masked={self.min_masked} exceeds the '
                             f'sequence length {seq_len}')
        gen_device = generator.device if generator is not None else (
            device if device is not None else 'cpu')
        device = gen_device if device is None else device
        scores = torch.rand((batch_size, seq_len),
                            generator=generator,
                            device=gen_device)
        if self.mode == 'fixed':
            count = self.num_masked(seq_len)
            mask = torch.zeros_like(scores, dtype=torch.bool)
            mask.scatter_(1, scores.topk(count, dim=1).indices, True)
            return mask.to(device)
        mask = scores < self.ratio
        if self.min_masked > 0:
            # Unmasked positions in a random order (second draw), masked ones
            # pushed to the end; the first ``shortfall`` of them get masked.
            order = torch.rand((batch_size, seq_len),
                               generator=generator,
                               device=gen_device)
            order = order.masked_fill(mask, 2.0).argsort(dim=1)
            shortfall = (self.min_masked - mask.sum(dim=1)).clamp_min(0)
            take = torch.arange(seq_len, device=gen_device).unsqueeze(0)
            take = take < shortfall.unsqueeze(1)
            mask = mask.scatter(1, order, take | mask.gather(1, order))
        return mask.to(device)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(ratio={self.ratio}, '
                f'mode={self.mode!r}, min_masked={self.min_masked})')
