"""One distillation step: the student scores each group (a positive, then negatives), and the loss
is a score-distillation term (listwise KL or Margin-MSE against the teacher's scores, over every
item of the group) plus, in contrastive mode, the weighted contrastive term over the positive and
the mined negatives (hard, self-adversarial; not the uniformly drawn candidates), whose negatives
the discriminator weights.

Plain distillation is the same task with mode 'plain': the distillation term only, no
discriminator (its groups carry no mined negatives, see rankkit.distill.groups)."""

from __future__ import annotations

from pathlib import Path

import torch

from rankkit.distill.config import DistillLoss, Mode
from rankkit.distill.discriminator import Discriminator, discriminator_loss, item_features, role_weights
from rankkit.distill.groups import CANDIDATE, DistillGroup
from rankkit.distill.knowledge import SELF_ADVERSARIAL
from rankkit.errors import RankkitError
from rankkit.train.losses import listwise_kl_loss, margin_mse_loss, weighted_contrastive_loss
from rankkit.train.scorers import GroupScorer


def _mined_columns(batch: list[DistillGroup]) -> list[int]:
    """The columns of the mined negatives (every item after the positive that is not a uniformly
    drawn candidate); the groups of a batch share them, as they share their length."""
    layouts = {tuple(kind == CANDIDATE for kind in g.kinds) for g in batch}
    if len(layouts) != 1:
        raise RankkitError(
            "a batch mixes groups with candidates in different places. Fix: build every group "
            "of a round with the same negative counts"
        )
    return [i for i, is_candidate in enumerate(layouts.pop()) if i > 0 and not is_candidate]


class DistillTask:
    def __init__(
        self,
        student: GroupScorer,
        lr: float,
        mode: Mode = "contrastive",
        distill_loss: DistillLoss = "kl",
        kl_temperature: float = 1.0,
        contrastive_weight: float = 1.0,
        distill_weight: float = 1.0,
        discriminator: Discriminator | None = None,
        discriminator_lr: float = 1e-3,
    ):
        if mode not in ("contrastive", "plain"):
            raise RankkitError(f"unknown distillation mode {mode!r}. Fix: use contrastive or plain")
        if distill_loss not in ("kl", "margin-mse"):
            raise RankkitError(f"unknown distillation loss {distill_loss!r}. Fix: use kl or margin-mse")
        if mode == "plain" and discriminator is not None:
            raise RankkitError("plain distillation has no discriminator. Fix: use mode contrastive")
        self.student, self.mode, self.distill_loss = student, mode, distill_loss
        self.kl_temperature, self.contrastive_weight, self.distill_weight = (
            kl_temperature,
            contrastive_weight,
            distill_weight,
        )
        self.discriminator = discriminator
        self.parts: dict[str, torch.nn.Module] = {"student": student.module}
        self.learning_rates = {"student": lr}
        if discriminator is not None:
            discriminator.to(student.device)
            self.parts["discriminator"] = discriminator
            self.learning_rates["discriminator"] = discriminator_lr
        self.device = student.device
        self._last: dict[str, float] = {}

    def _tensor(self, rows) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.float32, device=self.device)

    def loss(self, batch: list[DistillGroup]) -> dict[str, torch.Tensor]:
        scores = self.student.group_scores(batch)
        teacher = self._tensor([g.teacher_scores for g in batch])
        distill = (
            listwise_kl_loss(scores, teacher, self.kl_temperature)
            if self.distill_loss == "kl"
            else margin_mse_loss(scores, teacher)
        )
        self._last = {"distill_loss": float(distill.detach())}
        if self.mode == "plain":
            return {"student": self.distill_weight * distill}
        mined = _mined_columns(batch)
        adversarial = torch.tensor([[g.kinds[i] == SELF_ADVERSARIAL for i in mined] for g in batch], device=self.device)
        confidence = self._tensor([g.confidence for g in batch])
        losses: dict[str, torch.Tensor] = {}
        weights = None
        if self.discriminator is not None:
            features = item_features(
                self._tensor([[g.teacher_z[i] for i in mined] for g in batch]),
                scores[:, mined],
                self._tensor([[g.source_ranks[i] for i in mined] for g in batch]),
            )
            logits = self.discriminator(features)
            weights = role_weights(torch.sigmoid(logits), adversarial)
            losses["discriminator"] = discriminator_loss(logits, adversarial)
            self._last.update(self._weight_record(weights, adversarial, logits))
        contrastive = weighted_contrastive_loss(scores[:, [0, *mined]], weights, confidence)
        self._last.update(
            {
                "contrastive_loss": float(contrastive.detach()),
                "self_adversarial_share": float(adversarial.float().mean()),
                "confidence": float(confidence.mean()),
            }
        )
        losses["student"] = self.contrastive_weight * contrastive + self.distill_weight * distill
        return dict(sorted(losses.items(), key=lambda item: item[0] != "student"))

    @staticmethod
    def _weight_record(weights: torch.Tensor, adversarial: torch.Tensor, logits: torch.Tensor) -> dict[str, float]:
        consistent = ~adversarial
        correct = (logits > 0) == consistent
        record = {"discriminator_accuracy": float(correct.float().mean())}
        for name, mask in (("weight_self_adversarial", adversarial), ("weight_hard", consistent)):
            if mask.any():
                record[name] = float(weights[mask].mean())
        return record

    def log_record(self) -> dict[str, float]:
        """The last micro-batch's loss terms, discriminator accuracy and mean weights per kind, for
        train_log.jsonl."""
        return dict(self._last)

    def save(self, folder: Path) -> None:
        self.student.save(folder)
