"""Fine-tune a cross-encoder reranker on a MinedSet: a label loss (listwise softmax CE, pairwise
softmax over each (positive, negative) pair, or pointwise BCE), optionally beside a teacher's scores of the same groups
(listwise KL); the scoring head may learn at its own rate.

With a dev set, the trained model's folder records its dev figure beside the first stage's on the
same candidates (rankkit.encode.dev_record), and training ends with a warning when the reranker
does not beat the ranking it reorders."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

import torch

from rankkit.encode.crossencoder import CrossEncoder
from rankkit.encode.dev_record import DevRecord
from rankkit.encode.device import launcher_device
from rankkit.errors import RankkitError
from rankkit.mining.minedset import MinedSet
from rankkit.train.config import RerankerConfig, TrainConfig
from rankkit.train.dev import DevSet
from rankkit.train.examples import Group, batches, check_mined, epoch_groups
from rankkit.train.loop import LOG_FILE, fit
from rankkit.train.losses import (
    listwise_kl_loss,
    pointwise_bce_loss,
    softmax_cross_entropy_loss,
    weighted_pairwise_softmax_loss,
)
from rankkit.train.scorers import CrossEncoderScorer

TeacherScores = Mapping[tuple[str, str], float]  # (qid, docid) -> score


class RerankerTask:
    def __init__(self, model: CrossEncoder, config: RerankerConfig, lr: float, teacher: TeacherScores | None = None):
        if config.loss not in ("softmax", "pairwise", "bce"):
            raise RankkitError(f"unknown reranker loss {config.loss!r}. Fix: use softmax, pairwise or bce")
        self.model, self.config, self.teacher = model, config, teacher
        self.scorer = CrossEncoderScorer(model)
        self.parts, self.learning_rates = {"model": model.model}, {"model": lr}
        self.parameter_rates = {"model": self.scorer.head_rates(config.head_lr or lr)}
        self.device = model.device

    def loss(self, batch: list[Group]) -> dict[str, torch.Tensor]:
        scores = self.scorer.group_scores(batch).float()
        if self.config.loss == "softmax":
            terms = {"labels": softmax_cross_entropy_loss(scores)}
        elif self.config.loss == "pairwise":
            terms = {"labels": weighted_pairwise_softmax_loss(scores[:, 0], scores[:, 1:])}
        else:
            labels = torch.zeros_like(scores)
            labels[:, 0] = 1.0
            terms = {"labels": pointwise_bce_loss(scores, labels)}
        if self.teacher is not None:
            targets = torch.tensor(
                [[self.teacher[g.qid, d] for d in (g.positive_id, *g.negative_ids)] for g in batch],
                device=scores.device,
            )
            terms["teacher"] = self.config.teacher_weight * listwise_kl_loss(scores, targets)
        return terms

    def save(self, folder: Path) -> None:
        self.model.save(folder)


def teacher_scores(
    mined: MinedSet, doc_texts: Mapping[str, str], teacher: str, device: str | None, precision: str
) -> dict[tuple[str, str], float]:
    """The teacher's score of every (query, positive or negative) of the MinedSet, scored once: a
    model's, or a TREC run's (which must hold every passage of the groups: see RunTeacher)."""
    from rankkit.distill.teacher import open_teacher

    queries = {q.qid: q.query for q in mined.queries}
    candidates = {q.qid: [*q.positives, *(n.docid for n in q.negatives)] for q in mined.queries if q.negatives}
    scores = open_teacher(teacher, device, precision=precision).score(queries, candidates, doc_texts)
    return {(qid, d): float(s) for qid, docids in candidates.items() for d, s in zip(docids, scores[qid])}


def record_dev(output: Path, dev: DevSet, measure: str = "nDCG@10") -> DevRecord:
    """Write the model's dev record from the training log's last dev figure; warn when the
    reranker did not beat its first stage."""
    last = [json.loads(line) for line in (output / LOG_FILE).read_text().splitlines()][-1]
    record = DevRecord(
        measure=measure,
        reranker=round(last["dev"][measure], 4),
        first_stage=round(dev.first_stage()[measure], 4),
        queries=sum(1 for q in dev.candidates if q in dev.queries),
        candidates=dev.source,
    )
    record.write(output / "model")
    if not record.improves:
        print(
            f"warning: the trained reranker ranks worse than what it reorders: {record.summary()}. Fix: train "
            "longer or with a teacher (--teacher, --head-lr), or rerank without it",
            file=sys.stderr,
        )
    return record


def train_reranker(
    mined: MinedSet,
    doc_texts: Mapping[str, str],
    config: TrainConfig,
    reranker: RerankerConfig = RerankerConfig(),
    dev: DevSet | None = None,
) -> Path:
    """Fine-tune a cross-encoder from config.model (a new scoring head when it has none); returns
    the saved model folder (loads in sentence-transformers' CrossEncoder)."""
    check_mined(mined, doc_texts, config.negatives)
    device = launcher_device(config.device)
    teacher = teacher_scores(mined, doc_texts, reranker.teacher, device, config.precision) if reranker.teacher else None
    torch.manual_seed(config.seed)  # a new scoring head's initial weights: the same seed gives the same model
    task = RerankerTask(
        CrossEncoder(config.model, device=device, max_length=config.max_length), reranker, config.lr, teacher
    )
    evaluate = dev.evaluator(task.scorer.score_texts) if dev else None
    folder = fit(
        task,
        lambda epoch: batches(epoch_groups(mined, doc_texts, config.negatives, config.seed, epoch), config.batch_size),
        config,
        evaluate,
        options={"trainer": "reranker", **asdict(reranker)},
        finish=(lambda output: record_dev(output, dev)) if dev else None,
    )
    if dev is None:
        print(
            "note: trained without a dev set, so the model records no dev figure and nothing says whether it "
            "beats its first stage. Fix: pass --dev-run with --dev-queries and --dev-qrels (or --data --dev-split)",
            file=sys.stderr,
        )
    return folder
