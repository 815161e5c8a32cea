"""`rankkit distill` end to end through Typer's CliRunner on the bundled sample with tiny models:
contrastive distillation (bi-encoder teacher and student), plain distillation (a TREC run teacher,
a cross-encoder student), and user errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import usage_error
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.data.corpus import read_doc_texts
from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit, write_run
from rankkit.distill.pipeline import snapshot_dir

runner = CliRunner()
SMALL = ["--rounds", "2", "--queries-per-round", "4", "--batch-size", "4", "--depth", "12", "--hard-pool", "6"]


def invoke(*args):
    return runner.invoke(app, ["distill", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, sample_dir) -> Path:
    """A teacher run: 12 sample passages per query with seeded scores."""
    rng = np.random.default_rng(0)
    docids = sorted(read_doc_texts(sample_dir / "collection.tsv"))
    run = {
        qid: [Hit(d, float(rng.normal() * 3)) for d in rng.choice(docids, size=12, replace=False)]
        for qid in read_queries(sample_dir / "queries.tsv")
    }
    path = tmp_path_factory.mktemp("teacher-run") / "teacher.trec"
    write_run(run, path, tag="teacher")
    return path


def test_contrastive_distillation_end_to_end(tmp_path, sample_dir, tiny_model, other_tiny_model):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "distilled"
    args = (
        "--teacher",
        other_tiny_model,
        "--student",
        tiny_model,
        "--queries",
        sample_dir / "queries.tsv",
        "--corpus",
        sample_dir / "collection.tsv",
        "-o",
        out,
        *SMALL,
        "--self-adversarial-rounds",
        "1",
        "--pl-temperature",
        "0.05",
        "--plot",
        "--overwrite",
    )
    # regression: the round snapshots were written into the output, which --overwrite's final swap
    # then refused as a folder rankkit had not written; the second run replaces the first's output
    for _ in range(2):
        result = invoke(*args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"saved the distilled student to {out / 'model'}" in result.output
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(records) == 2  # 2 rounds of 4 queries in batches of 4
    for record in records:
        assert {
            "loss_student",
            "loss_discriminator",
            "contrastive_loss",
            "distill_loss",
            "discriminator_accuracy",
            "weight_hard",
        } <= set(record)
    assert any("weight_self_adversarial" in r for r in records)
    assert (out / "discriminator_weights.png").stat().st_size > 0 and (out / "training_curves.png").is_file()
    summary = json.loads((out / "distill.json").read_text())
    assert summary["knowledge"]["queries_used"] > 0 and summary["config"]["mode"] == "contrastive"
    assert summary["config"]["distill_candidates"] == 8  # the default: the distillation term also scores candidates
    assert set(summary["knowledge"]["rounds_with_self_adversarial"]) == {"0", "1"}
    assert not snapshot_dir(out).exists() and not (out / "checkpoints").exists()
    student, start = (
        SentenceTransformer(str(out / "model"), device="cpu"),
        SentenceTransformer(str(tiny_model), device="cpu"),
    )
    trained, initial = student.encode(["how do stars form"]), start.encode(["how do stars form"])
    assert trained.shape == initial.shape and not np.allclose(trained, initial)


def test_plain_distillation_from_a_run_into_a_cross_encoder(tmp_path, sample_dir, tiny_model, teacher_run):
    from rankkit.encode.crossencoder import CrossEncoder

    out = tmp_path / "plain"
    result = invoke(
        "--teacher",
        teacher_run,
        "--student",
        tiny_model,
        "--student-kind",
        "cross-encoder",
        "--queries",
        sample_dir / "queries.tsv",
        "--corpus",
        sample_dir / "collection.tsv",
        "-o",
        out,
        *SMALL,
        "--mode",
        "plain",
        "--distill-loss",
        "margin-mse",
        "--precision",
        "fp32",
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert json.loads((out / "config.json").read_text())["precision"] == "fp32"  # reached the training loop
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert records and all(
        "distill_loss" in r and "weight_hard" not in r and "contrastive_loss" not in r for r in records
    )
    summary = json.loads((out / "distill.json").read_text())
    assert summary["teacher"] == "teacher.trec" and summary["knowledge"]["rounds_with_self_adversarial"] == {}
    scores = CrossEncoder(out / "model", device="cpu").score([("how do stars form", "stars form from gas")])
    assert scores.shape == (1,) and np.isfinite(scores).all()
    _fails(
        invoke(
            "--teacher",
            teacher_run,
            "--student",
            tiny_model,
            "--queries",
            sample_dir / "queries.tsv",
            "--corpus",
            sample_dir / "collection.tsv",
            "-o",
            out,
            "--mode",
            "plain",
        ),
        "already holds a distilled model",
    )


def test_grad_accum_takes_one_optimizer_step_per_two_micro_batches(tmp_path, sample_dir, tiny_model, teacher_run):
    out = tmp_path / "accumulated"
    result = invoke(
        "--teacher",
        teacher_run,
        "--student",
        tiny_model,
        "--queries",
        sample_dir / "queries.tsv",
        "--corpus",
        sample_dir / "collection.tsv",
        "-o",
        out,
        *SMALL,
        "--mode",
        "plain",
        "--grad-accum",
        "2",
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert json.loads((out / "config.json").read_text())["grad_accum"] == 2  # reached the training loop
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1]  # 2 rounds of one micro-batch of 4 queries: one optimizer step


def test_grad_accum_takes_the_step_of_the_larger_batch(tmp_path, sample_dir, tiny_model, teacher_run):
    """Without dropout, --batch-size 4 --grad-accum 2 trains the student to the same weights as
    --batch-size 8: the accumulated step is the larger batch's step, in less memory."""
    from safetensors.torch import load_file

    model = tmp_path / "no-dropout"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(
        json.dumps({**config, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0})
    )
    weights = []
    for name, batching in (("big", ["--batch-size", "8"]), ("accumulated", ["--batch-size", "4", "--grad-accum", "2"])):
        result = invoke(
            "--teacher",
            teacher_run,
            "--student",
            model,
            "--queries",
            sample_dir / "queries.tsv",
            "--corpus",
            sample_dir / "collection.tsv",
            "-o",
            tmp_path / name,
            "--mode",
            "plain",
            "--rounds",
            "1",
            "--queries-per-round",
            "8",
            "--depth",
            "12",
            "--lr",
            "1e-3",
            *batching,
        )
        assert result.exit_code == 0, result.output + repr(result.exception)
        weights.append(load_file(tmp_path / name / "model" / "model.safetensors"))
    start = load_file(model / "model.safetensors")
    assert not torch.allclose(
        weights[0]["embeddings.word_embeddings.weight"], start["embeddings.word_embeddings.weight"]
    )
    assert all(torch.allclose(weights[0][k], weights[1][k], atol=1e-6) for k in weights[0])


def test_confident_queries_trains_on_the_queries_the_teacher_scores_highest(
    tmp_path, sample_dir, tiny_model, teacher_run, monkeypatch
):
    from rankkit.data.runs import read_run
    from rankkit.distill import pipeline

    seen = []
    build = pipeline.build_knowledge
    monkeypatch.setattr(
        pipeline,
        "build_knowledge",
        lambda queries, candidates, *rest: seen.append(set(candidates)) or build(queries, candidates, *rest),
    )
    out = tmp_path / "confident"
    result = invoke(
        "--teacher",
        teacher_run,
        "--student",
        tiny_model,
        "--queries",
        sample_dir / "queries.tsv",
        "--corpus",
        sample_dir / "collection.tsv",
        "-o",
        out,
        *SMALL,
        "--mode",
        "plain",
        "--confident-queries",
        "3",
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    run = read_run(teacher_run)
    best = sorted(run, key=lambda qid: -max(h.score for h in run[qid]))
    assert seen == [set(best[:3])]
    knowledge = json.loads((out / "distill.json").read_text())["knowledge"]
    assert knowledge["queries_offered"] == len(run) > 3 and knowledge["queries"] == 3


def _fails(result, expect: str) -> None:
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert "error:" in result.stderr and "Fix" in result.stderr and expect in result.stderr
    assert "Traceback" not in result.output


def test_distill_refuses_two_candidate_sources(tmp_path, sample_dir, tiny_model, teacher_run):
    _fails(
        invoke(
            "--teacher",
            teacher_run,
            "--student",
            tiny_model,
            "--queries",
            sample_dir / "queries.tsv",
            "--corpus",
            sample_dir / "collection.tsv",
            "-o",
            tmp_path / "x",
            "--candidates",
            teacher_run,
            "--index",
            tmp_path,
        ),
        "not both",
    )


def test_distill_refuses_candidates_a_teacher_run_cannot_score(tmp_path, sample_dir, tiny_model, teacher_run):
    other = tmp_path / "other.trec"
    write_run({"q01": [Hit("no-such-doc-in-teacher", 1.0)]}, other)
    (tmp_path / "corpus.tsv").write_text((sample_dir / "collection.tsv").read_text() + "no-such-doc-in-teacher\ttext\n")
    _fails(
        invoke(
            "--teacher",
            teacher_run,
            "--student",
            tiny_model,
            "--queries",
            sample_dir / "queries.tsv",
            "--corpus",
            tmp_path / "corpus.tsv",
            "-o",
            tmp_path / "x",
            "--candidates",
            other,
        ),
        "has no score for document 'no-such-doc-in-teacher'",
    )


@pytest.mark.parametrize(
    "option, value, expect",
    [
        ("--student-kind", "ranker", "'ranker' is not one of"),
        ("--mode", "other", "'other' is not one of"),
        ("--distill-loss", "mse", "'mse' is not one of"),
        ("--depth", "1", "an integer >= 2"),
        ("--self-adversarial-rounds", "0", "an integer >= 1"),
        ("--distill-candidates", "-1", "an integer >= 0"),
        ("--batch-size", "0", "an integer >= 1"),
        ("--grad-accum", "0", "an integer >= 1"),
        ("--confident-queries", "0", "an integer >= 1"),
    ],
)
def test_distill_refuses_bad_settings_when_parsing(tmp_path, sample_dir, option, value, expect):
    result = invoke(
        "--teacher",
        "no-such-teacher",
        "--queries",
        sample_dir / "queries.tsv",
        "--corpus",
        sample_dir / "collection.tsv",
        "-o",
        tmp_path / "x",
        option,
        value,
    )
    usage_error(result, option, expect)


@pytest.mark.parametrize(
    "settings, expect",
    [
        ({"batch_size": 0}, "batch_size=0 is out of range. Fix: pass a value >= 1"),
        ({"grad_accum": 0}, "grad_accum=0 is out of range"),
        ({"confident_queries": 0}, "confident_queries=0 is out of range"),
        ({"mode": "other"}, "unknown mode 'other'. Fix: use one of contrastive, plain"),
        ({"depth": 1}, "depth=1 is out of range. Fix: pass a value >= 2"),
    ],
)
def test_distill_config_refuses_what_the_command_refuses(tmp_path, settings, expect):
    from rankkit.distill import DistillConfig
    from rankkit.errors import RankkitError

    config = DistillConfig(teacher="t", queries="q", corpus="c", output=str(tmp_path / "x"), **settings)
    with pytest.raises(RankkitError, match=re.escape(expect)):
        config.check()
