"""Fine-tune a bi-encoder on a MinedSet: InfoNCE over in-batch and mined negatives, or the
pairwise softmax loss CET uses (without its weights), for like-for-like comparisons with CET.

Under torchrun, InfoNCE's in-batch negatives are those of the global batch: each process scores
its own queries against the positives and mined negatives of every process."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Mapping

import torch

from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.device import launcher_device
from rankkit.errors import RankkitError
from rankkit.mining.minedset import MinedSet
from rankkit.train.config import TrainConfig
from rankkit.train.dev import DevSet
from rankkit.train.distributed import gather_with_grad
from rankkit.train.examples import Group, batches, check_mined, epoch_groups
from rankkit.train.loop import fit
from rankkit.train.losses import info_nce_loss, weighted_pairwise_softmax_loss
from rankkit.train.scorers import BiEncoderScorer

BiEncoderLoss = Literal["infonce", "pairwise"]


class BiEncoderTask:
    def __init__(self, encoder: BiEncoder, temperature: float, lr: float, loss: BiEncoderLoss = "infonce"):
        if loss not in ("infonce", "pairwise"):
            raise RankkitError(f"unknown bi-encoder loss {loss!r}. Fix: use infonce or pairwise")
        self.encoder, self.temperature, self.loss_name = encoder, temperature, loss
        self.scorer = BiEncoderScorer(encoder, temperature)
        self.parts, self.learning_rates, self.device = {"model": encoder.stack}, {"model": lr}, encoder.device

    def loss(self, batch: list[Group]) -> dict[str, torch.Tensor]:
        if self.loss_name == "pairwise":
            scores = self.scorer.group_scores(batch)
            return {"model": weighted_pairwise_softmax_loss(scores[:, 0], scores[:, 1:])}
        queries = self.encoder.embed([g.query for g in batch], role="query")
        positives, offset = gather_with_grad(self.encoder.embed([g.positive for g in batch]))
        negatives = [text for g in batch for text in g.negatives]
        mined = gather_with_grad(self.encoder.embed(negatives))[0] if negatives else None
        return {"model": info_nce_loss(queries, positives, mined, self.temperature, offset)}

    def save(self, folder: Path) -> None:
        self.encoder.save(folder)


def train_biencoder(
    mined: MinedSet,
    doc_texts: Mapping[str, str],
    config: TrainConfig,
    temperature: float = 0.05,
    dev: DevSet | None = None,
    loss: BiEncoderLoss = "infonce",
) -> Path:
    """Fine-tune config.model; returns the saved model folder (loads in SentenceTransformer)."""
    check_mined(mined, doc_texts, config.negatives)
    encoder = BiEncoder(config.model, device=launcher_device(config.device), max_length=config.max_length)
    task = BiEncoderTask(encoder, temperature, config.lr, loss)
    evaluate = dev.evaluator(task.scorer.score_texts) if dev else None
    return fit(
        task,
        lambda epoch: batches(epoch_groups(mined, doc_texts, config.negatives, config.seed, epoch), config.batch_size),
        config,
        evaluate,
        options={"trainer": "biencoder", "loss": loss, "temperature": temperature},
    )
