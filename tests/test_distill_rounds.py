"""Rounds: each round's groups, self-adversarial negatives from the snapshot N rounds back, and
snapshots dropped once no later round needs them; candidate helpers of the distill pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankkit.distill import pipeline as distill_module
from rankkit.distill.groups import CANDIDATE
from rankkit.distill.knowledge import NegativeConfig, PositiveConfig, build_knowledge
from rankkit.distill.pipeline import DistillConfig, Rounds, dense_candidates, score_candidates, snapshot_dir
from rankkit.encode.biencoder import BiEncoder
from rankkit.mining.candidates import Candidate
from rankkit.train.scorers import BiEncoderScorer

TEXTS = {
    f"d{i}": text
    for i, text in enumerate(
        [
            "stars form in clouds of gas",
            "the moon has phases",
            "yeast makes bread rise",
            "vaccines train immunity",
            "rain falls from clouds",
            "the sky scatters blue light",
            "volcanoes erupt lava",
            "bees make honey",
        ]
    )
}
QUERIES = {"q1": "how do stars form", "q2": "why is the sky blue", "q3": "how is honey made"}


@pytest.fixture
def scorer(tiny_model):
    return BiEncoderScorer(BiEncoder(tiny_model, device="cpu"), 0.05)


def test_score_candidates_encodes_documents_once_and_matches_pair_scores(scorer):
    candidates = {"q1": ["d0", "d4"], "q2": ["d5", "d0", "d7"]}
    scores = score_candidates(scorer, QUERIES, candidates, TEXTS)
    for qid, docids in candidates.items():
        pairs = scorer.score_texts([QUERIES[qid]] * len(docids), [TEXTS[d] for d in docids])
        assert scores[qid] == pytest.approx(pairs, abs=1e-3)


def test_dense_candidates_are_the_students_top_documents(scorer):
    found = dense_candidates(scorer, QUERIES, TEXTS, depth=3)
    assert set(found) == set(QUERIES) and all(len(c) == 3 for c in found.values())
    all_scores = score_candidates(scorer, QUERIES, {q: list(TEXTS) for q in QUERIES}, TEXTS)
    for qid, candidates in found.items():
        best = [list(TEXTS)[i] for i in np.argsort(-all_scores[qid], kind="stable")[:3]]
        assert [c.docid for c in candidates] == best and [c.rank for c in candidates] == [1, 2, 3]


def test_score_candidates_reuses_cached_document_vectors(scorer, monkeypatch):
    candidates = {"q1": ["d0", "d4"], "q2": ["d5", "d0"]}
    cache: dict = {}
    first = score_candidates(scorer, QUERIES, candidates, TEXTS, cache)
    assert sorted(cache) == ["d0", "d4", "d5"]
    encoded: list[str] = []
    real_encode = BiEncoder.encode

    def counting(self, texts, *args, role="passage", **kwargs):
        encoded.extend(texts if role == "passage" else [])
        return real_encode(self, texts, *args, role=role, **kwargs)

    monkeypatch.setattr(BiEncoder, "encode", counting)
    again = score_candidates(scorer, QUERIES, {**candidates, "q3": ["d7", "d4"]}, TEXTS, cache)
    assert encoded == [TEXTS["d7"]]  # only the document not cached yet
    for qid in candidates:
        assert again[qid] == pytest.approx(first[qid], abs=1e-6)


def rounds_setup(tmp_path, scorer):
    """Knowledge where d0 is every query's teacher positive, and a config mining from the round before (N = 1)."""
    docids = list(TEXTS)
    candidates = {qid: [Candidate(d, "src", r + 1) for r, d in enumerate(docids)] for qid in QUERIES}
    teacher = {qid: np.linspace(3.0, -3.0, len(docids)) for qid in QUERIES}  # d0 best for every query
    knowledge, _ = build_knowledge(
        QUERIES,
        candidates,
        teacher,
        PositiveConfig(temperature=0.01, top_m=1),
        NegativeConfig(denoise_z=1.0, hard_pool=4),
        {},
        0,
        TEXTS,
    )
    config = DistillConfig(
        teacher="t",
        queries="q",
        corpus="c",
        output=str(tmp_path),
        queries_per_round=2,
        batch_size=2,
        self_adversarial_rounds=1,
        hard_negatives=1,
        self_adversarial_negatives=2,
        distill_candidates=2,
        negatives=NegativeConfig(denoise_z=1.0, self_adversarial_top=4),
    )
    return knowledge, config


def test_rounds_that_mine_from_one_snapshot_encode_each_document_once(tmp_path, scorer, monkeypatch):
    knowledge, config = rounds_setup(tmp_path, scorer)
    encoded: list[int] = []
    real_encode = BiEncoder.encode

    def counting(self, texts, *args, role="passage", **kwargs):
        encoded[-1] += len(texts) if role == "passage" else 0
        return real_encode(self, texts, *args, role=role, **kwargs)

    monkeypatch.setattr(BiEncoder, "encode", counting)
    rounds = Rounds(config, knowledge, scorer, TEXTS, {})
    for round_ in range(3):
        encoded.append(0)
        rounds(round_)
    # rounds 0 and 1 mine from the round-0 snapshot (its 8 documents encoded once), round 2 from round 1's
    assert encoded == [len(TEXTS), 0, len(TEXTS)]


def test_rounds_mine_from_the_snapshot_n_rounds_back_and_drop_old_snapshots(tmp_path, scorer, monkeypatch):
    knowledge, config = rounds_setup(tmp_path, scorer)
    used: list[float] = []
    real = distill_module.score_candidates

    def recording(model, queries, found, texts, cache=None):
        used.append(float(next(iter(model.module.parameters())).detach().flatten()[0]))
        return real(model, queries, found, texts, cache)

    monkeypatch.setattr(distill_module, "score_candidates", recording)
    rounds = Rounds(config, knowledge, scorer, TEXTS, {})
    first_weight = float(next(iter(scorer.module.parameters())).detach().flatten()[0])
    groups = [g for batch in rounds(0) for g in batch]
    assert len(groups) == 2 and all(len(g.negative_ids) == 5 and g.positive_id == "d0" for g in groups)
    assert all(g.kinds[-2:] == (CANDIDATE, CANDIDATE) for g in groups)  # 3 mined negatives, then 2 candidates
    assert all(d != "d0" for g in groups for d in g.negative_ids)
    assert rounds(0) is rounds(0)  # cached: the loop asks twice
    for step in (1, 2):
        with torch.no_grad():
            next(iter(scorer.module.parameters())).flatten()[0] = float(step)
        rounds(step)
    # round 0 and round 1 mined from the round-0 snapshot, round 2 from the round-1 snapshot (N = 1)
    assert used == [pytest.approx(first_weight), pytest.approx(first_weight), pytest.approx(1.0)]
    assert sorted(p.name for p in snapshot_dir(tmp_path).iterdir()) == ["round-1.pt", "round-2.pt"]
    assert set(rounds.adversarial_found) == {0, 1, 2}
