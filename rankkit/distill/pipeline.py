"""`rankkit distill`: teacher -> student, in rounds.

1. Candidates per training query: a TREC run, an index, the teacher's own run, or the initial
   student retrieving over the corpus on the fly (a bi-encoder student).
2. The teacher scores every candidate once (with `confident_queries` N, only the N queries whose
   best candidate it scores highest are kept: see rankkit.distill.knowledge.confident_queries); self-consistency over Plackett-Luce samples picks the
   positives; the mining core picks teacher-denoised hard negatives.
3. Each round (an "epoch" of the shared training loop over `queries_per_round` queries) mines
   self-adversarial negatives from the student as it was `self_adversarial_rounds` rounds back
   (snapshots kept in .OUTPUT.snapshots beside OUTPUT until no later round needs them), then trains.
With `holdout_queries` N, N of the training queries are held out (a seeded choice) and never trained on:
at each dev evaluation (`eval_every` steps, and the end) the student's agreement with the teacher on
their candidates is logged (rankkit.distill.agreement), a dev criterion that needs no labels.
Output: OUTPUT/model (loads in sentence-transformers), train_log.jsonl, config.json, distill.json.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from rankkit.data.corpus import read_doc_texts
from rankkit.data.files import atomic_write, output_lock
from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit, read_run
from rankkit.distill.agreement import teacher_agreement
from rankkit.distill.config import DistillConfig
from rankkit.distill.discriminator import Discriminator
from rankkit.distill.groups import DistillGroup, contrastive_group, plain_group
from rankkit.distill.knowledge import (
    QueryKnowledge,
    build_knowledge,
    candidate_ids,
    confident_queries,
    self_adversarial_negatives,
)
from rankkit.distill.task import DistillTask
from rankkit.distill.teacher import RunTeacher, dot_product_scores, model_kind, open_teacher
from rankkit.errors import RankkitError
from rankkit.mining.candidates import Candidates, candidates_from_run
from rankkit.train import distributed
from rankkit.train.examples import batches
from rankkit.train.loop import fit
from rankkit.train.scorers import BiEncoderScorer, CrossEncoderScorer, GroupScorer

DISTILL_FILE = "distill.json"


def snapshot_dir(output: str | Path) -> Path:
    """Where the student's round snapshots wait: beside the output, not in it, since with
    --overwrite the training loop replaces the output folder only once training is complete."""
    output = Path(output)
    return output.parent / f".{output.name}.snapshots"


def student_scorer(config: DistillConfig) -> GroupScorer:
    from rankkit.encode.biencoder import BiEncoder
    from rankkit.encode.crossencoder import CrossEncoder

    kind = model_kind(config.student) if config.student_kind == "auto" else config.student_kind
    if kind == "bi-encoder":
        return BiEncoderScorer(
            BiEncoder(config.student, device=config.device, max_length=config.max_length), config.temperature
        )
    torch.manual_seed(config.seed)  # a new scoring head's initial weights
    return CrossEncoderScorer(CrossEncoder(config.student, device=config.device, max_length=config.max_length))


def score_candidates(
    scorer: GroupScorer,
    queries: Mapping[str, str],
    candidates: Mapping[str, list[str]],
    doc_texts: Mapping[str, str],
    cache: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """A model's scores of each query's candidates; a bi-encoder encodes each document once (and
    not at all when `cache` already holds its vector, see dot_product_scores)."""
    if isinstance(scorer, BiEncoderScorer):
        return dot_product_scores(scorer.encoder, queries, candidates, doc_texts, 1.0 / scorer.temperature, cache=cache)
    return {
        qid: scorer.score_texts([queries[qid]] * len(found), [doc_texts[d] for d in found])  # type: ignore[attr-defined]
        for qid, found in candidates.items()
    }


def dense_candidates(
    scorer: GroupScorer, queries: Mapping[str, str], doc_texts: Mapping[str, str], depth: int
) -> Candidates:
    """The student's top `depth` documents of the corpus per query (exact inner product)."""
    if not isinstance(scorer, BiEncoderScorer):
        raise RankkitError(
            "a cross-encoder student cannot retrieve its own candidates. Fix: pass --candidates RUN or --index FOLDER"
        )
    docids = list(doc_texts)
    vectors = scorer.encoder.encode([doc_texts[d] for d in docids], show_progress=True, desc="student: corpus")
    qids = list(queries)
    query_vectors = scorer.encoder.encode([queries[q] for q in qids], role="query")
    run = {}
    for start in range(0, len(qids), 256):
        scores = query_vectors[start : start + 256] @ vectors.T
        for qid, row in zip(qids[start : start + 256], scores):
            run[qid] = [Hit(docids[i], float(row[i])) for i in np.argsort(-row, kind="stable")[:depth]]
    return candidates_from_run(run, "student")


def gather_candidates(
    config: DistillConfig, teacher, scorer: GroupScorer, queries: Mapping[str, str]
) -> tuple[Candidates, dict[str, str]]:
    """Each query's candidates (top `depth`) and the texts of every document they name."""
    if config.candidates or config.index or isinstance(teacher, RunTeacher):
        if config.index:
            from rankkit.retrieve import DenseQuery, open_retriever

            retriever = open_retriever([config.index], DenseQuery(device=config.device))
            run, source = retriever.batch_search(queries, config.depth), retriever.name
        elif config.candidates:
            run, source = read_run(config.candidates), Path(config.candidates).name
        else:
            run, source = teacher.run, teacher.name
        found = {qid: hits[: config.depth] for qid, hits in run.items() if qid in queries}
        needed = {h.docid for hits in found.values() for h in hits}
        return candidates_from_run(found, source), read_doc_texts(config.corpus, docids=needed)
    doc_texts = read_doc_texts(config.corpus)
    return dense_candidates(scorer, queries, doc_texts, config.depth), doc_texts


def hold_out(
    knowledge: dict[str, QueryKnowledge], count: int, seed: int
) -> tuple[dict[str, QueryKnowledge], dict[str, QueryKnowledge]]:
    """(training, dev): `count` queries drawn (seeded) into dev, the rest left to train on."""
    if count >= len(knowledge):
        raise RankkitError(
            f"--holdout-queries {count} would hold out all {len(knowledge)} queries with teacher knowledge, "
            "leaving none to train on. Fix: pass a smaller --holdout-queries"
        )
    qids = sorted(knowledge)
    dev = {qids[i] for i in np.random.default_rng([seed, 1 << 29]).permutation(len(qids))[:count]}
    return ({q: k for q, k in knowledge.items() if q not in dev}, {q: k for q, k in knowledge.items() if q in dev})


def agreement_on(
    dev: Mapping[str, QueryKnowledge], scorer: GroupScorer, doc_texts: Mapping[str, str], kl_temperature: float
):
    """The dev evaluation: the student's agreement with the teacher on the dev queries' candidates."""
    queries = {qid: k.query for qid, k in dev.items()}
    ids = candidate_ids(dev, list(dev))
    teacher = {qid: np.array([dev[qid].teacher[d] for d in found]) for qid, found in ids.items()}
    return lambda: teacher_agreement(score_candidates(scorer, queries, ids, doc_texts), teacher, kl_temperature)


class Rounds:
    """The loop's epoch_batches: round r's groups over a seeded sample of queries, with
    self-adversarial negatives mined from the student snapshot of round r - N."""

    def __init__(
        self,
        config: DistillConfig,
        knowledge: dict[str, QueryKnowledge],
        scorer: GroupScorer,
        doc_texts: Mapping[str, str],
        labelled: dict,
    ):
        self.config, self.knowledge, self.scorer, self.doc_texts, self.labelled = (
            config,
            knowledge,
            scorer,
            doc_texts,
            labelled,
        )
        self.qids = sorted(knowledge)
        self.size = min(config.queries_per_round, len(self.qids))
        self.snapshots = snapshot_dir(config.output)
        self._earlier: GroupScorer | None = None
        self._vectors: tuple[int, dict[str, np.ndarray]] = (-1, {})  # a snapshot round, its document vectors
        self._cached: tuple[int, list[list[DistillGroup]]] | None = None
        self.adversarial_found: dict[int, float] = {}  # round -> share of queries with self-adversarial negatives

    def round_qids(self, round_: int) -> list[str]:
        order = np.random.default_rng([self.config.seed, round_]).permutation(len(self.qids))[: self.size]
        return [self.qids[i] for i in sorted(order)]

    def _snapshot(self, round_: int) -> Path:
        """The student's weights when round `round_` started (saved then, reused on resume)."""
        path = self.snapshots / f"round-{round_}.pt"
        if distributed.is_main() and not path.is_file():  # under torchrun every rank holds the same weights
            with atomic_write(path, "wb") as out:
                torch.save(self.scorer.module.state_dict(), out)
        distributed.barrier()  # written before any rank reads it
        return path

    def _earlier_scorer(self, path: Path) -> GroupScorer:
        if self._earlier is None:
            self._earlier = copy.deepcopy(self.scorer)
        self._earlier.module.load_state_dict(torch.load(path, map_location=self.scorer.device, weights_only=True))
        self._earlier.module.eval()
        return self._earlier

    def adversarial(self, round_: int, qids: list[str]) -> dict[str, list[str]]:
        config = self.config
        if config.mode == "plain" or config.self_adversarial_negatives == 0:
            return {}
        self._snapshot(round_)
        source_round = max(0, round_ - config.self_adversarial_rounds)
        earlier = self._earlier_scorer(self._snapshot(source_round))
        if self._vectors[0] != source_round:  # rounds that mine from the same snapshot share its vectors
            self._vectors = (source_round, {})
        queries = {qid: self.knowledge[qid].query for qid in qids}
        scores = score_candidates(
            earlier, queries, candidate_ids(self.knowledge, qids), self.doc_texts, self._vectors[1]
        )
        if distributed.is_main():
            for old in self.snapshots.glob("round-*.pt"):  # no later (or resumed) round needs these
                if int(old.stem.split("-")[1]) < round_ - config.self_adversarial_rounds:
                    old.unlink()
        found = self_adversarial_negatives(
            self.knowledge,
            scores,
            f"student-round-{source_round}",
            config.negative_knowledge(),
            self.labelled,
            config.seed + round_,
            self.doc_texts,
        )
        self.adversarial_found[round_] = len(found) / max(1, len(qids))
        return found

    def __call__(self, round_: int) -> list[list[DistillGroup]]:
        if self._cached is not None and self._cached[0] == round_:
            return self._cached[1]
        config, qids = self.config, self.round_qids(round_)
        adversarial = self.adversarial(round_, qids)
        groups = []
        for position, qid in enumerate(qids):
            rng = np.random.default_rng([config.seed, round_, position])
            k = self.knowledge[qid]
            if config.mode == "plain":
                groups.append(
                    plain_group(k, self.doc_texts, config.hard_negatives + config.self_adversarial_negatives, rng)
                )
            else:
                groups.append(
                    contrastive_group(
                        k,
                        self.doc_texts,
                        adversarial.get(qid, []),
                        config.hard_negatives,
                        config.self_adversarial_negatives,
                        rng,
                        config.distill_candidates,
                    )
                )
        order = np.random.default_rng([config.seed, round_, 1 << 30]).permutation(len(groups))
        self._cached = (round_, batches([groups[i] for i in order], config.batch_size))
        return self._cached[1]


def distill(config: DistillConfig) -> Path:
    """Distil the teacher into the student; returns the student's model folder. The run holds
    the output's lock throughout (snapshots, training, distill.json), so a second run into the
    same output at the same time is refused before it scores anything."""
    config.check()
    with output_lock(config.output) if distributed.is_main() else contextlib.nullcontext():
        return _distill(config)


def _distill(config: DistillConfig) -> Path:
    queries = read_queries(config.queries)
    labelled = read_qrels(config.qrels) if config.qrels else {}
    scorer = student_scorer(config)
    teacher = open_teacher(
        config.teacher,
        config.device,
        config.teacher_scale,
        bi_encoder_scale=1.0 / config.temperature,
        precision=config.precision,
        inference=config,
    )
    candidates, doc_texts = gather_candidates(config, teacher, scorer, queries)
    if not candidates:
        raise RankkitError(
            f"no candidates for any query of {config.queries}. Fix: give candidates (--candidates, "
            "--index) for these queries"
        )
    teacher_scores = teacher.score(queries, {q: [c.docid for c in found] for q, found in candidates.items()}, doc_texts)
    offered = len(candidates)
    if config.confident_queries is not None:
        candidates = {qid: candidates[qid] for qid in confident_queries(teacher_scores, config.confident_queries)}
    knowledge, stats = build_knowledge(
        queries,
        candidates,
        teacher_scores,
        config.positives,
        config.negative_knowledge(),
        labelled,
        config.seed,
        doc_texts,
    )
    if not knowledge:
        raise RankkitError(
            f"no query kept a teacher positive and a hard negative ({stats}). Fix: give more candidates "
            "(--depth), a sharper teacher (lower --pl-temperature), a larger --top-m or a looser --denoise-z"
        )
    knowledge, dev = (
        hold_out(knowledge, config.holdout_queries, config.seed) if config.holdout_queries else (knowledge, {})
    )
    stats.update({"queries_offered": offered, "holdout_queries": len(dev)})
    discriminator = None
    if config.mode == "contrastive" and config.discriminator:
        torch.manual_seed(config.seed)
        discriminator = Discriminator()
    task = DistillTask(
        scorer,
        config.lr,
        config.mode,
        config.distill_loss,
        config.kl_temperature,
        config.contrastive_weight,
        config.distill_weight,
        discriminator,
        config.discriminator_lr,
    )
    main = distributed.is_main()  # under torchrun, rank 0 alone writes outside fit too
    if config.overwrite and main:  # a new run: no snapshot of an earlier one may be reused
        shutil.rmtree(snapshot_dir(config.output), ignore_errors=True)
    rounds = Rounds(config, knowledge, scorer, doc_texts, labelled)
    evaluate = agreement_on(dev, scorer, doc_texts, config.kl_temperature) if dev else None
    if evaluate is not None and main:  # where the dev curve starts: the student before any step
        stats["dev_before"] = evaluate()
    folder = fit(task, rounds, config.train_config(), evaluate)
    output = Path(config.output)
    if not main:
        return folder
    shutil.rmtree(snapshot_dir(output), ignore_errors=True)
    stats["rounds_with_self_adversarial"] = {str(r): share for r, share in sorted(rounds.adversarial_found.items())}
    with atomic_write(output / DISTILL_FILE) as out:
        json.dump({"config": asdict(config), "teacher": teacher.name, "knowledge": stats}, out, indent=2)
    if config.plot and discriminator is not None:
        from rankkit.distill.plot import plot_discriminator_weights

        plot_discriminator_weights(output / "train_log.jsonl", output / "discriminator_weights.png")
    return folder
