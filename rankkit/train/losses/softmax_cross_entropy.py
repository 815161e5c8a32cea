"""Listwise softmax cross-entropy (Localized Contrastive Estimation, Gao, Dai and Callan,
ECIR 2021): with one negative per list it is the pairwise softmax loss of the CET paper."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softmax_cross_entropy_loss(scores: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over lists of -log softmax(scores)[0], the positive being column 0.

    Args:
        scores: [B, 1 + n] scores of each query's positive (column 0) and its n negatives.
        weights: optional [B] weight of each list's loss (CET weights pairs this way); the result is
            the plain mean of the weighted losses.

    Sibling losses: info_nce_loss (bi-encoder), pointwise_bce_loss, cet (weighted pairs).
    """
    losses = -F.log_softmax(scores, dim=-1)[:, 0]
    if weights is not None:
        losses = losses * weights
    return losses.mean()
