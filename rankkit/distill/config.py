"""`rankkit distill`'s configuration: teacher, student, candidates, knowledge and schedule."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from rankkit.errors import RankkitError
from rankkit.options import Inference, Output, check_options, option, same_option
from rankkit.train.config import Schedule, TrainConfig

Mode = Literal["contrastive", "plain"]
DistillLoss = Literal["kl", "margin-mse"]


@dataclass(frozen=True, kw_only=True)
class PositiveConfig:
    """Positive knowledge: self-consistent Plackett-Luce samples of the teacher's ranking."""

    panel: ClassVar[str] = "Distillation knowledge"

    samples: int = option(16, "Plackett-Luce samples of the teacher's ranking per query.", low=1)
    temperature: float = option(
        1.0, "Temperature of the Plackett-Luce samples.", low=0, low_open=True, flags=("--pl-temperature",)
    )
    top_m: int = option(3, "Positives: in the top m of a majority of samples.", low=1)
    majority: float = 0.5
    self_consistency: bool = option(True, "Off: the teacher's top document is the positive.")


@dataclass(frozen=True, kw_only=True)
class NegativeConfig:
    """Negative knowledge: teacher-denoised hard negatives and self-adversarial negatives."""

    panel: ClassVar[str] = "Distillation knowledge"

    denoise_z: float = option(0.0, "Negatives: drop candidates the teacher scores above mean + z * std.")
    min_rank: int = 1  # window of the candidate source for hard negatives
    max_rank: int = 100
    hard_pool: int = option(20, "Teacher-denoised hard negatives kept per query.", low=1)
    self_adversarial_top: int = option(
        10, "Self-adversarial: the earlier student's top ranks that count as high.", low=1
    )
    self_adversarial_pool: int = 8  # self-adversarial negatives kept per query and round


@dataclass(frozen=True, kw_only=True)
class DistillConfig(Output, Schedule, Inference):
    """A distillation run. Runtime's precision is the teacher's (inference) and the student's
    (training autocast) alike."""

    teacher: str = option(
        help="Teacher: a bi-encoder or cross-encoder folder, a packaged name (all-mpnet-base-v2, "
        "from the teacher extra) or a TREC run with scores."
    )
    queries: str = option(help="Training queries (no labels needed).")
    corpus: str = option(help="Corpus with the candidates' texts.")
    output: str = same_option(Output, "output", help="Folder: model/, train_log.jsonl, distill.json.")
    student: str = option("default", "Student checkpoint (default: the packaged all-MiniLM-L6-v2).")
    student_kind: Literal["auto", "bi-encoder", "cross-encoder"] = option(
        "auto", "auto (from the folder), bi-encoder or cross-encoder."
    )
    candidates: str | None = option(
        None,
        "TREC run of candidates per query (default: the teacher run, else the student retrieving over the corpus).",
    )
    index: str | None = option(None, "Or an index folder to retrieve the candidates from.", flags=("--index", "-i"))
    depth: int = option(50, "Candidates per query (the hard negatives' window).", low=2)
    qrels: str | None = option(None, "Optional labels: labelled positives are never negatives.")
    confident_queries: int | None = option(
        None,
        "Train on the N queries whose best candidate the teacher scores "
        "highest (queries that found something on topic); default: every "
        "query.",
        low=1,
    )
    mode: Mode = option("contrastive", "contrastive (QCRD-style) or plain (score distillation only).")
    distill_loss: DistillLoss = option("kl", "Score-distillation term: kl (listwise) or margin-mse.")
    kl_temperature: float = option(1.0, "Temperature of the listwise KL.", low=0, low_open=True)
    contrastive_weight: float = option(1.0, "Weight of the contrastive term.", low=0)
    distill_weight: float = option(1.0, "Weight of the score-distillation term.", low=0)
    discriminator: bool = option(True, "Weight negatives by the online discriminator.")
    positives: PositiveConfig = field(default_factory=PositiveConfig)
    negatives: NegativeConfig = field(default_factory=NegativeConfig)
    self_adversarial_rounds: int = option(5, "N: self-adversarial negatives from the student of N rounds back.", low=1)
    hard_negatives: int = option(4, "Hard negatives per training group.", low=0)
    self_adversarial_negatives: int = option(4, "Self-adversarial negatives per training group.", low=0)
    distill_candidates: int = option(
        8,
        "Contrastive mode: candidates per group, drawn uniformly, that only the "
        "distillation term scores (0: it scores the mined negatives alone).",
        low=0,
    )
    rounds: int = option(6, "Rounds; each re-mines self-adversarial negatives.", low=1)
    queries_per_round: int = option(256, "Queries trained on per round.", low=1)
    temperature: float = option(0.05, "Bi-encoder student: scores are cosine / temperature.", low=0, low_open=True)
    teacher_scale: float | None = option(
        None, "Multiply teacher scores (default: 1 / temperature for a bi-encoder teacher, else 1)."
    )
    discriminator_lr: float = 1e-3
    holdout_queries: int = option(
        0,
        "Hold out this many training queries (never trained on) and log the student's "
        "agreement with the teacher on them: a dev criterion without labels.",
        low=0,
    )
    eval_every: int = option(0, "Optimizer steps between those dev evaluations (0: at the end only).", low=0)
    max_length: int | None = None

    def check(self) -> None:
        """Refuse values out of range and contradictory settings before any model is loaded."""
        check_options(self)
        if self.candidates and self.index:
            raise RankkitError("give --candidates or --index, not both. Fix: pass one candidate source")
        output = Path(self.output)
        if not self.overwrite and (output / "model").exists() and not (output / "checkpoints").exists():
            raise RankkitError(f"{output} already holds a distilled model. Fix: pass another --output, or --overwrite")

    def negative_knowledge(self) -> NegativeConfig:
        """The negatives' settings with what this run decides: hard negatives come from the whole
        candidate depth, and each round keeps as many self-adversarial ones as a group takes."""
        return dataclasses.replace(
            self.negatives, max_rank=self.depth, self_adversarial_pool=max(self.self_adversarial_negatives, 1)
        )

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            output=self.output,
            model=self.student,
            epochs=self.rounds,
            max_steps=self.max_steps,
            batch_size=self.batch_size,
            grad_accum=self.grad_accum,
            negatives=self.hard_negatives + self.self_adversarial_negatives,
            lr=self.lr,
            warmup_ratio=self.warmup_ratio,
            max_grad_norm=self.max_grad_norm,
            seed=self.seed,
            eval_every=self.eval_every,
            device=self.device,
            precision=self.precision,
            max_length=self.max_length,
            plot=self.plot,
            overwrite=self.overwrite,
        )
