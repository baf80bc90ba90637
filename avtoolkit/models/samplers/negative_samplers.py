"""Negative samplers for the masked embedding prediction (MEP) objective.

Every sampler is a plain callable with one contract::

    indices, pool = sampler(features, generator=None)

* ``features``: ``Tensor[B, T, D]``, the CNN embeddings of a mini-batch of
  ``B`` sequences of ``T`` clips.  The draw only *reads* them (detached,
  under ``torch.no_grad``).
* ``generator``: optional ``torch.Generator``; with one, the draw is a pure
  function of the generator's state (otherwise torch's global RNG is used).  A
  generator on another device than ``features`` is honoured, at the price of
  one host/device copy of the random numbers.
* ``pool``: ``Tensor[B_pool, T, D]``, the candidates: ``features`` itself,
  or with ``gather_across_ranks`` the features of every rank in rank order
  (:func:`~avtoolkit.models.utils.gather_sequences`; the local rows *are*
  ``features``, so a loss on the pool back-propagates into them).
* ``indices``: ``LongTensor[B, T, K]`` on the device of ``features``.  Entry
  ``indices[b, t]`` lists the ``K`` negatives of the positive ``(b, t)`` as
  rows of ``pool.reshape(-1, D)``, where row ``b' * T + t'`` holds clip
  ``t'`` of pool sequence ``b'``.  A positive is never its own negative and,
  unless ``on_small_pool='repeat'`` had to be used, the ``K`` negatives of
  one positive are distinct.

The pool is gathered here, once: the caller scores the returned pool.

The work is vectorised over positives; a Python loop runs only over row
chunks of ``chunk_size`` positives, a knob that bounds the ``chunk x pool``
temporaries (distance matrix, sampling keys) when ``B * T`` is in the
thousands.

Samplers (paper section 2.1 "Negative sampling" and section 3.1):

* :class:`CANSSampler`: content-aware negative sampling, ``mode='similar'``
  (CANS-Similar, the proposed method) or ``mode='dissimilar'``
  (CANS-Dissimilar, the ablation).
* :class:`CurrentSequenceSampler`: negatives from the positive's own sequence.
* :class:`CurrentMiniBatchSampler`: negatives from the whole mini-batch.
"""
from statistics import NormalDist
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from avtoolkit.models.utils.dist import gather_sequences
from avtoolkit.registry import NEGATIVE_SAMPLERS

__all__ = [
    'SampledNegatives', 'BaseNegativeSampler', 'CANSSampler',
    'CurrentSequenceSampler', 'CurrentMiniBatchSampler'
]

# Scale of the keys of candidates that are only used when too few candidates
# of the preferred kind exist (keys in [2 * _FALLBACK_KEY, _FALLBACK_KEY]).
# Preferred keys are ``log(weight) + Gumbel noise`` and never come near it:
# log(weight) >= log(min_weight) (about -20 even for a floor of 1e-9) and the
# clamped Gumbel noise lies in [-4.5, 16.7].
_FALLBACK_KEY = -1.0e4


def _uniform(shape, device, generator: Optional[torch.Generator]) -> Tensor:
    """Uniform [0, 1) float32 noise on ``device`` drawn from ``generator``."""
    if generator is None:
        return torch.rand(shape, device=device)
    noise = torch.rand(shape, generator=generator, device=generator.device)
    return noise.to(device)


def _gumbel(shape, device, generator: Optional[torch.Generator]) -> Tensor:
    """Standard Gumbel noise, finite everywhere (uniforms clamped off 0, 1)."""
    u = _uniform(shape, device, generator)
    u.clamp_(min=torch.finfo(torch.float32).tiny, max=1.0 - 2.0**-24)
    return u.log_().neg_().log_().neg_()


class SampledNegatives(NamedTuple):
    """What a sampler returns (see the module docstring)."""

    indices: Tensor  # LongTensor[B, T, K], rows of pool.reshape(-1, D)
    pool: Tensor  # Tensor[B_pool, T, D], the local rows keep their gradient


class BaseNegativeSampler:
    """Common plumbing: validation, pooling across ranks, chunking.

    Subclasses implement :meth:`_sample_chunk`.

    Args:
        num_negatives: ``K``, the number of negatives per positive.  ``None``
            is allowed by the baselines only (all candidates).
        gather_across_ranks: sample from, and return, the pool of every
            data-parallel rank (see the module docstring).  Default
            ``False``: the paper does not say whether its mini-batch pool was
            global, and a local pool needs no communication.  When ``True``
            a call is a collective operation: every rank must call the
            sampler, in the same order.
        chunk_size: number of positives processed at once; ``None`` = all.
            Bounds the ``chunk x pool`` temporaries.  Results are valid for any
            chunk size but, for the same generator state, not identical across
            chunk sizes.
        on_small_pool: what to do when a positive has fewer than ``K``
            candidates at all: ``'raise'`` (default, a ``ValueError`` naming
            the sizes; silently repeating negatives changes the loss) or
            ``'repeat'`` (every candidate once, in sampled order, then cycled
            again until ``K`` are listed).
    """

    def __init__(self,
                 num_negatives: Optional[int],
                 gather_across_ranks: bool = False,
                 chunk_size: Optional[int] = None,
                 on_small_pool: str = 'raise'):
        if num_negatives is not None and int(num_negatives) < 1:
            raise ValueError(
                f'num_negatives must be >= 1, got {num_negatives}')
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
        if on_small_pool not in ('raise', 'repeat'):
            raise ValueError("on_small_pool must be 'raise' or 'repeat', got "
                             f'{on_small_pool!r}')
        self.num_negatives = None if num_negatives is None else int(
            num_negatives)
        self.gather_across_ranks = bool(gather_across_ranks)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.on_small_pool = on_small_pool

    # -- public -----------------------------------------------------------
    def __call__(self,
                 features: Tensor,
                 generator: Optional[torch.Generator] = None
                 ) -> SampledNegatives:
        """Sample negatives; see the module docstring for the contract.

        Args:
            features: ``Tensor[B, T, D]`` (any float dtype).
            generator: optional ``torch.Generator``.

        Returns:
            ``(indices, pool)``: ``LongTensor[B, T, K]`` of rows of the
            flattened ``pool``, and ``pool`` (``Tensor[B_pool, T, D]``).
        """
        if features.dim() != 3:
            raise ValueError('features must be Tensor[B, T, D], got shape '
                             f'{tuple(features.shape)}')
        # Gathered outside no_grad: the local rows of the pool keep the
        # gradient path of ``features``.
        if self.gather_across_ranks:
            pool, first = gather_sequences(features)
        else:
            pool, first = features, 0
        with torch.no_grad():
            indices = self._sample(features.detach(), pool.detach(), first,
                                   generator)
        return SampledNegatives(indices, pool)

    def _sample(self, local: Tensor, pool: Tensor, first: int,
                generator: Optional[torch.Generator]) -> Tensor:
        """``LongTensor[B, T, K]`` for the local positives ``local`` whose
        first sequence is sequence ``first`` of ``pool``."""
        batch, seq_len, _ = local.shape
        n_query = batch * seq_len
        n_pool = pool.shape[0] * seq_len
        if n_query == 0:
            k = max(0, self.num_outputs(n_pool, seq_len))
            return torch.empty((batch, seq_len, k), dtype=torch.long,
                               device=local.device)
        queries = local.reshape(n_query, -1)
        pool_flat = pool.reshape(n_pool, -1)
        self_rows = first * seq_len + torch.arange(n_query,
                                                   device=local.device)
        step = n_query if self.chunk_size is None else self.chunk_size
        out = [
            self._sample_chunk(queries[s:s + step], pool_flat,
                               self_rows[s:s + step], seq_len, generator)
            for s in range(0, n_query, step)
        ]
        out = torch.cat(out, dim=0)
        return out.reshape(batch, seq_len, out.shape[-1])

    def num_outputs(self, pool_size: int, seq_len: int) -> int:
        """``K`` returned for a flattened pool of ``pool_size`` rows."""
        if self.num_negatives is None:
            raise TypeError(f'{type(self).__name__} needs num_negatives; '
                            'only samplers that define "all candidates" '
                            'accept None')
        return self.num_negatives

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in vars(self).items()
                         if not k.startswith('_'))
        return f'{type(self).__name__}({args})'

    # -- helpers for subclasses -------------------------------------------
    def _sample_chunk(self, queries: Tensor, pool: Tensor, self_rows: Tensor,
                      seq_len: int,
                      generator: Optional[torch.Generator]) -> Tensor:
        """Negatives of a chunk of positives.

        Args:
            queries: ``Tensor[C, D]``, the positives' features.
            pool: ``Tensor[N, D]``, the flattened pool.
            self_rows: ``LongTensor[C]``, row of each positive in ``pool``.
            seq_len: ``T``.
            generator: optional generator.

        Returns:
            ``LongTensor[C, K]`` rows of ``pool``.
        """
        raise TypeError(f'{type(self).__name__} is a base class: a sampler '
                        'must define _sample_chunk')

    def _take(self, keys: Tensor, k: int, n_valid: int) -> Tensor:
        """The ``k`` largest keys per row, following ``on_small_pool``.

        ``keys`` is ``Tensor[C, M]`` with ``-inf`` on the ``M - n_valid``
        entries per row that must never be returned; returns the column
        indices ``LongTensor[C, k]``.
        """
        if n_valid < 1:
            raise ValueError(
                f'{type(self).__name__}: a positive has no candidate negative '
                'at all (the pool holds only the positive itself).')
        if k <= n_valid:
            return keys.topk(k, dim=1).indices
        if self.on_small_pool == 'raise':
            raise ValueError(
                f'{type(self).__name__}: num_negatives={k} but a positive '
                f'has only {n_valid} candidates; lower num_negatives, use a '
                "larger batch, or set on_small_pool='repeat'.")
        order = keys.topk(n_valid, dim=1).indices
        cycle = torch.arange(k, device=keys.device) % n_valid
        return order[:, cycle]


@NEGATIVE_SAMPLERS.register_module()
class CANSSampler(BaseNegativeSampler):
    """Content-aware negative sampling (CANS), paper section 2.1.

    For a positive ``x_i`` (one row of the flattened pool) and every *other*
    row ``x_j``:

    1. ``d_ij = ||x_i - x_j||_2`` in float32;
    2. min-max normalisation over ``j != i``:
       ``n_ij = (d_ij - min_j d_ij) / (max_j d_ij - min_j d_ij)`` in
       ``[0, 1]`` (all zeros when every other row is equally far);
    3. an interval ``[lo_i, hi_i]`` of ``n_ij`` over ``j != i`` keeps the
       *candidates*; rows outside it are "too similar or too different" and
       discarded:

       * ``interval_method='gaussian'`` (default): ``mean_i +/- z * std_i``
         with ``z = Phi^-1((1 + interval) / 2)`` (1.96 for 0.95), the reading
         of the paper's "95% confidence interval";
       * ``'percentile'``: the ``(1 - interval) / 2`` and
         ``(1 + interval) / 2`` quantiles of ``n_i.`` (linear interpolation),
         which always discards about ``1 - interval`` of the rows even when
         the distances are far from normal;

       ``interval >= 1`` keeps every row;
    4. each candidate gets the weight ``w_ij = s_ij ** power + min_weight``
       with the preference score ``s_ij = 1 - n_ij`` for
       ``mode='similar'`` (CANS-Similar: nearer rows more likely) or
       ``s_ij = n_ij`` for ``mode='dissimilar'`` (CANS-Dissimilar).  The
       paper says "using the normalized distance as sampling probability"
       and, for CANS-Similar, that similar instances get "more chance"; the
       two only agree if the probability grows with ``1 - n``, which is what
       ``'similar'`` does.  ``power=1`` (default) is that linear rule;
       larger powers sharpen it.  ``min_weight`` (default ``0.01``) keeps
       every candidate possible (the paper stresses stochasticity): with the
       linear rule the least favoured candidate is about 100 times less
       likely than the most favoured one rather than impossible;
    5. ``K`` candidates are drawn *without replacement* with probabilities
       proportional to ``w`` (successive draws), vectorised with the
       Gumbel-top-k trick: ``top-k_j(log w_ij + G_ij)``.

    Fewer than ``K`` candidates: every candidate is taken, and the list is
    completed with discarded rows, those nearest to the interval first
    (smallest ``max(lo - n, n - hi)``), deterministically.  The positive is
    never returned.  Fewer than ``K`` other rows in the whole pool: see
    ``on_small_pool``.

    Args:
        mode: ``'similar'`` (default, the paper's method) or ``'dissimilar'``.
        num_negatives: ``K`` (default 32).  The paper does not give it.  32 is
            about a quarter of the 119 other clips of the ablation batch
            (4 sequences of 30 clips), so the draw stays stochastic at the
            smallest batch used, and it exceeds the 29 negatives of the
            Current-Sequence baseline.  The chance-level loss is
            ``log(K + 1) = 3.50``.
        interval: coverage of the kept interval, in ``(0, 1]`` (paper: 0.95).
        interval_method: ``'gaussian'`` (default) or ``'percentile'``.
        power: exponent of the preference score (default 1, linear).
        min_weight: additive weight floor, ``> 0`` (default 0.01).
        gather_across_ranks, chunk_size, on_small_pool: see
            :class:`BaseNegativeSampler`.

    Memory: at most three ``chunk x pool`` float32 matrices live at a time
    (the percentile interval reads its bounds from two partial top-k results
    of about ``(1 - interval) / 2`` of the pool each), e.g.
    7680 x 7680 x 4 bytes = 236 MB each for a batch of 256 sequences of 30
    clips without chunking; ``chunk_size`` bounds them.
    """

    def __init__(self,
                 mode: str = 'similar',
                 num_negatives: int = 32,
                 interval: float = 0.95,
                 interval_method: str = 'gaussian',
                 power: float = 1.0,
                 min_weight: float = 0.01,
                 gather_across_ranks: bool = False,
                 chunk_size: Optional[int] = None,
                 on_small_pool: str = 'raise'):
        if num_negatives is None:
            raise ValueError('CANSSampler needs an integer num_negatives')
        super().__init__(num_negatives, gather_across_ranks, chunk_size,
                         on_small_pool)
        if mode not in ('similar', 'dissimilar'):
            raise ValueError("mode must be 'similar' or 'dissimilar', got "
                             f'{mode!r}')
        if not 0.0 < float(interval) <= 1.0:
            raise ValueError(f'interval must lie in (0, 1], got {interval}')
        if interval_method not in ('gaussian', 'percentile'):
            raise ValueError("interval_method must be 'gaussian' or "
                             f"'percentile', got {interval_method!r}")
        if float(power) <= 0:
            raise ValueError(f'power must be > 0, got {power}')
        if not 0.0 < float(min_weight):
            raise ValueError(f'min_weight must be > 0, got {min_weight}')
        self.mode = mode
        self.interval = float(interval)
        self.interval_method = interval_method
        self.power = float(power)
        self.min_weight = float(min_weight)
        self._z = (NormalDist().inv_cdf((1.0 + self.interval) / 2.0)
                   if self.interval < 1.0 else float('inf'))

    def normalized_distances(self, queries: Tensor, pool: Tensor,
                             self_rows: Tensor) -> Tensor:
        """Steps 1-2: ``Tensor[C, N]`` of ``n_ij`` (``nan`` at ``j = i``).

        Args:
            queries: ``Tensor[C, D]``; pool: ``Tensor[N, D]``;
            self_rows: ``LongTensor[C]``, each query's row in ``pool``.
        """
        dist = torch.cdist(queries.float().unsqueeze(0),
                           pool.float().unsqueeze(0)).squeeze(0)
        rows = torch.arange(dist.shape[0], device=dist.device)
        dist[rows, self_rows] = float('inf')
        low = dist.amin(dim=1, keepdim=True)
        dist[rows, self_rows] = float('-inf')
        high = dist.amax(dim=1, keepdim=True)
        dist.sub_(low).div_((high - low).clamp_min(1e-12)).clamp_(0.0, 1.0)
        dist[rows, self_rows] = float('nan')
        return dist

    def interval_bounds(self, norm: Tensor,
                        self_rows: Tensor) -> Tuple[Tensor, Tensor]:
        """Step 3: ``(lo, hi)``, each ``Tensor[C, 1]``, from ``n`` over j != i.

        Args:
            norm: ``Tensor[C, N]`` from :meth:`normalized_distances`.
            self_rows: ``LongTensor[C]``.
        """
        n_other = norm.shape[1] - 1
        if self.interval >= 1.0 or n_other < 1:
            inf = norm.new_full((norm.shape[0], 1), float('inf'))
            return -inf, inf
        rows = torch.arange(norm.shape[0], device=norm.device)
        # ``norm`` is modified in place at the positives' entries only and
        # restored to nan before returning (no full-size copy is made).
        if self.interval_method == 'gaussian':
            norm[rows, self_rows] = 0.0
            total = norm.sum(dim=1, keepdim=True, dtype=torch.float64)
            sq_total = torch.linalg.vector_norm(
                norm, dim=1, keepdim=True, dtype=torch.float64).square()
            norm[rows, self_rows] = float('nan')
            mean = total / n_other
            std = (sq_total / n_other - mean.square()).clamp_min(0.0).sqrt()
            lo, hi = mean - self._z * std, mean + self._z * std
            return lo.float(), hi.float()
        # Percentiles with linear interpolation between the order statistics
        # ``floor(q (n - 1))`` and the next one, read from a partial sort
        # (top-k from the nearer end) of the other instances.
        bounds = []
        for q, largest, fill in (((1.0 - self.interval) / 2.0, False, 'inf'),
                                 ((1.0 + self.interval) / 2.0, True, '-inf')):
            pos = q * (n_other - 1)
            below = int(pos)
            above = min(below + 1, n_other - 1)
            frac = pos - below
            # Ascending rank r is rank r from the bottom, n_other - 1 - r from
            # the top; the positive is pushed past the end it is read from.
            ranks = (below, above) if not largest else (n_other - 1 - below,
                                                        n_other - 1 - above)
            norm[rows, self_rows] = float(fill)
            part = norm.topk(max(ranks) + 1, dim=1, largest=largest).values
            low_val = part[:, ranks[0]:ranks[0] + 1]
            high_val = part[:, ranks[1]:ranks[1] + 1]
            bounds.append(low_val * (1.0 - frac) + high_val * frac)
        norm[rows, self_rows] = float('nan')
        return bounds[0], bounds[1]

    def candidate_weights(self, queries: Tensor, pool: Tensor,
                          self_rows: Tensor) -> Tuple[Tensor, Tensor]:
        """Steps 1-4: sampling weights and distances to the interval.

        Args:
            queries: ``Tensor[C, D]``; pool: ``Tensor[N, D]``;
            self_rows: ``LongTensor[C]``, each query's row in ``pool``.

        Returns:
            ``(weights, gap)``, each ``Tensor[C, N]`` float32: ``weights`` is
            ``s ** power + min_weight`` for candidates and 0 for discarded rows
            and the positive; ``gap`` is ``max(lo - n, n - hi, 0)`` (0 for
            candidates, ``nan`` at the positive).
        """
        norm = self.normalized_distances(queries, pool, self_rows)
        lo, hi = self.interval_bounds(norm, self_rows)
        gap = (lo - norm).clamp_min_(0.0)
        torch.maximum(gap, norm - hi, out=gap)
        if self.mode == 'similar':
            norm.neg_().add_(1.0)
        weights = norm if self.power == 1.0 else norm.pow_(self.power)
        weights.add_(self.min_weight)
        weights.masked_fill_(~(gap == 0), 0.0)
        return weights, gap

    def _sample_chunk(self, queries, pool, self_rows, seq_len, generator):
        weights, gap = self.candidate_weights(queries, pool, self_rows)
        outside = weights == 0
        keys = weights.log_().add_(_gumbel(weights.shape, weights.device,
                                           generator))
        # Fallback keys ``F * (1 + gap)`` in [2F, F] keep the gap order to a
        # relative float32 precision (an additive offset would round it).
        keys[outside] = gap[outside].add_(1.0).mul_(_FALLBACK_KEY)
        rows = torch.arange(keys.shape[0], device=keys.device)
        keys[rows, self_rows] = float('-inf')
        k = self.num_outputs(pool.shape[0], seq_len)
        return self._take(keys, k, pool.shape[0] - 1)


@NEGATIVE_SAMPLERS.register_module()
class CurrentSequenceSampler(BaseNegativeSampler):
    """Negatives from the positive's own sequence ("Current-Sequence").

    Args:
        num_negatives: ``K``; ``None`` (default, the paper's baseline) takes
            all ``T - 1`` other clips of the sequence, in temporal order.  An
            integer draws ``K`` of them uniformly without replacement.
        gather_across_ranks: return the gathered pool, the indices shifted
            into it (the candidates stay in the local sequence).
        chunk_size, on_small_pool: see :class:`BaseNegativeSampler`.
    """

    def __init__(self,
                 num_negatives: Optional[int] = None,
                 gather_across_ranks: bool = False,
                 chunk_size: Optional[int] = None,
                 on_small_pool: str = 'raise'):
        super().__init__(num_negatives, gather_across_ranks, chunk_size,
                         on_small_pool)

    def num_outputs(self, pool_size, seq_len):
        if self.num_negatives is None:
            return seq_len - 1
        return self.num_negatives

    def _sample_chunk(self, queries, pool, self_rows, seq_len, generator):
        device = queries.device
        start = self_rows - self_rows % seq_len  # first row of the sequence
        offset = (self_rows % seq_len).unsqueeze(1)  # (C, 1)
        if self.num_negatives is None:
            if seq_len < 2:
                raise ValueError('CurrentSequenceSampler: sequences of one '
                                 'clip have no other clip to sample.')
            cols = torch.arange(seq_len - 1, device=device).unsqueeze(0)
            local = cols + (cols >= offset).long()
        else:
            keys = _uniform((queries.shape[0], seq_len), device, generator)
            keys.scatter_(1, offset, float('-inf'))
            local = self._take(keys, self.num_negatives, seq_len - 1)
        return start.unsqueeze(1) + local


@NEGATIVE_SAMPLERS.register_module()
class CurrentMiniBatchSampler(BaseNegativeSampler):
    """Negatives from the whole mini-batch pool ("Current-MiniBatch").

    Args:
        num_negatives: ``K`` drawn uniformly without replacement from the
            ``N - 1`` other rows of the pool (default 32, as for
            :class:`CANSSampler`, so the two compare at equal ``K``); ``None``
            takes all ``N - 1`` others (the paper's baseline), in pool order.
        gather_across_ranks, chunk_size, on_small_pool: see
            :class:`BaseNegativeSampler`.
    """

    def __init__(self,
                 num_negatives: Optional[int] = 32,
                 gather_across_ranks: bool = False,
                 chunk_size: Optional[int] = None,
                 on_small_pool: str = 'raise'):
        super().__init__(num_negatives, gather_across_ranks, chunk_size,
                         on_small_pool)

    def num_outputs(self, pool_size, seq_len):
        if self.num_negatives is None:
            return pool_size - 1
        return self.num_negatives

    def _sample_chunk(self, queries, pool, self_rows, seq_len, generator):
        n_pool = pool.shape[0]
        if self.num_negatives is None:
            if n_pool < 2:
                raise ValueError('CurrentMiniBatchSampler: the pool holds '
                                 'only the positive itself.')
            cols = torch.arange(n_pool - 1, device=queries.device)
            return cols.unsqueeze(0) + (cols.unsqueeze(0)
                                        >= self_rows.unsqueeze(1)).long()
        keys = _uniform((queries.shape[0], n_pool), queries.device, generator)
        keys.scatter_(1, self_rows.unsqueeze(1), float('-inf'))
        return self._take(keys, self.num_negatives, n_pool - 1)
