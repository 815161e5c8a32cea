"""Positive knowledge (Plackett-Luce sampling, self-consistency) and negative knowledge (hard and
self-adversarial negatives through the mining core) for distillation."""

from __future__ import annotations

import numpy as np
import pytest

from rankkit.distill.knowledge import (
    NegativeConfig,
    PositiveConfig,
    build_knowledge,
    confident_queries,
    self_adversarial_negatives,
    teacher_positives,
)
from rankkit.distill.plackett_luce import plackett_luce_samples, self_consistent
from rankkit.errors import RankkitError
from rankkit.mining.candidates import Candidate


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_plackett_luce_top1_frequencies_match_the_softmax(temperature):
    scores = np.array([2.0, 1.0, 0.0, -1.0])
    rankings = plackett_luce_samples(scores, 40_000, temperature, np.random.default_rng(7))
    frequencies = np.bincount(rankings[:, 0], minlength=4) / len(rankings)
    assert frequencies == pytest.approx(_softmax(scores / temperature), abs=0.01)


def test_plackett_luce_second_place_frequencies_follow_the_model():
    scores = np.array([1.5, 1.0, 0.0])
    p = _softmax(scores)
    rankings = plackett_luce_samples(scores, 40_000, 1.0, np.random.default_rng(3))
    second = np.bincount(rankings[:, 1], minlength=3) / len(rankings)
    # P(j second) = sum over i != j of p_i * p_j / (1 - p_i)
    expected = [sum(p[i] * p[j] / (1 - p[i]) for i in range(3) if i != j) for j in range(3)]
    assert second == pytest.approx(expected, abs=0.01)


def test_plackett_luce_samples_are_permutations_seeded_and_cut_at_top():
    scores = np.array([0.3, 0.1, 0.2, 0.0, 0.5])
    full = plackett_luce_samples(scores, 50, 1.0, np.random.default_rng(1))
    assert all(sorted(row) == list(range(5)) for row in full.tolist())
    again = plackett_luce_samples(scores, 50, 1.0, np.random.default_rng(1), top=2)
    assert again.tolist() == full[:, :2].tolist()


def test_plackett_luce_at_low_temperature_is_the_teacher_ranking():
    rankings = plackett_luce_samples(np.array([0.1, 3.0, 2.0]), 20, 1e-3, np.random.default_rng(0))
    assert all(row == [1, 2, 0] for row in rankings.tolist())


def test_plackett_luce_refuses_a_non_positive_temperature():
    with pytest.raises(RankkitError, match="temperature"):
        plackett_luce_samples(np.zeros(3), 5, 0.0, np.random.default_rng(0))


def test_self_consistency_on_hand_made_samples():
    rankings = np.array([[0, 1, 2], [1, 0, 2], [0, 2, 1], [3, 0, 1]])
    # top 2 of each sample: {0,1} {1,0} {0,2} {3,0}: item 0 in 4/4, item 1 in 2/4, items 2 and 3 in 1/4
    assert self_consistent(rankings, top_m=2) == {0: 1.0}
    assert self_consistent(rankings, top_m=2, majority=0.4) == {0: 1.0, 1: 0.5}
    assert self_consistent(rankings, top_m=1) == {}  # item 0 is first in exactly half: not a majority
    # top 3: item 0 in 4/4, item 1 in 4/4, item 2 in 3/4, item 3 in 1/4
    assert self_consistent(rankings, top_m=3, majority=0.6) == {0: 1.0, 1: 1.0, 2: 0.75}
    assert list(self_consistent(rankings, top_m=2, majority=0.2)) == [0, 1, 2, 3]  # most agreed first


def test_teacher_positives_without_self_consistency_is_the_top_document():
    scores = np.array([0.1, 0.9, 0.5])
    assert teacher_positives(scores, PositiveConfig(self_consistency=False), np.random.default_rng(0)) == {1: 1.0}
    sharp = PositiveConfig(samples=32, temperature=0.01, top_m=1)
    assert teacher_positives(scores, sharp, np.random.default_rng(0)) == {1: 1.0}


def _knowledge(teacher: dict[str, list[float]], labelled=None, denoise_z=0.0):
    """Queries q0.. with candidates d0.. in source order and the given teacher scores."""
    queries = {qid: f"query {qid}" for qid in teacher}
    candidates = {
        qid: [Candidate(f"{qid}-d{i}", "bm25", i + 1, -float(i)) for i in range(len(scores))]
        for qid, scores in teacher.items()
    }
    doc_texts = {c.docid: f"text of {c.docid}" for found in candidates.values() for c in found}
    scores = {qid: np.array(s) for qid, s in teacher.items()}
    knowledge, stats = build_knowledge(
        queries,
        candidates,
        scores,
        PositiveConfig(samples=32, temperature=0.05, top_m=1),
        NegativeConfig(denoise_z=denoise_z, hard_pool=10),
        labelled or {},
        0,
        doc_texts,
    )
    return knowledge, stats, doc_texts


def test_build_knowledge_keeps_positives_out_of_the_hard_negatives_and_denoises():
    knowledge, stats, _ = _knowledge({"q": [0.0, 5.0, 0.2, 4.9, -1.0, 0.1]}, labelled={"q": {"q-d2": 1}})
    k = knowledge["q"]
    assert set(k.positives) == {"q-d1"}  # d3 is first in about 12% of the samples: no majority
    assert "q-d3" not in k.hard  # scored far above the mean: denoised
    assert "q-d2" not in k.hard  # labelled positive
    assert not set(k.positives) & set(k.hard)
    assert set(k.hard) == {"q-d0", "q-d4", "q-d5"}
    assert stats["queries_used"] == 1


def test_build_knowledge_counts_queries_it_leaves_out():
    knowledge, stats, _ = _knowledge({"flat": [1.0, 1.0, 1.0, 1.0], "sharp": [3.0, 0.0, 0.1, -0.2]})
    assert "flat" not in knowledge  # a flat teacher: no majority, no positive
    assert stats["without_positive"] == 1 and stats["queries_used"] == 1


def test_confident_queries_are_those_with_the_highest_best_teacher_score():
    scores = {
        "off-topic": np.array([0.2, 0.3, 0.1]),
        "on-topic": np.array([0.1, 0.9]),
        "middling": np.array([0.5]),
        "tied": np.array([0.5, 0.4]),
        "empty": np.array([]),
    }
    assert confident_queries(scores, 2) == ["on-topic", "middling"]  # a tie goes to the smaller qid
    assert confident_queries(scores, 10) == ["on-topic", "middling", "tied", "off-topic"]  # no candidate, no rank


def test_self_adversarial_mining_returns_what_the_student_ranks_high_and_the_teacher_low():
    knowledge, _, doc_texts = _knowledge({"q": [5.0, 0.0, 0.1, -0.1, 0.05, 4.9]})
    # the earlier student ranks d5 (teacher-high), d0 (the positive), d3, d1 on top
    student = {"q": np.array([9.0, 7.0, 0.0, 8.0, -1.0, 10.0])}
    found = self_adversarial_negatives(
        knowledge,
        student,
        "student-round-0",
        NegativeConfig(self_adversarial_top=4, self_adversarial_pool=8),
        {},
        0,
        doc_texts,
    )
    assert found == {"q": ["q-d3", "q-d1"]}  # in the student's order; d5 denoised, d0 a positive


def test_self_adversarial_mining_never_returns_teacher_or_labelled_positives():
    rng = np.random.default_rng(11)
    for trial in range(30):
        teacher = {f"q{i}": rng.normal(size=12).tolist() for i in range(3)}
        labelled = {"q0": {"q0-d4": 2}}
        knowledge, _, doc_texts = _knowledge(teacher, labelled=labelled, denoise_z=3.0)
        student = {qid: rng.normal(size=12) for qid in knowledge}
        found = self_adversarial_negatives(
            knowledge,
            student,
            "s",
            NegativeConfig(denoise_z=3.0, self_adversarial_top=12, self_adversarial_pool=12),
            labelled,
            trial,
            doc_texts,
        )
        for qid, negatives in found.items():
            assert not set(negatives) & set(knowledge[qid].positives)
            assert not set(negatives) & set(labelled.get(qid, {}))
