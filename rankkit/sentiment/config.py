"""The sentiment commands' configuration: review columns, training and adaptation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from rankkit.options import Inference, Output, Runtime, option, same_option
from rankkit.sentiment.data import DEFAULT_THRESHOLD, LabelSpec
from rankkit.train.config import Epochs, Schedule

Method = Literal["tfidf", "transformer", "contrastive", "self-training"]
METHODS: tuple[str, ...] = get_args(Method)
DEFAULT_MAX_LENGTH = 128
SENTIMENT_MODEL_HELP = "Encoder checkpoint to start from: folder or hub id (default: the packaged MiniLM)."


@dataclass(frozen=True, kw_only=True)
class ReviewColumns:
    """Where a reviews file (CSV or JSONL) keeps the text and the label, and what to do with bad rows."""

    panel: ClassVar[str] = "Review columns"

    text_column: str = option("text", "Column (CSV header or JSON key) holding the review text.")
    label_column: str = option("label", "Column holding the label: 1/0, positive/negative or pos/neg.")
    rating_column: str | None = option(None, "Read a star rating from this column instead of a label.")
    threshold: float = option(DEFAULT_THRESHOLD, "With --rating-column: a rating above this is positive.")
    strict: bool = option(False, "Stop at the first unusable row instead of leaving it out (and reporting it).")

    def label_spec(self) -> LabelSpec:
        return LabelSpec(self.text_column, self.label_column, self.rating_column, self.threshold)


@dataclass(frozen=True, kw_only=True)
class SentimentModelRun(Inference):
    """A trained sentiment model to apply (`sentiment eval`, `sentiment predict`), where it runs."""

    panel: ClassVar[str] = "Sentiment model"

    model: str = option(help="Sentiment model folder (from `rankkit sentiment train`).")


@dataclass(frozen=True, kw_only=True)
class SentimentConfig(Output, Epochs, Schedule, Runtime):
    """A sentiment classifier's training."""

    output: str = same_option(
        Output, "output", help="Folder: model/, sentiment_config.json, train_log.jsonl, val_metrics.json."
    )
    method: Method = option(
        "contrastive",
        "tfidf: char n-gram TF-IDF + logistic regression (seconds); "
        "transformer: fine-tuned classifier; contrastive: transformer + "
        "supervised contrastive term on mined opposite-label neighbours, "
        "DBPM-weighted; self-training: contrastive + pseudo-labelled "
        "--unlabeled reviews.",
    )
    model: str = option("default", SENTIMENT_MODEL_HELP)
    normalize: bool = option(
        True,
        "Normalise code-mixed text (NFC, case, elongations, punctuation runs, emoji "
        "tokens); --no-normalize keeps it as is.",
    )
    epochs: int = same_option(Epochs, "epochs", 4)
    batch_size: int = same_option(Schedule, "batch_size", 16)
    lr: float = same_option(Schedule, "lr", 5e-5)
    max_length: int = option(DEFAULT_MAX_LENGTH, "Token limit per review.", low=1)
    # (c): supervised contrastive term against mined opposite-label neighbours
    contrastive_weight: float = option(0.5, "Weight of the supervised contrastive term.", low=0)
    temperature: float = option(0.1, "Temperature of the supervised contrastive term.", low=0, low_open=True)
    embedding: Literal["mean", "cls"] = option(
        "mean",
        "Embedding of the contrastive term and the mining: mean "
        "(mean-pooled tokens) or cls (the first token, which the "
        "classification head reads).",
    )
    negatives: int = option(4, "Mined opposite-label neighbours per review.", low=1)
    mining_depth: int = 64  # nearest reviews searched for them
    dbpm_k: float = 2.0  # flag a review whose mean loss > mean + k std
    dbpm_weight: float = 0.1  # the weight of a flagged review
    # (d): self-training on unlabelled reviews
    confidence: float = option(0.9, "Self-training: keep pseudo-labels at least this confident.", low=0, high=1)
    unlabeled_per_epoch: int = 1024  # unlabelled reviews pseudo-labelled each epoch (a seeded sample)
    pseudo_weight: float = 0.5  # the loss weight of a pseudo-labelled review
    self_training_from: int = 1  # first epoch that uses pseudo-labels (the model must first learn)


@dataclass(frozen=True, kw_only=True)
class AdaptConfig(Output, Epochs, Schedule, Runtime):
    """Masked-LM adaptation of an encoder to the reviews' language."""

    output: str = same_option(
        Output, "output", help="Folder: model/ (pass it to `sentiment train --model`), train_log.jsonl, config.json."
    )
    model: str = option("default", SENTIMENT_MODEL_HELP)
    epochs: int = same_option(Epochs, "epochs", 3)
    batch_size: int = same_option(Schedule, "batch_size", 32)
    lr: float = same_option(Schedule, "lr", 1e-4)
    warmup_ratio: float = same_option(Schedule, "warmup_ratio", 0.06)
    mask_probability: float = option(
        0.15, "Share of tokens masked for prediction.", low=0, high=1, low_open=True, high_open=True
    )
    max_length: int = option(DEFAULT_MAX_LENGTH, "Token limit per review.", low=1)
    normalize: bool = option(True, "Normalise the reviews as `train` does (keep the same setting).")
