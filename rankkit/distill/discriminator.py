"""The quality discriminator (after QCRD): a small network trained online to tell
teacher-consistent negatives (hard negatives the teacher scores low) from self-adversarial ones
(documents an earlier student ranked high and the teacher scores low). Its detached
probabilities weight each negative in the contrastive loss: a negative counts as much as the
discriminator is sure of its role, so items whose role is ambiguous count less."""

from __future__ import annotations

import torch
import torch.nn.functional as F

FEATURES = ("teacher_z", "student_z", "source_rank")  # per negative, see item_features


def item_features(teacher_z: torch.Tensor, student_scores: torch.Tensor, source_rank: torch.Tensor) -> torch.Tensor:
    """[B, n, 3] features of each negative: the teacher's z-score among the query's candidates, the
    current student's score standardised within the list (detached) and the candidate source's
    rank as a share of the list depth."""
    student = student_scores.detach()
    spread = student.std(dim=-1, keepdim=True).clamp_min(1e-6) if student.size(-1) > 1 else torch.ones_like(student)
    student_z = (student - student.mean(dim=-1, keepdim=True)) / spread
    return torch.stack([teacher_z, student_z, source_rank], dim=-1)


class Discriminator(torch.nn.Module):
    """P(teacher-consistent | item features): a two-layer perceptron."""

    def __init__(self, features: int = len(FEATURES), hidden: int = 16):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits, shape features.shape[:-1]."""
        return self.net(features).squeeze(-1)


def discriminator_loss(logits: torch.Tensor, self_adversarial: torch.Tensor) -> torch.Tensor:
    """BCE with target 1 for teacher-consistent negatives and 0 for self-adversarial ones."""
    return F.binary_cross_entropy_with_logits(logits, (~self_adversarial).to(logits.dtype))


def role_weights(consistent_probability: torch.Tensor, self_adversarial: torch.Tensor) -> torch.Tensor:
    """Each negative's weight: the probability the discriminator gives its own role (p for a
    teacher-consistent negative, 1 - p for a self-adversarial one), divided by the mean of these
    over the batch, so weights average 1 and only shift emphasis between negatives. Detached."""
    p = consistent_probability.detach()
    own = torch.where(self_adversarial, 1.0 - p, p)
    return own / own.mean().clamp_min(1e-6)
