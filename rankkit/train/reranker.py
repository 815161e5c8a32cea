"""Fine-tune a cross-encoder reranker on a MinedSet: listwise softmax CE (pairwise with one
negative) or pointwise BCE."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Mapping

import torch

from rankkit.encode.crossencoder import CrossEncoder
from rankkit.encode.device import launcher_device
from rankkit.errors import RankkitError
from rankkit.mining.minedset import MinedSet
from rankkit.train.config import TrainConfig
from rankkit.train.dev import DevSet
from rankkit.train.examples import Group, batches, check_mined, epoch_groups
from rankkit.train.loop import fit
from rankkit.train.losses import pointwise_bce_loss, softmax_cross_entropy_loss
from rankkit.train.scorers import CrossEncoderScorer

RerankerLoss = Literal["softmax", "bce"]


class RerankerTask:
    def __init__(self, model: CrossEncoder, loss: RerankerLoss, lr: float):
        if loss not in ("softmax", "bce"):
            raise RankkitError(f"unknown reranker loss {loss!r}. Fix: use softmax or bce")
        self.model, self.loss_name, self.scorer = model, loss, CrossEncoderScorer(model)
        self.parts, self.learning_rates, self.device = {"model": model.model}, {"model": lr}, model.device

    def loss(self, batch: list[Group]) -> dict[str, torch.Tensor]:
        scores = self.scorer.group_scores(batch)
        if self.loss_name == "softmax":
            return {"model": softmax_cross_entropy_loss(scores)}
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1.0
        return {"model": pointwise_bce_loss(scores, labels)}

    def save(self, folder: Path) -> None:
        self.model.save(folder)


def train_reranker(
    mined: MinedSet,
    doc_texts: Mapping[str, str],
    config: TrainConfig,
    loss: RerankerLoss = "softmax",
    dev: DevSet | None = None,
) -> Path:
    """Fine-tune a cross-encoder from config.model (a new scoring head when it has none); returns
    the saved model folder (loads in sentence-transformers' CrossEncoder)."""
    check_mined(mined, doc_texts, config.negatives)
    torch.manual_seed(config.seed)  # a new scoring head's initial weights: the same seed gives the same model
    task = RerankerTask(
        CrossEncoder(config.model, device=launcher_device(config.device), max_length=config.max_length), loss, config.lr
    )
    evaluate = dev.evaluator(task.scorer.score_texts) if dev else None
    return fit(
        task,
        lambda epoch: batches(epoch_groups(mined, doc_texts, config.negatives, config.seed, epoch), config.batch_size),
        config,
        evaluate,
        options={"trainer": "reranker", "loss": loss},
    )
