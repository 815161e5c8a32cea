"""Score fusion (rrf, convex over min-max scores, zscore) against hand-computed values, including
documents missing from one list and ties; the fusion config file; the alpha tuner on a toy run;
the one fusion path shared by HybridRetriever and the server's engine."""

from __future__ import annotations

import json
import math

import pytest

from rankkit.data.runs import Hit
from rankkit.errors import RankkitError
from rankkit.retrieve.fusion import (
    FusionConfig,
    fuse,
    fusion_weights,
    minmax_scores,
    normalised_fuse,
    rrf_fuse,
    zscore_scores,
)
from rankkit.retrieve.hybrid import HybridRetriever
from rankkit.retrieve.tune import DEFAULT_ALPHAS, fused_runs, tune_fusion
from rankkit.serve.config import ServeConfig
from rankkit.serve.engine import SearchEngine

DENSE = [Hit("a", 0.9), Hit("b", 0.7), Hit("c", 0.5)]
BM25 = [Hit("c", 12.0), Hit("d", 8.0), Hit("a", 4.0)]


def scores(hits: list[Hit]) -> dict[str, float]:
    return {h.docid: h.score for h in hits}


def test_minmax_by_hand():
    assert minmax_scores(DENSE) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})
    assert minmax_scores(BM25) == pytest.approx({"c": 1.0, "d": 0.5, "a": 0.0})
    assert minmax_scores([Hit("x", 3.0), Hit("y", 3.0)]) == {"x": 0.0, "y": 0.0}  # no spread: no order
    assert minmax_scores([]) == {}


def test_zscore_by_hand():
    # mean 0.7, population std sqrt(((0.2)^2 + 0 + (0.2)^2) / 3) = 0.2 * sqrt(2/3)
    std = 0.2 * math.sqrt(2 / 3)
    assert zscore_scores(DENSE) == pytest.approx({"a": 0.2 / std, "b": 0.0, "c": -0.2 / std})
    assert zscore_scores([Hit("x", 1.0)]) == {"x": 0.0}


def test_convex_with_missing_documents_by_hand():
    # dense min-max: a 1, b .5, c 0 (d missing -> the list's minimum, 0)
    # bm25 min-max:  c 1, d .5, a 0 (b missing -> 0)
    # alpha .6: a .6, b .3, c .4, d .2
    fused = normalised_fuse([DENSE, BM25], [0.6, 0.4], k=10, method="convex")
    assert [h.docid for h in fused] == ["a", "c", "b", "d"]
    assert scores(fused) == pytest.approx({"a": 0.6, "c": 0.4, "b": 0.3, "d": 0.2})


def test_zscore_missing_document_gets_the_lists_minimum():
    std = 0.2 * math.sqrt(2 / 3)
    bm25_std = math.sqrt(((12 - 8) ** 2 + 0 + (4 - 8) ** 2) / 3)
    fused = scores(normalised_fuse([DENSE, BM25], [0.5, 0.5], k=10, method="zscore"))
    z_dense = {"a": 0.2 / std, "b": 0.0, "c": -0.2 / std}
    z_bm25 = {"c": 4 / bm25_std, "d": 0.0, "a": -4 / bm25_std}
    assert fused["d"] == pytest.approx(0.5 * min(z_dense.values()) + 0.5 * z_bm25["d"])
    assert fused["b"] == pytest.approx(0.5 * z_dense["b"] + 0.5 * min(z_bm25.values()))
    assert fused["a"] == pytest.approx(0.5 * z_dense["a"] + 0.5 * z_bm25["a"])


def test_alpha_ends_give_one_list():
    assert [h.docid for h in normalised_fuse([DENSE, BM25], [1.0, 0.0], k=3)] == ["a", "b", "c"]
    assert [h.docid for h in normalised_fuse([DENSE, BM25], [0.0, 1.0], k=3)] == ["c", "d", "a"]


def test_ties_broken_by_docid_and_k_cuts():
    tied = normalised_fuse([[Hit("y", 2.0), Hit("x", 1.0)], [Hit("x", 2.0), Hit("y", 1.0)]], [0.5, 0.5], k=10)
    assert tied == [Hit("x", 0.5), Hit("y", 0.5)]
    assert [h.docid for h in normalised_fuse([DENSE, BM25], [0.6, 0.4], k=2)] == ["a", "c"]


def test_empty_lists_and_weight_count():
    assert normalised_fuse([[], []], [0.5, 0.5], k=10) == []
    assert [h.docid for h in normalised_fuse([DENSE, []], [0.5, 0.5], k=10)] == ["a", "b", "c"]
    with pytest.raises(RankkitError, match="one weight per list"):
        normalised_fuse([DENSE, BM25], [1.0], k=10)


def test_fuse_dispatches_on_the_method():
    assert fuse([DENSE, BM25], [1.0, 1.0], 10, FusionConfig(method="rrf")) == rrf_fuse([DENSE, BM25], [1.0, 1.0], 10)
    assert fuse([DENSE, BM25], [0.6, 0.4], 10, FusionConfig(method="zscore")) == normalised_fuse(
        [DENSE, BM25], [0.6, 0.4], 10, "zscore"
    )


def test_weights_from_alpha():
    config = FusionConfig(method="convex", alpha=0.7)
    assert fusion_weights(["bm25", "dense"], config) == pytest.approx([0.3, 0.7])
    assert fusion_weights(["dense", "dense"], config) == [1.0, 1.0]
    assert fusion_weights(["dense", "bm25"], FusionConfig(method="rrf", alpha=0.7)) == [1.0, 1.0]
    assert fusion_weights(["dense", "bm25"], config, [2.0, 1.0]) == [2.0, 1.0]
    with pytest.raises(RankkitError, match="Fix: pass one --weight per --index"):
        fusion_weights(["dense", "bm25"], config, [1.0])


@pytest.mark.parametrize(
    "changes, problem",
    [({"method": "max"}, "unknown fusion method"), ({"alpha": 1.5}, "not a number in"), ({"depth": 0}, "depth")],
)
def test_config_refuses_bad_values(changes, problem):
    with pytest.raises(RankkitError, match=problem):
        FusionConfig(**changes)


def test_config_file_round_trip(tmp_path):
    path = tmp_path / "fusion.json"
    FusionConfig(method="convex", alpha=0.35, depth=200).write(path, tuned_on={"queries": "dev"})
    assert json.loads(path.read_text())["tuned_on"] == {"queries": "dev"}
    config = FusionConfig.read(path)
    assert config == FusionConfig(method="convex", alpha=0.35, depth=200)


@pytest.mark.parametrize(
    "text, problem", [("{", "invalid JSON"), ("[]", "not a JSON object"), ('{"alpha": "x"}', "alpha")]
)
def test_config_file_errors(tmp_path, text, problem):
    path = tmp_path / "fusion.json"
    path.write_text(text)
    with pytest.raises(RankkitError, match=problem) as excinfo:
        FusionConfig.read(path)
    assert str(path) in str(excinfo.value)
    with pytest.raises(RankkitError, match="no such file"):
        FusionConfig.read(tmp_path / "missing.json")


# --- the tuner ---------------------------------------------------------------------------------

# q1: only dense finds the relevant document at the top; q2: only BM25 does; fusing the two lists
# with either weight > 0 is the only way to get both relevant ones high
TOY_DENSE = {
    "q1": [Hit("r1", 0.9), Hit("x", 0.8), Hit("y", 0.1)],
    "q2": [Hit("x", 0.9), Hit("y", 0.85), Hit("r2", 0.8)],
}
TOY_BM25 = {"q1": [Hit("x", 9.0), Hit("y", 8.0), Hit("r1", 7.5)], "q2": [Hit("r2", 9.0), Hit("x", 2.0), Hit("y", 1.0)]}
TOY_QRELS = {"q1": {"r1": 1}, "q2": {"r2": 1}}


def test_fused_runs_normalise_once_and_match_fuse():
    runs = fused_runs(TOY_DENSE, TOY_BM25, "convex", [0.0, 0.5, 1.0], k=3)
    assert runs[0.5]["q1"] == normalised_fuse([TOY_DENSE["q1"], TOY_BM25["q1"]], [0.5, 0.5], 3)
    assert [h.docid for h in runs[1.0]["q2"]] == ["x", "y", "r2"]
    assert list(fused_runs(TOY_DENSE, TOY_BM25, "rrf", [0.1, 0.2])) == [0.5]


def test_tuner_picks_the_alpha_that_wins_on_the_toy_run():
    result = tune_fusion(TOY_DENSE, TOY_BM25, TOY_QRELS, "RR@10", methods=["convex"], alphas=[0.0, 0.5, 1.0])
    # alpha 0 (BM25 alone): RR 1/3 and 1; alpha 1 (dense alone): 1 and 1/3
    by_alpha = {row["alpha"]: row["score"] for row in result.grid}
    assert by_alpha[0.0] == pytest.approx((1 / 3 + 1) / 2)
    assert by_alpha[1.0] == pytest.approx((1 + 1 / 3) / 2)
    # alpha .5, q1: r1 .5 * 1 + .5 * 0 = .5 < x .5 * .875 + .5 * 1 = .9375 -> r1 at rank 2
    #            q2: r2 .5 * 0 + .5 * 1 = .5 < x .5 * 1 + .5 * (1 / 7) = .571 -> r2 at rank 2
    assert by_alpha[0.5] == pytest.approx(0.5)
    assert result.best == FusionConfig(method="convex", alpha=0.0)  # ties keep the first in grid order
    assert result.score == pytest.approx(2 / 3)
    assert (result.measure, result.queries) == ("RR@10", 2)


def test_tuner_grid_covers_every_method():
    result = tune_fusion(TOY_DENSE, TOY_BM25, TOY_QRELS)
    assert [row["method"] for row in result.grid] == ["rrf"] + ["convex"] * 21 + ["zscore"] * 21
    assert [row["alpha"] for row in result.grid if row["method"] == "zscore"] == list(DEFAULT_ALPHAS)
    assert result.score == max(row["score"] for row in result.grid)


def test_tuner_errors():
    with pytest.raises(RankkitError, match="unknown fusion methods"):
        tune_fusion(TOY_DENSE, TOY_BM25, TOY_QRELS, methods=["max"])
    with pytest.raises(RankkitError, match="no dev query"):
        tune_fusion(TOY_DENSE, TOY_BM25, {"q9": {"r": 1}})


# --- one path for search and serve ----------------------------------------------------------------


class FakeRetriever:
    def __init__(self, name: str, run: dict[str, list[Hit]]):
        self.name, self.run, self.asked = name, run, []

    def search(self, query, k=10):
        self.asked.append(k)
        return self.run[query][:k]

    def batch_search(self, queries, k=10):
        self.asked.append(k)
        return {qid: self.run[text][:k] for qid, text in queries.items()}


def test_hybrid_and_serve_fuse_alike():
    config = FusionConfig(method="zscore", alpha=0.3, depth=2)
    dense, bm25 = FakeRetriever("dense:x", TOY_DENSE), FakeRetriever("bm25:y", TOY_BM25)
    hybrid = HybridRetriever([bm25, dense], config=config)
    assert hybrid.weights == pytest.approx([0.7, 0.3])
    engine = SearchEngine.__new__(SearchEngine)  # the fusion step alone, nothing loaded
    engine.config = ServeConfig(fusion=config)
    engine.retrievers = {"bm25": bm25, "dense": dense}
    assert engine.config.hybrid_depth == 2
    for qid in TOY_DENSE:
        served = engine.fuse([TOY_BM25[qid][:2], TOY_DENSE[qid][:2]], 2)
        assert hybrid.search(qid, 2) == served
    assert dense.asked == bm25.asked == [2, 2]  # the depth each, as the server asks
    assert hybrid.batch_search({"a": "q1", "b": "q2"}, 2) == {"a": hybrid.search("q1", 2), "b": hybrid.search("q2", 2)}


def test_search_and_serve_default_to_the_same_depth():
    assert ServeConfig().hybrid_depth == FusionConfig().depth == 1000
    assert (FusionConfig().method, FusionConfig().alpha) == ("zscore", 0.65)  # the documented default
