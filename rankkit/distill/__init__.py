"""Contrastive distillation on the mining core (after QCRD): a fast student from a strong teacher.

Positive knowledge: Plackett-Luce samples of the teacher's ranking, kept by self-consistency.
Negative knowledge: teacher-denoised hard negatives and self-adversarial negatives from the
student's earlier snapshots, both through rankkit.mining. Loss: a discriminator-weighted
contrastive term plus listwise KL or Margin-MSE; plain distillation is the same path without the
contrastive term."""

from rankkit.distill.config import DistillConfig, NegativeConfig, PositiveConfig
from rankkit.lazy import lazy_attributes

__getattr__ = lazy_attributes(__name__, {"distill": "rankkit.distill.pipeline"})
__all__ = ["DistillConfig", "NegativeConfig", "PositiveConfig", "distill"]
