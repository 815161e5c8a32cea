"""Pointwise binary cross-entropy on logits (monoBERT, Nogueira and Cho, 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pointwise_bce_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of BCE(sigmoid(score), label) over all pairs.

    Args:
        scores: [B, 1 + n] logits, positive in column 0 (or any shape matching labels).
        labels: same shape, 1.0 for relevant pairs and 0.0 for negatives.

    Sibling losses: softmax_cross_entropy_loss (listwise), info_nce_loss (bi-encoder).
    """
    return F.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype))
