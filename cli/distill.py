"""`rankkit distill`: a fast student from a strong teacher (contrastive or plain distillation)."""

from __future__ import annotations

from rankkit.cli.errors import friendly_errors
from rankkit.cli.groups import with_options
from rankkit.distill.config import DistillConfig


@friendly_errors
@with_options
def distill(config: DistillConfig) -> None:
    """Distil a teacher (model or run) into a fast student: self-consistent positives, mined
    hard and self-adversarial negatives, discriminator-weighted contrastive + KL / Margin-MSE."""
    from rankkit.distill import distill as run_distill

    folder = run_distill(config)
    print(f"saved the distilled student to {folder}")
