"""Training configuration: the schedule every trainer shares, and the rankers' TrainConfig
(written beside the trained model)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Literal

from rankkit.options import Output, Runtime, option, same_option


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """The optimisation schedule: every trainer (train, cet, distill, sentiment) shares these options."""

    panel: ClassVar[str] = "Training schedule"

    max_steps: int | None = option(None, "Stop after this many optimizer steps.", low=1)
    batch_size: int = option(
        8, "Training examples (queries, reviews) per micro-batch, of all processes together under torchrun.", low=1
    )
    grad_accum: int = option(
        1,
        "Micro-batches per optimizer step: --batch-size 4 --grad-accum 2 takes the step "
        "of --batch-size 8 in about half the memory.",
        low=1,
    )
    lr: float = option(2e-5, "Peak learning rate.", low=0, low_open=True)
    warmup_ratio: float = option(0.1, "Share of steps warming up, then linear decay.", low=0, high=1, high_open=True)
    max_grad_norm: float = option(1.0, "Gradient clipping.", low=0, low_open=True)
    seed: int = option(0, "Seed for every random choice.")
    plot: bool = option(False, "Write training_curves.png.")


@dataclass(frozen=True, kw_only=True)
class Epochs:
    """Passes over the training data: the trainers that make them (distillation counts rounds)."""

    panel: ClassVar[str] = "Training schedule"

    epochs: int = option(1, "Passes over the training data (unless --max-steps).", low=1)


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Output, Epochs, Schedule, Runtime):
    """A ranker's training: schedule, runtime, output, and what every ranker trainer adds."""

    output: str = same_option(Output, "output", help="Folder: model/, checkpoints/, train_log.jsonl, config.json.")
    model: str = option("default", "Starting checkpoint: folder or hub id (rerankers get a new head).")
    negatives: int = option(4, "Mined negatives per query.", low=1)
    checkpoint_every: int = option(0, "Steps between checkpoints (resume by rerunning the same command).", low=0)
    eval_every: int = option(0, "Steps between dev evaluations (needs the dev set).", low=0)
    weight_decay: float = 0.01
    max_length: int | None = option(
        None,
        "Tokens per text or (query, passage) pair, longer ones cut (default: the model's); fewer train faster.",
        low=1,
    )


@dataclass(frozen=True, kw_only=True)
class HeadRate:
    """How fast a cross-encoder's scoring head learns: the reranker and CET's cross-encoders."""

    panel: ClassVar[str] = "Training schedule"

    head_lr: float | None = option(
        None,
        "Learning rate of a cross-encoder's scoring head (default: --lr); a new head learns faster with more.",
        low=0,
        low_open=True,
    )


@dataclass(frozen=True, kw_only=True)
class RerankerConfig(HeadRate):
    """What a cross-encoder reranker learns from: its labels, a teacher's scores, and how fast its
    scoring head moves."""

    panel: ClassVar[str] = "Reranker"

    loss: Literal["softmax", "pairwise", "bce"] = option(
        "softmax",
        "Label loss: softmax (listwise), pairwise (mean over (positive, negative) pairs: CET's loss "
        "without its weights) or bce (pointwise); the first two agree with one negative.",
    )
    teacher: str | None = option(
        None,
        "Teacher whose scores of each group's passages the reranker also learns (listwise KL), beside "
        "the labels: a bi-encoder or cross-encoder folder, or a TREC run scoring every passage of the groups.",
    )
    teacher_weight: float = option(1.0, "Weight of the teacher's KL term beside the label loss.", low=0)


@dataclass(frozen=True, kw_only=True)
class CETConfig(HeadRate):
    """CET's two models and how their losses weight each other."""

    panel: ClassVar[str] = "CET"

    relevance: Literal["cross-encoder", "bi-encoder"] = option(
        "cross-encoder", "Relevance model (the ranker you keep)."
    )
    selection: Literal["provenance", "cross-encoder"] = option(
        "provenance", "Selection model: provenance (a small MLP over the pooling provenance) or cross-encoder."
    )
    debias_ratio: float = option(
        2.0, "T in the pair weight 1 / (1 - sigmoid(s_neg / T)) (the reference script used 10).", low=0, low_open=True
    )
    selection_model: str | None = option(None, "Cross-encoder selection model's start (default: --model).")
    selection_lr: float | None = option(
        None,
        "Selection model learning rate (default: 1e-3 for provenance, --lr for a cross-encoder).",
        low=0,
        low_open=True,
    )
    temperature: float = option(0.05, "Bi-encoder relevance: scores are cosine / temperature.", low=0, low_open=True)


def schedule_of(config: Schedule) -> dict[str, object]:
    """The schedule's settings of a config built on Schedule, to hand on to a TrainConfig."""
    return {field.name: getattr(config, field.name) for field in fields(Schedule)}
