"""`rankkit distill`: a fast student from a strong teacher (contrastive or plain distillation)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rankkit.cli.errors import friendly_errors
from rankkit.cli.options import AT_LEAST_1, PRECISION_HELP, TRAIN_PRECISION_HELP, Precision, TrainPrecision


@friendly_errors
def distill(
    teacher: str = typer.Option(..., help="Teacher: a bi-encoder or cross-encoder folder, a packaged name "
                                          "(all-mpnet-base-v2, from the teacher extra) or a TREC run with scores."),
    queries: str = typer.Option(..., help="Training queries (no labels needed)."),
    corpus: str = typer.Option(..., help="Corpus with the candidates' texts."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder: model/, train_log.jsonl, distill.json."),
    student: str = typer.Option("default", help="Student checkpoint (default: the packaged all-MiniLM-L6-v2)."),
    student_kind: str = typer.Option("auto", help="auto (from the folder), bi-encoder or cross-encoder."),
    candidates: Optional[str] = typer.Option(None, help="TREC run of candidates per query (default: the teacher "
                                                        "run, else the student retrieving over the corpus)."),
    index: Optional[str] = typer.Option(None, help="Or an index folder to retrieve the candidates from."),
    depth: int = typer.Option(50, help="Candidates per query."),
    qrels: Optional[str] = typer.Option(None, help="Optional labels: labelled positives are never negatives."),
    mode: str = typer.Option("contrastive", help="contrastive (QCRD-style) or plain (score distillation only)."),
    distill_loss: str = typer.Option("kl", help="Score-distillation term: kl (listwise) or margin-mse."),
    kl_temperature: float = typer.Option(1.0, help="Temperature of the listwise KL."),
    contrastive_weight: float = typer.Option(1.0, help="Weight of the contrastive term."),
    distill_weight: float = typer.Option(1.0, help="Weight of the score-distillation term."),
    discriminator: bool = typer.Option(True, help="Weight negatives by the online discriminator."),
    samples: int = typer.Option(16, help="Plackett-Luce samples of the teacher's ranking per query."),
    pl_temperature: float = typer.Option(1.0, help="Temperature of the Plackett-Luce samples."),
    top_m: int = typer.Option(3, help="Positives: in the top m of a majority of samples."),
    self_consistency: bool = typer.Option(True, help="Off: the teacher's top document is the positive."),
    denoise_z: float = typer.Option(0.0, help="Negatives: drop candidates the teacher scores above mean + z * std."),
    hard_pool: int = typer.Option(20, help="Teacher-denoised hard negatives kept per query."),
    self_adversarial_rounds: int = typer.Option(5, help="N: self-adversarial negatives from the student of N "
                                                        "rounds back."),
    self_adversarial_top: int = typer.Option(10, help="That student's top ranks that count as high."),
    hard_negatives: int = typer.Option(4, help="Hard negatives per training group."),
    self_adversarial_negatives: int = typer.Option(4, help="Self-adversarial negatives per training group."),
    distill_candidates: int = typer.Option(8, help="Contrastive mode: candidates per group, drawn uniformly, that "
                                                   "only the distillation term scores (0: it scores the mined "
                                                   "negatives alone)."),
    confident_queries: Optional[int] = typer.Option(None, callback=AT_LEAST_1,
                                                    help="Train on the N queries whose best candidate the teacher "
                                                         "scores highest (queries that found something on topic); "
                                                         "default: every query."),
    rounds: int = typer.Option(6, help="Rounds; each re-mines self-adversarial negatives."),
    queries_per_round: int = typer.Option(256, help="Queries trained on per round."),
    temperature: float = typer.Option(0.05, help="Bi-encoder student: scores are cosine / temperature."),
    teacher_scale: Optional[float] = typer.Option(None, help="Multiply teacher scores (default: 1 / temperature "
                                                             "for a bi-encoder teacher, else 1)."),
    precision: Precision = typer.Option(Precision.fp32, help="Teacher model: " + PRECISION_HELP),
    batch_size: int = typer.Option(8, callback=AT_LEAST_1, help="Queries per micro-batch."),
    grad_accum: int = typer.Option(1, callback=AT_LEAST_1, help="Micro-batches per optimizer step: --batch-size 4 "
                                                                "--grad-accum 2 takes the step of --batch-size 8 in "
                                                                "about half the memory."),
    lr: float = typer.Option(2e-5, help="Student's peak learning rate."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many optimizer steps."),
    dev_queries: int = typer.Option(0, help="Hold out this many training queries (never trained on) and log the "
                                            "student's agreement with the teacher on them: a dev criterion without labels."),
    eval_every: int = typer.Option(0, help="Optimizer steps between those dev evaluations (0: at the end only)."),
    seed: int = typer.Option(0),
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    train_precision: TrainPrecision = typer.Option(TrainPrecision.auto, help="Student: " + TRAIN_PRECISION_HELP),
    plot: bool = typer.Option(False, help="Write training_curves.png and discriminator_weights.png."),
    overwrite: bool = typer.Option(False, help="Start afresh in --output."),
) -> None:
    """Distil a teacher (model or run) into a fast student: self-consistent positives, mined
    hard and self-adversarial negatives, discriminator-weighted contrastive + KL / Margin-MSE."""
    from rankkit.distill import DistillConfig, NegativeConfig, PositiveConfig
    from rankkit.distill import distill as run_distill

    config = DistillConfig(
        teacher=teacher, queries=queries, corpus=corpus, output=str(output), student=student,
        student_kind=student_kind, candidates=candidates, index=index, depth=depth, qrels=qrels,
        confident_queries=confident_queries, mode=mode, distill_loss=distill_loss, kl_temperature=kl_temperature,  # type: ignore[arg-type]
        contrastive_weight=contrastive_weight, distill_weight=distill_weight, discriminator=discriminator,
        positives=PositiveConfig(samples, pl_temperature, top_m, self_consistency=self_consistency),
        negatives=NegativeConfig(denoise_z, max_rank=depth, hard_pool=hard_pool,
                                 self_adversarial_top=self_adversarial_top,
                                 self_adversarial_pool=max(self_adversarial_negatives, 1)),
        self_adversarial_rounds=self_adversarial_rounds, hard_negatives=hard_negatives,
        self_adversarial_negatives=self_adversarial_negatives, distill_candidates=distill_candidates, rounds=rounds,
        queries_per_round=queries_per_round,
        temperature=temperature, teacher_scale=teacher_scale, teacher_precision=precision.value,
        batch_size=batch_size, grad_accum=grad_accum, lr=lr, max_steps=max_steps, dev_queries=dev_queries,
        eval_every=eval_every,
        seed=seed, device=device, train_precision=train_precision.value, plot=plot, overwrite=overwrite)
    folder = run_distill(config)
    print(f"saved the distilled student to {folder}")
