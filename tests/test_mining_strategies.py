"""Each mining strategy on hand-made candidates whose output is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rankkit.data.runs import Hit
from rankkit.errors import RankkitError
from rankkit.mining import (
    AdaptiveThreshold,
    Candidate,
    MarginFilter,
    QueryContext,
    RandomN,
    RankWindow,
    SelfAdversarial,
    SimANS,
    TeacherDenoise,
    TopN,
)


def ctx(
    positive: float | None = None, positive_teacher: float | None = None, seed: int = 0, qid: str = "q1"
) -> QueryContext:
    return QueryContext(qid, positive, positive_teacher, np.random.default_rng(seed))


def cands(scores: list[float], teacher: list[float | None] | None = None, source: str = "bm25") -> list[Candidate]:
    """Candidates d1..dn ranked 1..n (best first) with the given scores."""
    teacher = teacher or [None] * len(scores)
    return [Candidate(f"d{i}", source, i, s, t) for i, (s, t) in enumerate(zip(scores, teacher), start=1)]


def ids(found: list[Candidate]) -> list[str]:
    return [c.docid for c in found]


# ---- RankWindow and TopN --------------------------------------------------------------------------------------


def test_rank_window_keeps_inclusive_bounds():
    found = cands([float(10 - i) for i in range(10)])  # ranks 1..10
    assert ids(RankWindow(3, 6)(found, ctx())) == ["d3", "d4", "d5", "d6"]
    assert ids(RankWindow(1, 1)(found, ctx())) == ["d1"]
    assert RankWindow(11, 200)(found, ctx()) == []  # window beyond the retrieved depth


def test_top_n_keeps_best_ranked_even_when_input_is_shuffled():
    found = cands([5.0, 4.0, 3.0, 2.0, 1.0])
    shuffled = [found[3], found[0], found[4], found[2], found[1]]
    assert ids(TopN(3)(shuffled, ctx())) == ["d1", "d2", "d3"]
    assert ids(TopN(10)(found, ctx())) == ["d1", "d2", "d3", "d4", "d5"]
    assert TopN(0)(found, ctx()) == []


# ---- RandomN --------------------------------------------------------------------------------------------------


def test_random_n_is_seeded_and_in_rank_order():
    found = cands([float(-i) for i in range(50)])
    first = RandomN(5)(found, ctx(seed=7))
    again = RandomN(5)(found, ctx(seed=7))
    other = RandomN(5)(found, ctx(seed=8))
    assert ids(first) == ids(again)
    assert ids(first) != ids(other)
    for picked in (first, other):
        assert len(picked) == 5 == len(set(ids(picked)))
        assert [c.rank for c in picked] == sorted(c.rank for c in picked)
        assert set(ids(picked)) <= set(ids(found))


def test_random_n_matches_the_generator_it_is_given():
    found = cands([float(-i) for i in range(20)])
    expected = sorted(np.random.default_rng(3).choice(20, size=4, replace=False).tolist())
    assert ids(RandomN(4)(found, ctx(seed=3))) == [f"d{i + 1}" for i in expected]


def test_random_n_keeps_everything_when_there_are_few_candidates():
    found = cands([3.0, 2.0, 1.0])
    assert ids(RandomN(3)(found, ctx())) == ["d1", "d2", "d3"]
    assert ids(RandomN(8)(found, ctx())) == ["d1", "d2", "d3"]


# ---- MarginFilter ---------------------------------------------------------------------------------------------


def test_margin_absolute_positive_scores():
    found = cands([10.0, 9.5, 9.0, 8.0])
    # positive 10, margin 1 -> keep score <= 9
    assert ids(MarginFilter(1.0)(found, ctx(10.0))) == ["d3", "d4"]
    # margin 0: anything scoring above the positive goes, equal stays
    assert ids(MarginFilter(0.0)(cands([11.0, 10.0, 3.0]), ctx(10.0))) == ["d2", "d3"]


def test_margin_relative_positive_scores():
    found = cands([10.0, 9.5, 9.0, 8.0])
    # limit = 10 - 0.1 * 10 = 9.0
    assert ids(MarginFilter(0.1, relative=True)(found, ctx(10.0))) == ["d3", "d4"]


def test_margin_absolute_negative_scores():
    found = cands([-1.5, -2.0, -2.4, -2.6, -3.0])
    # positive -2.0, margin 0.5 -> limit -2.5
    assert ids(MarginFilter(0.5)(found, ctx(-2.0))) == ["d4", "d5"]


def test_margin_relative_lowers_the_bar_for_negative_scores():
    found = cands([-1.9, -2.0, -2.1, -2.2, -2.3, -5.0])
    # positive -2.0, margin 0.1 relative -> limit -2.0 - 0.1 * 2.0 = -2.2 (not -1.8, which positive*(1-m) gives)
    kept = MarginFilter(0.1, relative=True)(found, ctx(-2.0))
    assert ids(kept) == ["d4", "d5", "d6"]
    assert all(c.score <= -2.2 + 1e-12 for c in kept)
    assert "d1" not in ids(kept) and "d3" not in ids(kept)


def test_margin_on_teacher_scores():
    found = cands([9.0, 8.0, 7.0], teacher=[0.9, 0.2, -1.0])
    assert ids(MarginFilter(0.5, field="teacher_score")(found, ctx(positive_teacher=1.0))) == ["d2", "d3"]


def test_margin_without_positive_score_keeps_all():
    found = cands([10.0, 9.0, 8.0])
    assert ids(MarginFilter(0.5)(found, ctx(None))) == ["d1", "d2", "d3"]
    assert ids(MarginFilter(0.5, relative=True)(found, ctx(None))) == ["d1", "d2", "d3"]
    # on teacher scores the source's positive score does not count
    assert ids(MarginFilter(0.5, field="teacher_score")(found, ctx(100.0, None))) == ["d1", "d2", "d3"]


# ---- TeacherDenoise -------------------------------------------------------------------------------------------


def test_teacher_denoise_drops_at_or_above_threshold():
    found = cands([5.0, 4.0, 3.0, 2.0], teacher=[0.9, 0.5, 0.49, -2.0])
    assert ids(TeacherDenoise(0.5)(found, ctx())) == ["d3", "d4"]


# ---- SimANS ---------------------------------------------------------------------------------------------------


def test_simans_weights_by_hand():
    a, b, pos = 0.5, 0.2, 1.0
    scores = [1.2, 0.0, 2.0]
    raw = [math.exp(-a * (s - pos - b) ** 2) for s in scores]  # exp(0), exp(-0.72), exp(-0.32)
    expected = [r / sum(raw) for r in raw]
    weights = SimANS(2, a=a, b=b).weights(np.array(scores), pos)
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    assert weights.argmax() == 0  # s - s_pos == b: the most ambiguous
    assert math.isclose(weights.sum(), 1.0)


def test_simans_weights_survive_large_distances():
    weights = SimANS(1, a=1.0).weights(np.array([0.0, 100.0, 200.0]), 0.0)  # exp(-40000) underflows naively
    np.testing.assert_allclose(weights, [1.0, 0.0, 0.0])


def test_simans_sampling_is_seeded_and_follows_weights():
    found = cands([float(x) for x in np.linspace(5, -5, 30)])
    strategy = SimANS(3, a=2.0)
    first, again = strategy(found, ctx(0.0, seed=1)), strategy(found, ctx(0.0, seed=1))
    assert ids(first) == ids(again)
    assert len(first) == 3
    assert [c.rank for c in first] == sorted(c.rank for c in first)
    seeds = [ids(strategy(found, ctx(0.0, seed=s))) for s in range(5)]
    assert len({tuple(s) for s in seeds}) > 1
    # with a sharp peak at s_pos, picks cluster around score 0 (never the extremes)
    for s in range(20):
        assert all(abs(c.score) < 3.0 for c in strategy(found, ctx(0.0, seed=s)))
    # the same draw numpy makes with those weights
    w = strategy.weights(np.array([c.score for c in found]), 0.0)
    expected = sorted(np.random.default_rng(1).choice(30, size=3, replace=False, p=w).tolist())
    assert ids(first) == [found[i].docid for i in expected]


def test_simans_keeps_all_without_positive_or_few_candidates():
    found = cands([3.0, 2.0, 1.0])
    assert ids(SimANS(2)(found, ctx(None))) == ["d1", "d2", "d3"]
    assert ids(SimANS(3)(found, ctx(0.0))) == ["d1", "d2", "d3"]


# ---- AdaptiveThreshold ----------------------------------------------------------------------------------------


def test_adaptive_threshold_mean_plus_k_std_by_hand():
    teacher = [4.0, 1.0, 0.0, -1.0, 1.0]
    mean = sum(teacher) / 5  # 1.0
    std = math.sqrt(sum((t - mean) ** 2 for t in teacher) / 5)  # sqrt(14/5) = 1.673 (population std)
    assert math.isclose(mean + 1.0 * std, 2.6733, rel_tol=1e-4)
    found = cands([5.0, 4.0, 3.0, 2.0, 1.0], teacher=teacher)
    assert ids(AdaptiveThreshold(1.0)(found, ctx())) == ["d2", "d3", "d4", "d5"]  # 4.0 > 2.67 dropped
    # k = 0: limit is the mean (1.0); equal to the limit is kept
    assert ids(AdaptiveThreshold(0.0)(found, ctx())) == ["d2", "d3", "d4", "d5"]
    # k = -0.5: limit 1 - 0.837 = 0.163
    assert ids(AdaptiveThreshold(-0.5)(found, ctx())) == ["d3", "d4"]
    # k = 2: limit 4.35, nothing dropped
    assert ids(AdaptiveThreshold(2.0)(found, ctx())) == ["d1", "d2", "d3", "d4", "d5"]


def test_adaptive_threshold_on_source_scores_and_single_candidate():
    found = cands([10.0, 2.0, 1.0, 0.0])  # mean 3.25, std 3.960 -> limit 7.21
    assert ids(AdaptiveThreshold(1.0, field="score")(found, ctx())) == ["d2", "d3", "d4"]
    one = cands([1.0])  # no statistics from one candidate: kept, even without a teacher score
    assert ids(AdaptiveThreshold(1.0)(one, ctx())) == ["d1"]


def test_adaptive_threshold_keeps_equal_scores():
    found = cands([1.0, 1.0, 1.0], teacher=[0.3, 0.3, 0.3])  # std 0: every score equals the limit
    assert ids(AdaptiveThreshold(1.0)(found, ctx())) == ["d1", "d2", "d3"]


# ---- SelfAdversarial ------------------------------------------------------------------------------------------


def test_self_adversarial_from_run_keeps_top_depth():
    run = {"q1": [Hit("d4", 9.0), Hit("d2", 8.0), Hit("d9", 7.0), Hit("d1", 6.0)], "q2": [Hit("d1", 1.0)]}
    strategy = SelfAdversarial.from_run(run, depth=3)
    assert strategy.top_docids == {"q1": frozenset({"d4", "d2", "d9"}), "q2": frozenset({"d1"})}
    found = cands([5.0, 4.0, 3.0, 2.0, 1.0])
    assert ids(strategy(found, ctx(qid="q1"))) == ["d2", "d4"]  # d1 is at rank 4 of that run: too low
    assert ids(strategy(found, ctx(qid="q2"))) == ["d1"]
    assert strategy(found, ctx(qid="q-unknown")) == []


# ---- strategies needing teacher scores --------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy, context",
    [
        (TeacherDenoise(0.5), ctx()),
        (AdaptiveThreshold(1.0), ctx()),
        (MarginFilter(0.1, field="teacher_score"), ctx(positive_teacher=1.0)),
        (SimANS(1, field="teacher_score"), ctx(positive_teacher=1.0)),
    ],
    ids=["denoise", "adaptive", "margin-teacher", "simans-teacher"],
)
def test_teacher_strategies_without_teacher_scores_raise(strategy, context):
    with pytest.raises(RankkitError, match="Fix") as info:
        strategy(cands([3.0, 2.0, 1.0]), context)
    assert "teacher_score" in str(info.value)
    assert "d1" in str(info.value)
