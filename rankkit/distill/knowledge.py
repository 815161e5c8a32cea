"""What the teacher knows about each training query: its candidates with teacher scores, the
positives that survive self-consistency (with their agreement as confidence), and negatives mined
through rankkit.mining: teacher-denoised hard negatives once, self-adversarial ones per round.

Teacher scores stored on mining candidates are z-scores within the query's candidates, so one
denoising threshold (TeacherDenoise, in standard deviations) fits teachers on any scale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from rankkit.data.qrels import Qrels
from rankkit.distill.config import NegativeConfig, PositiveConfig
from rankkit.distill.plackett_luce import plackett_luce_samples, self_consistent
from rankkit.mining.candidates import Candidate, Candidates
from rankkit.mining.mine import MiningConfig, mine
from rankkit.mining.strategies import RankWindow, SelfAdversarial, TeacherDenoise, TopN

HARD = "hard"
SELF_ADVERSARIAL = "self-adversarial"


@dataclass
class QueryKnowledge:
    qid: str
    query: str
    candidates: list[Candidate]  # the source's ranking, teacher_score = teacher z-score
    teacher: dict[str, float]  # docid -> raw teacher score (on the student's scale)
    positives: dict[str, float]  # docid -> confidence (self-consistency agreement)
    hard: list[str]  # teacher-denoised hard negatives


def teacher_positives(scores: np.ndarray, config: PositiveConfig, rng: np.random.Generator) -> dict[int, float]:
    """Indices of the positives among a query's candidates, with their confidence."""
    if not config.self_consistency:
        return {int(np.argmax(scores)): 1.0}
    rankings = plackett_luce_samples(scores, config.samples, config.temperature, rng, top=config.top_m)
    return self_consistent(rankings, config.top_m, config.majority)


def _z_scores(scores: np.ndarray) -> np.ndarray:
    spread = scores.std()
    return (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)


def _positive_qrels(knowledge: Mapping[str, QueryKnowledge], labelled: Qrels) -> Qrels:
    """Teacher positives and labelled positives: what mining must never return as negatives."""
    return {
        qid: {**{d: g for d, g in labelled.get(qid, {}).items() if g >= 1}, **{d: 1 for d in k.positives}}
        for qid, k in knowledge.items()
    }


def confident_queries(teacher_scores: Mapping[str, np.ndarray], count: int) -> list[str]:
    """The `count` queries whose best candidate the teacher scores highest, best first (ties by
    qid). Unlabelled queries run against a collection that was not built for them mostly retrieve
    unrelated documents, and the teacher's order among unrelated documents teaches little about
    relevance; its top score says, without labels, which queries found something on topic."""
    best = {qid: float(np.max(scores)) for qid, scores in teacher_scores.items() if len(scores)}
    return sorted(best, key=lambda qid: (-best[qid], qid))[:count]


def build_knowledge(
    queries: Mapping[str, str],
    candidates: Candidates,
    teacher_scores: Mapping[str, np.ndarray],
    positives: PositiveConfig,
    negatives: NegativeConfig,
    labelled: Qrels,
    seed: int,
    doc_texts: Mapping[str, str],
) -> tuple[dict[str, QueryKnowledge], dict]:
    """Per query: positives by self-consistency, hard negatives by the mining core. Queries with
    no positive or no hard negative are left out and counted in the returned statistics."""
    rng = np.random.default_rng([seed, 1])
    knowledge: dict[str, QueryKnowledge] = {}
    for qid in sorted(candidates):
        found, scores = candidates[qid], np.asarray(teacher_scores[qid], dtype=np.float64)
        z = _z_scores(scores)
        scored = [Candidate(c.docid, c.source, c.rank, c.score, float(t), c.strategy) for c, t in zip(found, z)]
        chosen = teacher_positives(scores, positives, rng)
        knowledge[qid] = QueryKnowledge(
            qid,
            queries[qid],
            scored,
            {c.docid: float(s) for c, s in zip(found, scores)},
            {found[i].docid: confidence for i, confidence in chosen.items()},
            [],
        )
    stats = {"queries": len(candidates), "without_positive": sum(not k.positives for k in knowledge.values())}
    knowledge = {qid: k for qid, k in knowledge.items() if k.positives}
    strategies = [
        RankWindow(negatives.min_rank, negatives.max_rank),
        TeacherDenoise(negatives.denoise_z),
        TopN(negatives.hard_pool),
    ]
    mined = mine(
        {qid: k.query for qid, k in knowledge.items()},
        _positive_qrels(knowledge, labelled),
        {qid: k.candidates for qid, k in knowledge.items()},
        strategies,
        MiningConfig(seed),
        doc_texts,
    )
    for q in mined.queries:
        knowledge[q.qid].hard = [c.docid for c in q.negatives]
    stats["without_hard_negative"] = sum(not k.hard for k in knowledge.values())
    knowledge = {qid: k for qid, k in knowledge.items() if k.hard}
    stats.update(
        {
            "queries_used": len(knowledge),
            "positives_per_query": float(np.mean([len(k.positives) for k in knowledge.values()])) if knowledge else 0.0,
            "mean_confidence": float(np.mean([c for k in knowledge.values() for c in k.positives.values()]))
            if knowledge
            else 0.0,
            "hard_negatives_per_query": float(np.mean([len(k.hard) for k in knowledge.values()])) if knowledge else 0.0,
        }
    )
    return knowledge, stats


def self_adversarial_negatives(
    knowledge: Mapping[str, QueryKnowledge],
    student_scores: Mapping[str, np.ndarray],
    source: str,
    negatives: NegativeConfig,
    labelled: Qrels,
    seed: int,
    doc_texts: Mapping[str, str],
) -> dict[str, list[str]]:
    """Per query, the documents an earlier student (its scores of the query's candidates) ranks
    in its top `self_adversarial_top` that the teacher scores low, through the mining core:
    teacher and labelled positives never come out."""
    reranked: Candidates = {}
    for qid, scores in student_scores.items():
        k = knowledge[qid]
        order = np.argsort(-scores, kind="stable")
        reranked[qid] = [
            Candidate(k.candidates[i].docid, source, rank, float(scores[i]), k.candidates[i].teacher_score)
            for rank, i in enumerate(order, start=1)
        ]
    strategies = [
        SelfAdversarial.from_run(reranked, negatives.self_adversarial_top),
        TeacherDenoise(negatives.denoise_z),
        TopN(negatives.self_adversarial_pool),
    ]
    subset = {qid: knowledge[qid] for qid in student_scores}
    mined = mine(
        {qid: k.query for qid, k in subset.items()},
        _positive_qrels(subset, labelled),
        reranked,
        strategies,
        MiningConfig(seed),
        doc_texts,
    )
    return {q.qid: [c.docid for c in q.negatives] for q in mined.queries}


def candidate_ids(knowledge: Mapping[str, QueryKnowledge], qids: Sequence[str]) -> dict[str, list[str]]:
    return {qid: [c.docid for c in knowledge[qid].candidates] for qid in qids}
