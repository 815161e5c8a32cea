"""Train a sentiment model: (a) TF-IDF + logistic regression, (b) a fine-tuned transformer
classifier, (c) (b) plus a supervised contrastive term against mined opposite-label neighbours,
with DBPM down-weighting of suspected mislabelled reviews, (d) (c) plus self-training on
unlabelled reviews (confidence-thresholded pseudo-labels).

(b)-(d) run in rankkit's training loop (rankkit.train.loop.fit: warm-up and decay, clipping,
checkpoints on Ctrl-C, JSONL log). Each epoch of (c) and (d) starts by encoding the training
reviews with the current model, indexing them in FAISS and mining each review's nearest
opposite-label reviews through rankkit.mining; their embeddings from that pass are the
(detached) negatives of the contrastive term during the epoch. Mining and the contrastive term use
one embedding (`embedding`): by default the mean-pooled sentence embedding; 'cls', the first
token's state that the classification head reads, measured worse on the Banglish val split. A run
resumed from a checkpoint restarts the loss history (DBPM) from the resumed epoch on.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rankkit.data.files import atomic_dir, atomic_write
from rankkit.errors import RankkitError
from rankkit.sentiment.config import METHODS, SentimentConfig
from rankkit.sentiment.dbpm import LossHistory
from rankkit.sentiment.metrics import sentiment_metrics
from rankkit.sentiment.mining import mine_opposite_label, negatives_by_review
from rankkit.sentiment.model import TfidfSentiment, TransformerSentiment
from rankkit.train.config import TrainConfig, schedule_of
from rankkit.train.loop import fit
from rankkit.train.losses import supervised_contrastive_loss


@dataclass(frozen=True)
class Item:
    """One review in a batch: its training index (None for a pseudo-labelled one), text, label."""

    index: int | None
    text: str
    label: int


class SentimentTask:
    """The Task rankkit's loop trains: cross-entropy (DBPM-weighted for (c), (d)), plus the
    supervised contrastive term, plus pseudo-labelled reviews."""

    def __init__(
        self,
        model: TransformerSentiment,
        texts: Sequence[str],
        labels: Sequence[int],
        config: SentimentConfig,
        unlabeled: Sequence[str] = (),
    ):
        self.model, self.texts, self.labels, self.config = model, list(texts), list(labels), config
        self.unlabeled = list(unlabeled)
        self.parts, self.learning_rates, self.device = {"model": model.model}, {"model": config.lr}, model.device
        self.contrastive = config.method in ("contrastive", "self-training")
        self.history = LossHistory(len(self.texts), k=config.dbpm_k, weight=config.dbpm_weight)
        self.epoch = 0
        self.weights = np.ones(len(self.texts))
        self.bank: torch.Tensor | None = None  # this epoch's embeddings of the training reviews
        self.negatives: list[list[int]] = [[] for _ in self.texts]
        self.epoch_stats: list[dict] = []
        self._cache: dict[int, list[list[Item]]] = {}

    def epoch_batches(self, epoch: int) -> list[list[Item]]:
        """The batches of `epoch` (same count every epoch), prepared once, at the epoch's start."""
        if epoch not in self._cache:
            self._cache = {epoch: self._prepare(epoch)}
        return self._cache[epoch]

    def _prepare(self, epoch: int) -> list[list[Item]]:
        config, started = self.config, time.perf_counter()
        self.epoch = epoch
        stats: dict = {"epoch": epoch}
        if self.contrastive:
            self.weights = self.history.weights(epoch)
            stats["dbpm_flagged"] = int((self.weights < 1).sum())
            embeddings = self.model.encode(self.texts)
            self.bank = torch.from_numpy(embeddings).to(self.device)
            mined = mine_opposite_label(
                embeddings, self.labels, self.texts, config.negatives, config.mining_depth, config.seed
            )
            self.negatives = negatives_by_review(mined, len(self.texts))
            stats["mined_negatives"] = mined.stats["negatives"]
        order = np.random.default_rng([config.seed, epoch]).permutation(len(self.texts))
        batches = [
            [Item(int(i), self.texts[i], self.labels[i]) for i in order[start : start + config.batch_size]]
            for start in range(0, len(order), config.batch_size)
        ]
        if config.method == "self-training" and epoch >= config.self_training_from and self.unlabeled:
            pseudo = self._pseudo_labelled(epoch)
            stats["pseudo_labelled"] = len(pseudo)
            for position, item in enumerate(pseudo):  # spread evenly over the batches
                batches[position % len(batches)].append(item)
        stats["prepare_s"] = round(time.perf_counter() - started, 2)
        self.epoch_stats.append(stats)
        return batches

    def _pseudo_labelled(self, epoch: int) -> list[Item]:
        rng = np.random.default_rng([self.config.seed, epoch, 1])
        sample = rng.permutation(len(self.unlabeled))[: self.config.unlabeled_per_epoch]
        texts = [self.unlabeled[i] for i in sample]
        probability = self.model.predict_proba(texts)
        confident = np.maximum(probability, 1 - probability) >= self.config.confidence
        return [Item(None, text, int(p >= 0.5)) for text, p, keep in zip(texts, probability, confident) if keep]

    def loss(self, batch: list[Item]) -> dict[str, torch.Tensor]:
        logits, embeddings = self.model.forward([item.text for item in batch])
        labels = torch.tensor([item.label for item in batch], device=self.device)
        per_example = F.cross_entropy(logits, labels, reduction="none")
        labelled = [row for row, item in enumerate(batch) if item.index is not None]
        indices = [batch[row].index for row in labelled]
        self.history.record(self.epoch, indices, per_example[labelled].detach().cpu().tolist())  # type: ignore[arg-type]
        weights = torch.tensor(
            [self.weights[item.index] if item.index is not None else self.config.pseudo_weight for item in batch],
            device=self.device,
            dtype=logits.dtype,
        )
        total = (weights * per_example).mean()
        if self.contrastive and labelled:
            total = total + self.config.contrastive_weight * self._contrastive(
                embeddings[labelled], indices, labels[labelled]
            )
        return {"model": total}

    def _contrastive(self, anchors: torch.Tensor, indices: list[int], labels: torch.Tensor) -> torch.Tensor:
        """SupCon over the batch's labelled reviews and their mined neighbours (bank embeddings)."""
        assert self.bank is not None
        mined = sorted({j for i in indices for j in self.negatives[i]} - set(indices))
        pool = torch.cat([anchors, self.bank[mined]])
        members = indices + mined
        pool_labels = torch.tensor([self.labels[j] for j in members], device=self.device)
        member_weights = torch.tensor(self.weights[members], device=self.device, dtype=anchors.dtype)
        anchor_weights = torch.tensor(self.weights[indices], device=self.device, dtype=anchors.dtype)
        pair_weights = anchor_weights.unsqueeze(1) * member_weights.unsqueeze(0)
        return supervised_contrastive_loss(
            anchors,
            labels,
            pool,
            pool_labels,
            torch.arange(len(indices), device=self.device),
            self.config.temperature,
            pair_weights,
        )

    def save(self, folder: Path) -> None:
        self.model.save(folder, method=self.config.method, base_model=self.config.model)


def _check(config: SentimentConfig, labels: Sequence[int]) -> None:
    if config.method not in METHODS:
        raise RankkitError(f"unknown sentiment model {config.method!r}. Fix: use one of {', '.join(METHODS)}")
    if len(set(labels)) < 2:
        raise RankkitError("the training reviews hold one class only. Fix: train on reviews of both labels")


def train_sentiment(
    texts: Sequence[str],
    labels: Sequence[int],
    config: SentimentConfig,
    val: tuple[Sequence[str], Sequence[int]] | None = None,
    unlabeled: Sequence[str] = (),
) -> Path:
    """Train `config.method` and save it in config.output/model; with `val`, write its metrics to
    config.output/val_metrics.json. Returns the model folder."""
    _check(config, labels)
    if config.method == "self-training" and not unlabeled:
        raise RankkitError("self-training needs unlabelled reviews. Fix: pass --unlabeled FILE")
    output = Path(config.output)
    started = time.process_time(), time.perf_counter()
    if config.method == "tfidf":
        if (output / "model").exists() and not config.overwrite:
            raise RankkitError(f"{output} already holds a trained model. Fix: pass another --output, or --overwrite")
        model = TfidfSentiment(config.normalize, config.seed).fit(texts, labels)
        with atomic_dir(output / "model", overwrite=True) as folder:
            model.save(folder)
        folder, epoch_stats = output / "model", []
        predict = model.predict_proba
    else:
        torch.manual_seed(config.seed)  # the new classification head
        classifier = TransformerSentiment(
            config.model, config.device, config.max_length, config.normalize, pooling=config.embedding
        )
        task = SentimentTask(classifier, texts, labels, config, unlabeled)
        evaluate = (
            (
                lambda: {
                    k: v
                    for k, v in sentiment_metrics(val[1], classifier.predict_proba(val[0])).items()
                    if k in ("accuracy", "macro_f1", "auroc")
                }
            )
            if val
            else None
        )
        loop_config = TrainConfig(
            output=str(output),
            model=config.model,
            epochs=config.epochs,
            **schedule_of(config),
            device=config.device,
            precision=config.precision,
            max_length=config.max_length,
            overwrite=config.overwrite,
        )
        folder = fit(task, task.epoch_batches, loop_config, evaluate)  # type: ignore[arg-type]
        epoch_stats, predict = task.epoch_stats, classifier.predict_proba
    cpu_s, wall_s = time.process_time() - started[0], time.perf_counter() - started[1]
    with atomic_write(output / "sentiment_config.json") as out:
        json.dump(
            {
                **asdict(config),
                "train_reviews": len(texts),
                "train_cpu_s": round(cpu_s, 1),
                "train_wall_s": round(wall_s, 1),
                "epochs_log": epoch_stats,
            },
            out,
            indent=2,
        )
    if val is not None:
        with atomic_write(output / "val_metrics.json") as out:
            json.dump(sentiment_metrics(val[1], predict(val[0])), out, indent=2)
    return folder


__all__ = ["METHODS", "SentimentConfig", "SentimentTask", "train_sentiment"]
