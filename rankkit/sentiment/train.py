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
from typing import Callable, Sequence

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
from rankkit.train.loop import fit, is_training_output
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


CONFIG_FILE = "sentiment_config.json"
SENTIMENT_OUTPUT = "a rankkit sentiment output (sentiment_config.json)"


def is_sentiment_output(folder: Path) -> bool:
    """Whether `folder` is what `train_sentiment` writes (its sentiment_config.json names a
    method), or the training output a stopped run left there: what --overwrite may replace."""
    try:
        saved = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return is_training_output(folder)
    return isinstance(saved, dict) and saved.get("method") in METHODS


def train_sentiment(
    texts: Sequence[str],
    labels: Sequence[int],
    config: SentimentConfig,
    val: tuple[Sequence[str], Sequence[int]] | None = None,
    unlabeled: Sequence[str] = (),
) -> Path:
    """Train `config.method` and save it in config.output/model, with config.output/
    sentiment_config.json and, with `val`, its metrics in config.output/val_metrics.json.
    Returns the model folder.

    The output follows the rule of every training output: a new or empty folder is written; an
    existing one only with config.overwrite and only if it is a sentiment output, replaced once the
    new one is complete; without it, a transformer run resumes from its checkpoints."""
    _check(config, labels)
    if config.method == "self-training" and not unlabeled:
        raise RankkitError("self-training needs unlabelled reviews. Fix: pass --unlabeled FILE")
    output = Path(config.output)
    started = time.process_time(), time.perf_counter()

    def finish(folder: Path, predict: Callable[[Sequence[str]], np.ndarray], epoch_stats: list[dict]) -> None:
        cpu_s, wall_s = time.process_time() - started[0], time.perf_counter() - started[1]
        with atomic_write(folder / CONFIG_FILE) as out:
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
            with atomic_write(folder / "val_metrics.json") as out:
                json.dump(sentiment_metrics(val[1], predict(val[0])), out, indent=2)

    if config.method == "tfidf":
        with atomic_dir(
            output, overwrite=config.overwrite, replaceable=is_sentiment_output, what=SENTIMENT_OUTPUT
        ) as folder:
            model = TfidfSentiment(config.normalize, config.seed).fit(texts, labels)
            model.save(folder / "model")
            finish(folder, model.predict_proba, [])
        return output / "model"
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
    return fit(
        task,
        task.epoch_batches,  # type: ignore[arg-type]
        loop_config,
        evaluate,
        finish=lambda folder: finish(folder, classifier.predict_proba, task.epoch_stats),
        replaceable=is_sentiment_output,
        what=SENTIMENT_OUTPUT,
    )


__all__ = ["METHODS", "SentimentConfig", "SentimentTask", "train_sentiment"]
