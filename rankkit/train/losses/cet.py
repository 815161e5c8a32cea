"""CET's weighted pairwise loss (Cai, Guo, Fan, Ai, Zhang and Cheng, "Hard Negatives or False
Negatives: Correcting Pooling Bias in Training Neural Ranking Models", CIKM 2022).

A label y = 1 needs a document to be relevant and selected for judging. CET trains a relevance
model and a selection model together; each model's pairwise softmax loss on a (positive,
negative) pair is weighted by 1 / (1 - sigmoid(s_neg / T)), where s_neg is the OTHER model's
(detached) score of the negative and T is the debias ratio.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cet_pair_weights(other_negative_scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """1 / (1 - sigmoid(s / T)) = 1 + exp(s / T), from the other model's scores, detached.

    As T grows every weight tends to 2: CET becomes plain pairwise training (scaled by 2).
    """
    return 1.0 + torch.exp(other_negative_scores.detach() / temperature)


def weighted_pairwise_softmax_loss(
    positive: torch.Tensor, negatives: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over (positive, negative) pairs of w * -log softmax([s_pos, s_neg])[0].

    -log(e^p / (e^p + e^n)) = softplus(n - p), computed stably.

    Args:
        positive: [B] scores of each group's positive.
        negatives: [B, n] scores of its n negatives (each forms a pair with the positive).
        weights: [B, n] pair weights (cet_pair_weights), or None for unweighted pairwise training.

    Sibling losses: softmax_cross_entropy_loss (one softmax over the whole list).
    """
    losses = F.softplus(negatives - positive.unsqueeze(-1))
    if weights is not None:
        losses = losses * weights
    return losses.mean()
