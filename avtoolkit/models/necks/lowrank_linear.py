"""Low-rank linear maps whose rank-O core is private per Transformer.

A :class:`FactorizedLinear` computes, for the Transformer (group) ``g``,

    y = U · Σ_g · (V_g x / ||V_g x||_2) + b

with ``V_g`` (in -> O, no bias) and the orthogonal ``Σ_g`` (O x O) private to
group ``g``, and ``U`` (O -> out) and ``b`` shared by every group.  Section 2.2
of the AVBERT paper uses it with three groups (0: visual, 1: audio,
2: multimodal).

Several parallel maps that read the same input (the query, key and value
projections of an attention layer) can live in one module (``num_maps``); each
map has its own ``U``, ``b``, ``V_g`` and ``Σ_g``, so the parameter count is
the same as that of ``num_maps`` separate modules, but the ``V`` projections
run as a single matrix product.

``Σ_g`` is ``expm(A_g - A_g^T)`` of an unconstrained square parameter ``A_g``
(named ``sigma_generator``).  It is not computed inside :meth:`forward`: the
owner computes every ``Σ`` of a network once per forward pass with
:func:`orthogonal_from_generator` (one batched matrix exponential), turns them
into per-forward factors with :meth:`FactorizedLinear.prepare` and hands
those to each call, because the same layer is applied many times when layers
are shared.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def orthogonal_from_generator(generator: Tensor) -> Tensor:
    """Map square matrices ``A`` (..., O, O) to orthogonal ``expm(A - A^T)``.

    The exponential of a skew-symmetric matrix is a rotation.  It is computed
    in float32 with autocast switched off, whatever the ambient precision, so
    that the result stays orthogonal to single precision under mixed
    precision.

    Args:
        generator: (..., O, O) tensor of any float dtype.

    Returns:
        (..., O, O) float32 tensor of orthogonal matrices.
    """
    if generator.dim() < 2 or generator.shape[-1] != generator.shape[-2]:
        raise ValueError('orthogonal_from_generator expects (..., O, O) '
                         f'matrices, got shape {tuple(generator.shape)}')
    device_type = generator.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        a = generator.float()
        return torch.linalg.matrix_exp(a - a.transpose(-1, -2))


def rotation_block_init_(generator: Tensor,
                         max_angle: float = math.pi / 2) -> Tensor:
    """Initialise ``A`` so that ``expm(A - A^T)`` is a random block rotation.

    Consecutive coordinate pairs (2i, 2i+1) are rotated by an angle drawn
    uniformly from [-max_angle, max_angle]; with an odd size the last
    coordinate is left alone.  Only entries above the diagonal are set, so
    ``A - A^T`` holds the angle once with each sign.

    Args:
        generator: (..., O, O) parameter, filled in place.
        max_angle: largest absolute rotation angle in radians.
    """
    size = generator.shape[-1]
    with torch.no_grad():
        generator.zero_()
        num_pairs = size // 2
        if num_pairs == 0:
            return generator
        angles = torch.empty(
            generator.shape[:-2] + (num_pairs, ), dtype=generator.dtype,
            device=generator.device).uniform_(-max_angle, max_angle)
        idx = torch.arange(num_pairs, device=generator.device) * 2
        generator[..., idx, idx + 1] = angles
    return generator


class FactorizedLinear(nn.Module):
    """``num_maps`` low-rank maps, ``V``/``Σ`` private per group, ``U`` shared.

    Args:
        in_features: input size N.
        out_features: output size M of each map.
        rank: the rank O of the factorization.
        num_groups: number of groups (Transformers) with private ``V``, ``Σ``.
        num_maps: number of parallel maps reading the same input.
        eps: floor of the norm in the l2 normalisation of ``V x``.
        init_std: standard deviation of the normal init of ``U`` and ``V``.

    Parameters (all counted by ``parameters()``):
        weight_u: (num_maps, out, O), shared.
        bias: (num_maps, out), shared.
        weight_v: (num_groups, num_maps, O, in), private.
        sigma_generator: (num_groups, num_maps, O, O), private; ``Σ`` is
            ``expm(A - A^T)`` of each (O, O) slice.
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 rank: int,
                 num_groups: int,
                 num_maps: int = 1,
                 eps: float = 1e-12,
                 init_std: float = 0.02) -> None:
        super().__init__()
        for name, value in (('in_features', in_features),
                            ('out_features', out_features), ('rank', rank),
                            ('num_groups', num_groups),
                            ('num_maps', num_maps)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f'{name} must be a positive int, got {value!r}')
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.num_groups = num_groups
        self.num_maps = num_maps
        self.eps = eps
        self.init_std = init_std
        # Position of this module in the per-forward cache of its owner.
        self.cache_slot: Optional[int] = None
        self.weight_u = nn.Parameter(torch.empty(num_maps, out_features, rank))
        self.bias = nn.Parameter(torch.empty(num_maps, out_features))
        self.weight_v = nn.Parameter(
            torch.empty(num_groups, num_maps, rank, in_features))
        self.sigma_generator = nn.Parameter(
            torch.empty(num_groups, num_maps, rank, rank))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight_u, std=self.init_std)
        nn.init.zeros_(self.bias)
        nn.init.normal_(self.weight_v, std=self.init_std)
        rotation_block_init_(self.sigma_generator)

    def sigma(self) -> Tensor:
        """``Σ`` of every group and map, (num_groups, num_maps, O, O), float32.

        Convenience for tests and inspection; a network computes all ``Σ`` of
        its layers in one batched call instead.
        """
        return orthogonal_from_generator(self.sigma_generator)

    def _check_groups(self, groups: slice) -> Tuple[int, int]:
        start = 0 if groups.start is None else groups.start
        stop = self.num_groups if groups.stop is None else groups.stop
        if groups.step not in (None, 1) or not \
                0 <= start < stop <= self.num_groups:
            raise ValueError(f'groups must be a non-empty contiguous slice '
                             f'of range({self.num_groups}), got {groups}')
        return start, stop

    def prepare(self, rotations: Tensor, groups: slice,
                fold: bool) -> Tuple[Tensor, Optional[Tensor]]:
        """Per-forward factors of the groups ``groups``.

        ``Σ`` is orthogonal, so it preserves norms and
        ``Σ normalize(V x) = normalize((Σ V) x)``.  The rotation can therefore
        either be applied to every token (cost O^2 per token) or folded once
        into ``V`` (cost O^2 * in per group); the owner picks the cheaper one
        from the number of tokens it will transform.

        Args:
            rotations: (num_groups, num_maps, O, O) orthogonal ``Σ`` of this
                module (from :func:`orthogonal_from_generator`).
            groups: contiguous range of G groups.
            fold: fold ``Σ`` into ``V``.

        Returns:
            ``(v, sigma)``: ``v`` (G, num_maps*O, in) is ``V`` (or ``Σ V`` when
            folded) of the selected groups; ``sigma`` is None when folded, else
            (G, num_maps, O, O).
        """
        start, stop = self._check_groups(groups)
        expected = (self.num_groups, self.num_maps, self.rank, self.rank)
        if tuple(rotations.shape) != expected:
            raise ValueError(f'rotations must have shape {expected}, got '
                             f'{tuple(rotations.shape)}')
        num_sel = stop - start
        weight_v = self.weight_v[start:stop]
        sigma = rotations[start:stop]
        if fold:
            folded = torch.matmul(sigma.to(weight_v.dtype), weight_v)
            return folded.reshape(num_sel, -1, self.in_features), None
        return weight_v.reshape(num_sel, -1, self.in_features), sigma

    def forward(self, x: Tensor, factors: Tuple[Tensor,
                                                Optional[Tensor]]) -> Tensor:
        """Apply the maps to G stacked inputs.

        Args:
            x: (G, N, in); the g-th block is transformed with the private
                weights of the g-th selected group.
            factors: the output of :meth:`prepare` for those groups.

        Returns:
            (G, N, out) when ``num_maps == 1``, else (num_maps, G, N, out).
        """
        weight_v, sigma = factors
        num_sel = weight_v.shape[0]
        if x.dim() != 3 or x.shape[0] != num_sel or \
                x.shape[-1] != self.in_features:
            raise ValueError(
                f'expected input of shape ({num_sel}, N, {self.in_features}), '
                f'got {tuple(x.shape)}')
        k, rank = self.num_maps, self.rank
        n = x.shape[1]

        # Private projection onto the rank-O sphere: (G, N, k, O).
        h = torch.bmm(x, weight_v.transpose(1, 2).to(x.dtype))
        h = F.normalize(h.view(num_sel, n, k, rank), dim=-1, eps=self.eps)

        # Private rotation (unless folded into V), to (k, G*N, O).
        if k == 1:
            h = h.view(num_sel, n, rank)
            if sigma is not None:
                h = torch.bmm(h, sigma[:, 0].transpose(1, 2).to(h.dtype))
            h = h.view(1, num_sel * n, rank)
        else:
            h = h.transpose(1, 2)  # (G, k, N, O)
            if sigma is not None:
                h = torch.matmul(h, sigma.transpose(-1, -2).to(h.dtype))
            h = h.transpose(0, 1).reshape(k, num_sel * n, rank)

        # Shared expansion of all groups in one product: (k, G*N, out).
        out = torch.baddbmm(
            self.bias.unsqueeze(1).to(h.dtype), h,
            self.weight_u.transpose(1, 2).to(h.dtype))
        if k == 1:
            return out.view(num_sel, n, self.out_features)
        return out.view(k, num_sel, n, self.out_features)

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, '
                f'out_features={self.out_features}, rank={self.rank}, '
                f'num_groups={self.num_groups}, num_maps={self.num_maps}')
