"""InfoNCE over in-batch and mined negatives (the contrastive loss of DPR, Karpukhin et al.,
EMNLP 2020, with a temperature as in SimCSE / Contriever)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce_loss(
    queries: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    temperature: float = 0.05,
    offset: int = 0,
) -> torch.Tensor:
    """Mean over queries of -log softmax(q . d / temperature) at the query's own positive.

    Each query is scored against every positive in the batch (its own, plus the others' as
    in-batch negatives) and every mined negative of the batch (shared by all queries).

    Args:
        queries: [B, d] query embeddings.
        positives: [P, d] embeddings of the positive passages, P >= offset + B (row offset + i belongs
            to query i; the others are in-batch negatives).
        negatives: [N, d] embeddings of mined negatives, or None for in-batch negatives only.
        temperature: divides the similarities; smaller is sharper.
        offset: query i's positive is positives[offset + i]: a process's queries against the
            positives of every process (rankkit.train.distributed.gather_with_grad).

    Sibling losses: softmax_cross_entropy_loss (cross-encoder, per-query lists), pointwise_bce_loss.
    """
    documents = positives if negatives is None else torch.cat([positives, negatives])
    similarities = queries @ documents.T / temperature
    labels = torch.arange(offset, offset + queries.size(0), device=queries.device)
    return F.cross_entropy(similarities, labels)
