"""Margin-MSE (Hofstaetter, Althammer, Schroeder, Sertkan and Hanbury, "Improving Efficient
Neural Ranking Models with Cross-Architecture Knowledge Distillation", arXiv 2010.02666, 2020):
the student learns the teacher's score margin between a positive and a negative, not its scores."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def margin_mse_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over (list, negative) of ((s_0 - s_j) - (t_0 - t_j))^2, item 0 being the positive.

    Only margins are matched, so the student's scores may sit on any offset from the teacher's.

    Args:
        student: [B, 1 + n] student scores, positive in column 0.
        teacher: [B, 1 + n] teacher scores of the same items (detached here).

    Sibling losses: listwise_kl_loss (whole-list distributions).

    Example:
        margin_mse_loss(torch.tensor([[3.0, 1.0]]), torch.tensor([[1.0, 0.0]]))  # (2 - 1)^2 = 1
    """
    student_margins = student[:, :1] - student[:, 1:]
    teacher_margins = (teacher[:, :1] - teacher[:, 1:]).detach()
    return F.mse_loss(student_margins, teacher_margins)
