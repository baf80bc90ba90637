"""InfoNCE with explicit negatives, the loss of masked embedding prediction.

Paper section 2.1, Eqs. 4-5: the cross-entropy of picking the positive among
the positive and its ``K`` negatives, with compatibilities given as dot
products of projected queries and targets.  :func:`info_nce` is the
function; :class:`InfoNCELoss` the registered, parameter-free module that
:class:`~avtoolkit.models.heads.MEPHead` builds from its ``loss`` config.
"""
from typing import Tuple

import torch
from torch import Tensor, nn

from avtoolkit.registry import MODELS

__all__ = ['info_nce', 'InfoNCELoss']


def info_nce(queries: Tensor, positives: Tensor, pool: Tensor,
             negatives: Tensor) -> Tuple[Tensor, Tensor]:
    """InfoNCE with explicit negatives, computed in float32.

    Args:
        queries: ``Tensor[M, P]``, ``FFN(o_t)`` of ``M`` predictions.
        positives: ``Tensor[M, P]``, ``W_I x_t`` of their positives.
        pool: ``Tensor[N, P]``, ``W_I x`` of every row of the target pool.
        negatives: ``LongTensor[M, K]``, rows of ``pool``.

    Returns:
        ``(loss, correct)``: the mean loss (scalar) and ``BoolTensor[M]``,
        whether the positive logit exceeds all ``K`` negative logits.
    """
    with torch.autocast(device_type=queries.device.type, enabled=False):
        queries = queries.float()
        pos_logit = (queries * positives.float()).sum(dim=1, keepdim=True)
        m, k = negatives.shape
        pool = pool.float()
        # Gathering the K negative targets costs M*K*P floats, scoring the
        # whole pool M*N; both give the same logits, take the smaller.
        if m * k * pool.shape[1] <= m * pool.shape[0]:
            neg_logit = torch.einsum('mp,mkp->mk', queries, pool[negatives])
        else:
            neg_logit = (queries @ pool.t()).gather(1, negatives)
        logits = torch.cat([pos_logit, neg_logit], dim=1)
        loss = torch.logsumexp(logits, dim=1) - logits[:, 0]
        correct = (pos_logit > neg_logit).all(dim=1)
    return loss.mean(), correct


@MODELS.register_module()
class InfoNCELoss(nn.Module):
    """:func:`info_nce` as a module (no parameters, no state-dict entries).

    ``forward(queries, positives, pool, negatives)`` takes and returns what
    :func:`info_nce` does.
    """

    def forward(self, queries: Tensor, positives: Tensor, pool: Tensor,
                negatives: Tensor) -> Tuple[Tensor, Tensor]:
        return info_nce(queries, positives, pool, negatives)
