"""The label-free dev criterion of distillation: teacher agreement by hand, the seeded hold-out of
training queries, and `rankkit distill --holdout-queries` logging it while never training on them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.distill.agreement import teacher_agreement
from rankkit.distill.knowledge import QueryKnowledge
from rankkit.distill.pipeline import hold_out
from rankkit.distill.task import DistillTask
from rankkit.errors import RankkitError


def test_teacher_agreement_by_hand():
    teacher, student = {"q": np.array([2.0, 0.0, 0.0])}, {"q": np.array([0.0, 2.0, 0.0])}
    # p = softmax(teacher) = (e^2, 1, 1) / (e^2 + 2); log p - log softmax(student) = (2, -2, 0)
    expected_kl = 2 * (math.e**2 - 1) / (math.e**2 + 2)
    top1 = teacher_agreement(student, teacher, cutoff=1)
    assert top1 == pytest.approx({"teacher_kl": expected_kl, "top1_overlap": 0.0, "queries": 1})
    # top 2: the teacher's {0, 1} (ties keep the candidates' order) against the student's {1, 0}
    assert teacher_agreement(student, teacher, cutoff=2)["top2_overlap"] == 1.0
    # T^2 * KL at T = 2 of doubled scores is 4 times the KL at T = 1
    doubled = teacher_agreement({"q": student["q"] * 2}, {"q": teacher["q"] * 2}, temperature=2.0, cutoff=1)
    assert doubled["teacher_kl"] == pytest.approx(4 * expected_kl)
    same = teacher_agreement(teacher, teacher)
    assert same["teacher_kl"] == pytest.approx(0.0, abs=1e-12) and same["top10_overlap"] == 1.0


def _knowledge(count: int) -> dict[str, QueryKnowledge]:
    return {f"q{i}": QueryKnowledge(f"q{i}", "text", [], {}, {}, []) for i in range(count)}


def test_hold_out_is_seeded_disjoint_and_leaves_queries_to_train_on():
    train, dev = hold_out(_knowledge(10), 3, seed=0)
    assert len(dev) == 3 and len(train) == 7 and not set(train) & set(dev)
    assert hold_out(_knowledge(10), 3, seed=0)[1].keys() == dev.keys()
    with pytest.raises(RankkitError, match=r"--holdout-queries 10 would hold out all 10 queries.*Fix"):
        hold_out(_knowledge(10), 10, seed=0)


def test_distill_logs_agreement_on_held_out_queries_it_never_trains_on(
    tmp_path, sample_dir, tiny_model, other_tiny_model, monkeypatch
):
    trained_on: set[str] = set()
    original = DistillTask.loss

    def loss(self, batch):
        trained_on.update(group.qid for group in batch)
        return original(self, batch)

    monkeypatch.setattr(DistillTask, "loss", loss)
    out = tmp_path / "distilled"
    result = CliRunner().invoke(
        app,
        [
            "distill",
            "--teacher",
            str(other_tiny_model),
            "--student",
            str(tiny_model),
            "--queries",
            str(sample_dir / "queries.tsv"),
            "--corpus",
            str(sample_dir / "collection.tsv"),
            "-o",
            str(out),
            "--rounds",
            "2",
            "--queries-per-round",
            "100",
            "--batch-size",
            "4",
            "--depth",
            "12",
            "--hard-pool",
            "6",
            "--pl-temperature",
            "0.05",
            "--holdout-queries",
            "3",
            "--eval-every",
            "1",
            "--mode",
            "plain",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert records and all(set(r["dev"]) == {"teacher_kl", "top10_overlap", "queries"} for r in records)
    assert all(r["dev"]["queries"] == 3 and r["dev"]["teacher_kl"] >= 0 for r in records)
    summary = json.loads((out / "distill.json").read_text())
    assert summary["knowledge"]["holdout_queries"] == 3
    before = summary["knowledge"]["dev_before"]  # the untrained student's agreement, the curve's start
    assert before["queries"] == 3 and before["teacher_kl"] >= 0 and before != records[-1]["dev"]
    used = summary["knowledge"]["queries_used"]
    assert len(trained_on) == used - 3  # every other query was trained on (100 per round covers them all)
    bad = CliRunner().invoke(
        app,
        [
            "distill",
            "--teacher",
            str(other_tiny_model),
            "--queries",
            str(sample_dir / "queries.tsv"),
            "--corpus",
            str(sample_dir / "collection.tsv"),
            "-o",
            str(tmp_path / "bad"),
            "--holdout-queries",
            "-1",
        ],
    )
    assert bad.exit_code == 2 and "--holdout-queries" in bad.stderr and "Fix" in bad.stderr
