"""Sentiment metrics against values computed by hand, and the plots."""

from __future__ import annotations

import pytest

from rankkit.errors import RankkitError
from rankkit.sentiment.metrics import expected_calibration_error, format_metrics, plot_curves, sentiment_metrics

# an imbalanced toy set: 2 positives among 8 (prior 0.25), ranked 1st and 4th by score
LABELS = [1, 0, 0, 1, 0, 0, 0, 0]
SCORES = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1]


def test_auprc_and_auroc_on_an_imbalanced_toy_set():
    measured = sentiment_metrics(LABELS, SCORES)
    # average precision: recall steps of 1/2 at ranks 1 (precision 1/1) and 4 (precision 2/4)
    assert measured["auprc"] == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    assert measured["positive_prior"] == pytest.approx(0.25)  # AUPRC's chance level
    # AUROC: the first positive outranks all 6 negatives, the second 4 of them: 10 of 12 pairs
    assert measured["auroc"] == pytest.approx(10 / 12)


def test_threshold_metrics_and_confusion_matrix():
    measured = sentiment_metrics(LABELS, SCORES)
    # predicted positive (>= 0.5): ranks 1-4, so TP 2, FP 2, TN 4, FN 0
    assert measured["confusion_matrix"] == [[4, 2], [0, 2]]
    assert measured["accuracy"] == pytest.approx(6 / 8)
    assert measured["per_class"]["positive"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 2}
    )
    assert measured["per_class"]["negative"] == pytest.approx(
        {"precision": 1.0, "recall": 4 / 6, "f1": 0.8, "support": 6}
    )
    assert measured["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_expected_calibration_error_by_hand():
    # predicted-class confidences 0.95, 0.92 (one right, one wrong: same bin), 0.7 (right), 0.6 (right)
    labels, probability = [1, 0, 0, 1], [0.95, 0.92, 0.3, 0.6]
    expected = 2 / 4 * abs(0.5 - (0.95 + 0.92) / 2) + 1 / 4 * abs(1 - 0.7) + 1 / 4 * abs(1 - 0.6)
    assert expected_calibration_error(labels, probability) == pytest.approx(expected)
    assert sentiment_metrics(labels, probability)["ece"] == pytest.approx(expected)


def test_a_perfectly_calibrated_certain_model_has_zero_ece():
    assert expected_calibration_error([1, 0, 1], [1.0, 0.0, 1.0]) == 0.0


def test_one_class_has_no_auroc_and_says_so():
    measured = sentiment_metrics([1, 1], [0.8, 0.4])
    assert measured["auroc"] is None and measured["auprc"] is None
    assert "n/a (one class only)" in format_metrics(measured)


def test_mismatched_lengths_are_an_error():
    with pytest.raises(RankkitError, match="as many probabilities as labels"):
        sentiment_metrics([1, 0], [0.5])


def test_format_mentions_every_measure():
    text = format_metrics(sentiment_metrics(LABELS, SCORES))
    for fragment in (
        "accuracy 0.7500",
        "AUROC 0.8333",
        "AUPRC 0.7500",
        "positive prior 0.2500",
        "ECE",
        "positive: precision 0.5000",
        "[[4, 2], [0, 2]]",
    ):
        assert fragment in text


def test_plots_are_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    written = plot_curves(LABELS, SCORES, tmp_path / "plots")
    assert sorted(p.name for p in written) == ["pr.png", "reliability.png", "roc.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "plots").iterdir() if ".tmp" in p.name]
    assert len(list((tmp_path / "plots").iterdir())) == 3
