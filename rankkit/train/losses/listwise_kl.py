"""Listwise score distillation: KL divergence from the teacher's softmax over a candidate list to
the student's, at a temperature (Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
Network", 2015; applied to ranking lists as in RankDistil / TAS-B's listwise variants)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def listwise_kl_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over lists of T^2 * KL(softmax(teacher / T) || softmax(student / T)).

    The T^2 factor keeps gradient sizes comparable across temperatures (Hinton et al.).

    Args:
        student: [B, L] student scores of each list's L items.
        teacher: [B, L] teacher scores of the same items (detached here).
        temperature: T; larger spreads the teacher's distribution over more items.

    Sibling losses: margin_mse_loss (pairwise score margins), softmax_cross_entropy_loss (one-hot target).

    Example:
        listwise_kl_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[2.0, 0.0]]))  # 0: same distribution
    """
    target = F.log_softmax(teacher.detach() / temperature, dim=-1)
    predicted = F.log_softmax(student / temperature, dim=-1)
    per_list = (target.exp() * (target - predicted)).sum(-1)
    return per_list.mean() * temperature**2
