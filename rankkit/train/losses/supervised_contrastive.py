"""Supervised contrastive loss (Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu and
Krishnan, "Supervised Contrastive Learning", NeurIPS 2020; the L_out form), with optional pair
weights, as sentiment training uses it against mined opposite-label neighbours."""

from __future__ import annotations

import torch


def supervised_contrastive_loss(
    anchors: torch.Tensor,
    anchor_labels: torch.Tensor,
    pool: torch.Tensor,
    pool_labels: torch.Tensor,
    anchor_in_pool: torch.Tensor | None = None,
    temperature: float = 0.1,
    pair_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over anchors of -(1/sum_p w_ap) sum_p w_ap log(exp(s_ap) / sum_k w_ak exp(s_ak)).

    s_ak = anchor . pool_k / temperature; p runs over the pool items sharing the anchor's label,
    k over every pool item; the anchor's own row in the pool (anchor_in_pool) is left out of both.
    Pool items of the other label only appear in the denominator: the loss pulls same-label
    reviews together and pushes the (mined, hard) opposite-label ones away. A pair weight below 1
    makes a pair count less, on both sides (for pairs involving a suspected mislabelled example).
    Anchors with no same-label item in the pool are left out; with none at all the loss is 0.

    Args:
        anchors: [A, d] normalised embeddings (with gradients).
        anchor_labels: [A] integer labels.
        pool: [P, d] normalised embeddings to contrast with (may include the anchors, and
            detached embeddings of mined negatives).
        pool_labels: [P] integer labels.
        anchor_in_pool: [A] the row of each anchor in the pool, or -1 when it is not there.
        temperature: divides the similarities; SupCon uses 0.1.
        pair_weights: [A, P] non-negative weights, or None for all ones.

    Sibling losses: info_nce_loss (one positive per query), softmax_cross_entropy_loss.
    """
    similarities = anchors @ pool.T / temperature
    weights = torch.ones_like(similarities) if pair_weights is None else pair_weights.to(similarities.dtype)
    if anchor_in_pool is not None:
        rows = torch.nonzero(anchor_in_pool >= 0).squeeze(-1)
        weights = weights.clone()
        weights[rows, anchor_in_pool[rows]] = 0.0
    positive = (anchor_labels.unsqueeze(1) == pool_labels.unsqueeze(0)).to(similarities.dtype) * weights
    # log sum_k w_ak exp(s_ak), stable; a zero weight (clamped, so no row is all -inf) drops the item
    log_denominator = torch.logsumexp(similarities + torch.log(weights.clamp_min(1e-12)), dim=1, keepdim=True)
    log_probability = similarities - log_denominator
    mass = positive.sum(1)
    has_positive = mass > 0
    if not has_positive.any():
        return similarities.sum() * 0.0
    per_anchor = -(positive * torch.where(positive > 0, log_probability, 0.0)).sum(1)[has_positive] / mass[has_positive]
    return per_anchor.mean()
