"""Weighted contrastive loss over one positive and weighted negatives, the contrastive term of
QCRD (Wang et al., "QCRD: Quality-guided Contrastive Rationale Distillation for Large Language
Models", arXiv 2405.13014), adapted from rationales to ranked documents: the positive's term is
scaled by its confidence, each negative's share of the softmax denominator by its weight."""

from __future__ import annotations

import torch


def weighted_contrastive_loss(
    scores: torch.Tensor, negative_weights: torch.Tensor | None = None, confidence: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over lists of -c * log(e^{s_0} / (e^{s_0} + sum_j w_j e^{s_j})).

    With every w_j = 1 and c = 1 this is softmax_cross_entropy_loss. A weight w_j < 1 shrinks a
    negative's push on the positive (a doubtful negative); w_j = 0 removes it.

    Args:
        scores: [B, 1 + n] scores, the positive in column 0, then n negatives.
        negative_weights: [B, n] non-negative weights w_j (detached here), or None for all 1.
        confidence: [B] weight c of each list (the positive's self-consistency), or None for 1.

    Sibling losses: softmax_cross_entropy_loss (unweighted), weighted_pairwise_softmax_loss (CET).

    Example:
        weighted_contrastive_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0]]))  # -log(1/1) = 0
    """
    positive, negatives = scores[:, 0], scores[:, 1:]
    log_weights = (
        torch.zeros_like(negatives) if negative_weights is None else torch.log(negative_weights.detach().clamp_min(0.0))
    )
    denominator = torch.logsumexp(torch.cat([positive.unsqueeze(-1), negatives + log_weights], dim=-1), dim=-1)
    losses = denominator - positive
    if confidence is not None:
        losses = losses * confidence.detach()
    return losses.mean()
