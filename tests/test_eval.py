"""Evaluation against hand-computed figures, presets, missing queries, paired comparison, reports."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from rich.console import Console
from scipy import stats

from rankkit.data.qrels import read_qrels
from rankkit.data.runs import Hit, read_run
from rankkit.errors import RankkitError
from rankkit.eval import PRESETS, Evaluation, evaluate, paired_compare, resolve_measures
from rankkit.eval.report import comparison_table, per_query_table, summary_table, to_json

# A tiny collection, judged with graded relevance (0..3).
QRELS = {
    "q1": {"d1": 3, "d2": 2, "d3": 1, "d4": 0, "d5": 2},
    "q2": {"a": 1, "b": 0},
    "q3": {"x": 2},  # judged, but the run below has no line for q3: it must count as 0
}
RUN = {
    # q1 ranking: d4 (grade 0), d2 (2), d9 (unjudged), d1 (3), d3 (1); d5 (2) is not retrieved
    "q1": [Hit("d4", 5.0), Hit("d2", 4.0), Hit("d9", 3.0), Hit("d1", 2.0), Hit("d3", 1.0)],
    # q2 ranking: b (0), c (unjudged), a (1)
    "q2": [Hit("b", 2.0), Hit("c", 1.5), Hit("a", 1.0)],
    # q5 has no judgments at all: it must be ignored, not scored
    "q5": [Hit("zz", 1.0)],
}

# nDCG@10 as trec_eval computes it: gain = grade, discount log2(rank + 1).
# q1: DCG  = 0/log2(2) + 2/log2(3) + 0/log2(4) + 3/log2(5) + 1/log2(6)
#          = 1.26186 + 1.29203 + 0.38685 = 2.94074
#     IDCG (grades 3, 2, 2, 1) = 3/1 + 2/log2(3) + 2/log2(4) + 1/log2(5)
#          = 3 + 1.26186 + 1 + 0.43068 = 5.69254
#     nDCG = 2.94074 / 5.69254 = 0.51660
# q2: DCG = 1/log2(4) = 0.5; IDCG = 1/log2(2) = 1; nDCG = 0.5
# q3: not in the run: 0
NDCG_Q1 = (2 / math.log2(3) + 3 / math.log2(5) + 1 / math.log2(6)) / (3 + 2 / math.log2(3) + 1 + 1 / math.log2(5))
NDCG_Q2 = 0.5
# RR@10 (relevant = grade >= 1): q1 first relevant is d2 at rank 2 -> 1/2; q2: a at rank 3 -> 1/3; q3: 0
# AP(rel=2) (relevant = grade >= 2): q1 relevant {d1, d2, d5}, R = 3; d2 at rank 2 (precision 1/2),
#     d1 at rank 4 (precision 2/4), d5 never retrieved -> (1/2 + 2/4) / 3 = 1/3;
#     q2 has no grade >= 2 document -> 0; q3 -> 0
# R@3 (grade >= 1): q1 relevant {d1, d2, d3, d5}; top 3 hold d2 -> 1/4; q2: a at rank 3 -> 1/1; q3: 0
# R@5: q1 top 5 hold d2, d1, d3 -> 3/4; q2 -> 1; q3 -> 0
# R(rel=2)@1000: q1 d2, d1 of {d1, d2, d5} -> 2/3; q2 -> 0 (nothing relevant at grade 2); q3 -> 0


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    measures = resolve_measures(None, ["nDCG@10", "RR@10", "AP(rel=2)", "R@3", "R@5", "R(rel=2)@1000", "P@2"])
    return evaluate(RUN, QRELS, measures)


def test_per_query_values_match_hand_computation(evaluation):
    pq = evaluation.per_query
    assert NDCG_Q1 == pytest.approx(0.51660, abs=1e-5)
    assert pq["nDCG@10"] == pytest.approx({"q1": NDCG_Q1, "q2": NDCG_Q2, "q3": 0.0})
    assert pq["RR@10"] == pytest.approx({"q1": 1 / 2, "q2": 1 / 3, "q3": 0.0})
    assert pq["AP(rel=2)"] == pytest.approx({"q1": 1 / 3, "q2": 0.0, "q3": 0.0})
    assert pq["R@3"] == pytest.approx({"q1": 1 / 4, "q2": 1.0, "q3": 0.0})
    assert pq["R@5"] == pytest.approx({"q1": 3 / 4, "q2": 1.0, "q3": 0.0})
    assert pq["R(rel=2)@1000"] == pytest.approx({"q1": 2 / 3, "q2": 0.0, "q3": 0.0})
    # P@2: q1 top 2 = d4 (0), d2 (2) -> 1/2; q2 top 2 = b (0), c (unjudged) -> 0
    assert pq["P@2"] == pytest.approx({"q1": 1 / 2, "q2": 0.0, "q3": 0.0})


def test_aggregate_is_the_mean_over_all_judged_queries(evaluation):
    agg = evaluation.aggregate
    assert agg["nDCG@10"] == pytest.approx((NDCG_Q1 + 0.5 + 0) / 3)  # 0.33887
    assert agg["nDCG@10"] == pytest.approx(0.33887, abs=1e-5)
    assert agg["RR@10"] == pytest.approx((1 / 2 + 1 / 3) / 3)  # 0.27778
    assert agg["AP(rel=2)"] == pytest.approx(1 / 9)
    assert agg["R@3"] == pytest.approx((1 / 4 + 1) / 3)
    assert agg["R@5"] == pytest.approx((3 / 4 + 1) / 3)


def test_missing_and_unjudged_queries(evaluation):
    assert evaluation.missing_queries == ("q3",)
    for values in evaluation.per_query.values():
        assert set(values) == {"q1", "q2", "q3"}  # q5 (no judgments) is not evaluated
    assert evaluation.measures == ("nDCG@10", "RR@10", "AP(rel=2)", "R@3", "R@5", "R(rel=2)@1000", "P@2")


def test_queries_with_empty_judgments_are_ignored():
    qrels = {"q1": {"d1": 1}, "q2": {}}
    result = evaluate({"q1": [Hit("d1", 1.0)], "q2": [Hit("d1", 1.0)]}, qrels, resolve_measures(None, ["RR@10"]))
    assert result.per_query == {"RR@10": {"q1": 1.0}}
    assert result.missing_queries == ()


def test_skipping_hard_queries_does_not_help():
    measures = resolve_measures(None, ["RR@10"])
    full = evaluate(
        {"q1": [Hit("d1", 1.0)], "q2": [Hit("x", 1.0), Hit("a", 0.5)]}, {"q1": {"d1": 1}, "q2": {"a": 1}}, measures
    )
    partial = evaluate({"q1": [Hit("d1", 1.0)]}, {"q1": {"d1": 1}, "q2": {"a": 1}}, measures)
    assert full.aggregate["RR@10"] == pytest.approx(0.75)
    assert partial.aggregate["RR@10"] == pytest.approx(0.5)
    assert partial.missing_queries == ("q2",)


def test_run_sharing_no_qid_is_an_error():
    with pytest.raises(RankkitError) as excinfo:
        evaluate({"other": [Hit("d1", 1.0)]}, QRELS, resolve_measures("msmarco"))
    assert "no query id" in str(excinfo.value) and "Fix:" in str(excinfo.value)


def test_presets_resolve_to_their_measures():
    assert [str(m) for m in resolve_measures("msmarco")] == ["RR@10", "R@1000"]
    assert [str(m) for m in resolve_measures("trec-dl")] == ["nDCG@10", "AP(rel=2)", "R(rel=2)@1000"]
    assert set(PRESETS) == {"msmarco", "trec-dl"}


def test_preset_plus_named_measures_without_duplicates():
    assert [str(m) for m in resolve_measures("msmarco", ["P@5", "RR@10", "P@5"])] == ["RR@10", "R@1000", "P@5"]


def test_named_measures_only():
    assert [str(m) for m in resolve_measures(None, ["nDCG@20", "AP"])] == ["nDCG@20", "AP"]


def test_unknown_preset():
    with pytest.raises(RankkitError) as excinfo:
        resolve_measures("trec-covid")
    message = str(excinfo.value)
    assert "'trec-covid'" in message and "Fix:" in message and "msmarco" in message and "trec-dl" in message


@pytest.mark.parametrize("name", ["foo", "nDCG@x", "", "ndcg@10", "AP(rel=x)"])
def test_unknown_measure(name):
    with pytest.raises(RankkitError) as excinfo:
        resolve_measures(None, ["nDCG@10", name])
    assert f"unknown measure {name!r}" in str(excinfo.value) and "Fix:" in str(excinfo.value)


def test_no_measures_asked_for():
    with pytest.raises(RankkitError) as excinfo:
        resolve_measures(None, [])
    assert "Fix:" in str(excinfo.value)


def test_evaluate_from_files(tmp_path):
    run_path, qrels_path = tmp_path / "run.trec", tmp_path / "qrels.txt"
    run_path.write_text("q1 Q0 d4 1 5.0 t\nq1 Q0 d2 2 4.0 t\nq1 Q0 d9 3 3.0 t\nq1 Q0 d1 4 2.0 t\nq1 Q0 d3 5 1.0 t\n")
    qrels_path.write_text("".join(f"q1 0 {d} {g}\n" for d, g in QRELS["q1"].items()))
    result = evaluate(read_run(run_path), read_qrels(qrels_path), resolve_measures(None, ["nDCG@10"]))
    assert result.aggregate["nDCG@10"] == pytest.approx(NDCG_Q1)


# --- paired comparison ---------------------------------------------------------------------------


def make_eval(measure: str, values: dict[str, float]) -> Evaluation:
    return Evaluation((measure,), {measure: values}, ())


def test_paired_compare_matches_scipy_on_shared_queries():
    base = make_eval("nDCG@10", {"q1": 0.2, "q2": 0.5, "q3": 0.9, "q4": 0.4, "only-base": 0.0})
    other = make_eval("nDCG@10", {"q1": 0.3, "q2": 0.7, "q3": 0.8, "q4": 0.9, "only-other": 1.0})
    c = paired_compare("nDCG@10", "bm25", base, "dense", other)
    # shared queries q1..q4: differences other - base = 0.1, 0.2, -0.1, 0.5 -> mean 0.175
    x, y = np.array([0.2, 0.5, 0.9, 0.4]), np.array([0.3, 0.7, 0.8, 0.9])
    assert c.mean_difference == pytest.approx(0.175)
    assert c.p_value == pytest.approx(stats.ttest_rel(y, x).pvalue)
    # and by hand: t = mean / (sd / sqrt(n)), sd with n - 1; two-sided p with n - 1 degrees of freedom
    d = y - x
    t = d.mean() / (d.std(ddof=1) / math.sqrt(4))
    assert c.p_value == pytest.approx(2 * stats.t.sf(abs(t), df=3))
    assert (c.measure, c.baseline, c.other, c.queries) == ("nDCG@10", "bm25", "dense", 4)


def test_paired_compare_sign_follows_other_minus_baseline():
    base = make_eval("RR@10", {"a": 0.5, "b": 1.0, "c": 0.25})
    worse = make_eval("RR@10", {"a": 0.25, "b": 0.5, "c": 0.0})
    c = paired_compare("RR@10", "base", base, "worse", worse)
    assert c.mean_difference == pytest.approx(-1 / 3)
    assert c.p_value == pytest.approx(stats.ttest_rel([0.25, 0.5, 0.0], [0.5, 1.0, 0.25]).pvalue)


@pytest.mark.parametrize("shift", [0.0, 0.25])
def test_paired_compare_equal_differences_give_nan_p(shift):
    base = {"a": 0.25, "b": 0.5, "c": 0.0, "d": 0.125}  # exact binary fractions: differences exactly equal
    c = paired_compare("m", "x", make_eval("m", base), "y", make_eval("m", {q: v + shift for q, v in base.items()}))
    assert math.isnan(c.p_value)
    assert c.mean_difference == pytest.approx(shift)
    assert c.queries == 4


def test_paired_compare_one_or_no_shared_query():
    one = paired_compare("m", "x", make_eval("m", {"a": 0.0, "b": 1.0}), "y", make_eval("m", {"a": 0.5}))
    assert (one.mean_difference, one.queries) == (0.5, 1) and math.isnan(one.p_value)
    none = paired_compare("m", "x", make_eval("m", {"a": 0.0}), "y", make_eval("m", {"b": 0.5}))
    assert (none.mean_difference, none.queries) == (0.0, 0) and math.isnan(none.p_value)


# --- reports -------------------------------------------------------------------------------------


def test_to_json_is_valid_json_with_the_expected_keys(evaluation):
    # q1 ranked ideally (nDCG 1), q2 first hit relevant (nDCG 1): differences vary, so p is a number
    better = {"q1": [Hit("d1", 3.0), Hit("d2", 2.0), Hit("d5", 1.5), Hit("d3", 1.0)], "q2": [Hit("a", 1.0)]}
    other = evaluate(better, QRELS, resolve_measures(None, list(evaluation.measures)))
    assert other.per_query["nDCG@10"] == pytest.approx({"q1": 1.0, "q2": 1.0, "q3": 0.0})
    comparisons = [
        paired_compare("nDCG@10", "a", evaluation, "b", other),
        paired_compare("RR@10", "a", evaluation, "a-again", evaluation),
    ]  # identical: p is nan
    text = to_json(["a", "b"], [evaluation, other], comparisons)

    def no_constants(name):
        raise AssertionError(f"{name} is not valid JSON")

    data = json.loads(text, parse_constant=no_constants)
    assert set(data) == {"runs", "comparisons"}
    assert set(data["runs"]) == {"a", "b"}
    run_a = data["runs"]["a"]
    assert set(run_a) == {"aggregate", "per_query", "missing_queries"}
    assert run_a["aggregate"]["nDCG@10"] == pytest.approx((NDCG_Q1 + 0.5) / 3)
    assert run_a["per_query"]["RR@10"] == pytest.approx({"q1": 0.5, "q2": 1 / 3, "q3": 0.0})
    assert run_a["missing_queries"] == ["q3"]
    assert len(data["comparisons"]) == 2
    first, second = data["comparisons"]
    assert set(first) == {"measure", "baseline", "other", "mean_difference", "p_value", "queries"}
    assert first["measure"] == "nDCG@10" and first["baseline"] == "a" and first["other"] == "b"
    assert first["queries"] == 3
    assert isinstance(first["p_value"], float)
    assert first["p_value"] == pytest.approx(stats.ttest_rel([1.0, 1.0, 0.0], [NDCG_Q1, 0.5, 0.0]).pvalue)
    assert first["mean_difference"] == pytest.approx((1 - NDCG_Q1 + 0.5) / 3)
    assert second["p_value"] is None and second["mean_difference"] == 0.0


def render(table) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(table)
    return console.file.getvalue()


def test_tables_render_the_values(evaluation):
    summary = render(summary_table(["bm25"], [evaluation]))
    assert "bm25" in summary and "nDCG@10" in summary and f"{evaluation.aggregate['nDCG@10']:.4f}" in summary
    per_query = render(per_query_table("bm25", evaluation))
    assert all(q in per_query for q in ("q1", "q2", "q3")) and f"{NDCG_Q1:.4f}" in per_query
    same = paired_compare("RR@10", "a", evaluation, "b", evaluation)
    comparison = render(comparison_table([same]))
    assert "n/a" in comparison and "+0.0000" in comparison


# --- real data -----------------------------------------------------------------------------------


def test_dl19_bm25_ndcg10(shared_data):
    dl19 = shared_data / "dl19"
    result = evaluate(
        read_run(dl19 / "run.bm25.top100.trec"), read_qrels(dl19 / "qrels.txt"), resolve_measures("trec-dl")
    )
    assert round(result.aggregate["nDCG@10"], 4) == 0.5058
    assert result.missing_queries == ()
    assert len(result.per_query["nDCG@10"]) == 43
