"""`rankkit mine` (and the MiningRecipe behind it) through Typer's CliRunner on the bundled sample:
from a BM25 run written here, from a dense index built from the tiny model, with a teacher; user
errors exit 2 with one 'error: ... Fix' line and no traceback."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import usage_error
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.data.corpus import read_doc_texts
from rankkit.data.qrels import read_qrels, write_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit, read_run, write_run
from rankkit.encode import BiEncoder
from rankkit.index.dense import build_dense_index
from rankkit.mining import MinedSet

runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, ["mine", *(str(a) for a in args)])


def ok(*args: str | Path):
    result = invoke(*args)
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def fails(*args: str | Path, expect: str):
    result = invoke(*args)
    assert result.exit_code == 2, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "error:" in result.stderr
    assert "Fix" in result.stderr
    assert "Traceback" not in result.output
    assert expect in result.stderr
    return result


@pytest.fixture(scope="module")
def sample(sample_dir) -> dict[str, Path]:
    return {
        "queries": sample_dir / "queries.tsv",
        "qrels": sample_dir / "qrels.txt",
        "corpus": sample_dir / "collection.tsv",
    }


def common(sample: dict[str, Path], qrels: Path | None = None) -> list[str | Path]:
    return ["--queries", sample["queries"], "--qrels", qrels or sample["qrels"], "--corpus", sample["corpus"]]


def bm25_run(
    queries: dict[str, str], docs: dict[str, str], depth: int, k1: float = 0.9, b: float = 0.4
) -> dict[str, list[Hit]]:
    """A plain BM25 (Robertson idf, whitespace tokens) over the sample: the top `depth` per query."""
    tokens = {d: [t.strip(".,;:!?()'\"").lower() for t in text.split()] for d, text in docs.items()}
    avg = sum(len(t) for t in tokens.values()) / len(tokens)
    df = Counter(t for toks in tokens.values() for t in set(toks))
    run = {}
    for qid, query in queries.items():
        terms = [t.strip("?").lower() for t in query.split()]
        scores = {}
        for d, toks in tokens.items():
            tf = Counter(toks)
            score = 0.0
            for t in terms:
                if tf[t]:
                    idf = math.log(1 + (len(docs) - df[t] + 0.5) / (df[t] + 0.5))
                    score += idf * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * len(toks) / avg))
            scores[d] = score
        best = sorted(scores, key=lambda d: (-scores[d], d))[:depth]
        run[qid] = [Hit(d, round(scores[d], 4) - i * 1e-4) for i, d in enumerate(best)]  # no ties
    return run


@pytest.fixture(scope="module")
def run_file(sample, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mine-run") / "bm25.run"
    write_run(bm25_run(read_queries(sample["queries"]), read_doc_texts(sample["corpus"]), depth=30), path, tag="bm25")
    return path


@pytest.fixture(scope="module")
def dense_index(sample, tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mine-index") / "sample-dense"
    build_dense_index(sample["corpus"], out, BiEncoder(tiny_model, device="cpu"))
    return out


def read_output(output: Path) -> tuple[MinedSet, dict]:
    stats_path = output.with_suffix(".stats.json")
    assert output.is_file() and stats_path.is_file()
    return MinedSet.read(output), json.loads(stats_path.read_text(encoding="utf-8"))


# ---- from a run -----------------------------------------------------------------------------------------------


def test_mine_from_bm25_run(sample, run_file, tmp_path):
    output = tmp_path / "mined.jsonl"
    result = ok(*common(sample), "--run", run_file, "--output", output, "--count", 3, "--max-rank", 30)
    mined, stats = read_output(output)
    assert stats == mined.stats
    assert "false_negative_rate" not in stats
    assert f"to {output}" in result.output
    qrels, queries = read_qrels(sample["qrels"]), read_queries(sample["queries"])
    assert stats["queries_mined"] == len(mined.queries) == 16
    assert stats["negatives"] == 16 * 3
    for q in mined.queries:
        assert q.query == queries[q.qid]
        assert q.positives == {d: g for d, g in qrels[q.qid].items() if g >= 1}
        assert len(q.negatives) == 3
        assert not {c.docid for c in q.negatives} & set(q.positives)
        assert all(c.source == "bm25.run" and c.strategy == "window>top" for c in q.negatives)
        assert [c.rank for c in q.negatives] == sorted(c.rank for c in q.negatives)
        assert all(c.teacher_score is None for c in q.negatives)
        # the 3 best-ranked non-positives: every rank above the last one that was passed over is a positive
        last = q.negatives[-1].rank
        passed_over = set(range(1, last + 1)) - {c.rank for c in q.negatives}
        assert passed_over == {p.rank for p in q.positive_provenance.values() if p.rank < last}
        assert len(q.positive_provenance) >= 1  # BM25 on the sample retrieves a positive for every query
    assert mined.config["runs"] == [str(run_file)]
    assert mined.config["count"] == 3 and mined.config["seed"] == 0


def test_full_qrels_add_the_false_negative_rate(sample, run_file, tmp_path):
    # mine against partial judgments (grade-3 documents unjudged) and measure against the full ones
    full = read_qrels(sample["qrels"])
    partial = {qid: {d: g for d, g in judged.items() if g < 3} for qid, judged in full.items()}
    partial_path = tmp_path / "partial.qrels"
    write_qrels(partial, partial_path)
    output = tmp_path / "mined.jsonl"
    ok(
        *common(sample, partial_path),
        "--run",
        run_file,
        "--output",
        output,
        "--count",
        5,
        "--max-rank",
        30,
        "--full-qrels",
        sample["qrels"],
    )
    mined, stats = read_output(output)
    rates = stats["false_negative_rate"]
    assert set(rates) == {"bm25.run"}
    negatives = [(c, full.get(q.qid, {}).get(c.docid, 0) >= 1) for q in mined.queries for c in q.negatives]
    expected_all = sum(is_false for _, is_false in negatives) / len(negatives)
    assert rates["bm25.run"]["all"] == pytest.approx(expected_all)
    assert expected_all > 0  # the unjudged grade-3 documents come back as negatives
    top10 = [is_false for c, is_false in negatives if c.rank <= 10]
    assert rates["bm25.run"]["1-10"] == pytest.approx(sum(top10) / len(top10))


def test_full_qrels_rate_uses_the_mining_min_grade(sample, run_file, tmp_path):
    """Regression: with --min-grade 2, grade-1 documents are not positives (so they may be mined),
    and the same judgments as --full-qrels must not call them false negatives."""
    output = tmp_path / "mined.jsonl"
    ok(
        *common(sample),
        "--run",
        run_file,
        "--output",
        output,
        "--count",
        10,
        "--max-rank",
        30,
        "--min-grade",
        2,
        "--full-qrels",
        sample["qrels"],
    )
    mined, stats = read_output(output)
    qrels = read_qrels(sample["qrels"])
    grade1 = [c for q in mined.queries for c in q.negatives if qrels[q.qid].get(c.docid) == 1]
    assert grade1  # grade-1 documents were mined as negatives
    assert all(rate == 0.0 for rate in stats["false_negative_rate"]["bm25.run"].values())


def test_random_sampling_is_seeded_through_the_cli(sample, run_file, tmp_path):
    def body(seed: int, name: str) -> list[str]:
        output = tmp_path / name
        ok(
            *common(sample),
            "--run",
            run_file,
            "--output",
            output,
            "--count",
            4,
            "--max-rank",
            30,
            "--sampling",
            "random",
            "--seed",
            seed,
        )
        return output.read_text(encoding="utf-8").splitlines()[1:]  # the header names the output path

    first, again, other = body(5, "a.jsonl"), body(5, "b.jsonl"), body(6, "c.jsonl")
    assert first == again
    assert first != other


def test_margin_and_simans_from_a_run(sample, run_file, tmp_path):
    output = tmp_path / "mined.jsonl"
    ok(
        *common(sample),
        "--run",
        run_file,
        "--output",
        output,
        "--count",
        2,
        "--max-rank",
        30,
        "--margin",
        0.5,
        "--sampling",
        "simans",
        "--simans-a",
        0.5,
    )
    mined, _ = read_output(output)
    assert mined.queries
    for q in mined.queries:
        assert all(c.strategy == "window>margin>simans" for c in q.negatives)
        if q.positive_provenance:
            best = max(p.score for p in q.positive_provenance.values())
            assert all(c.score <= best - 0.5 + 1e-9 for c in q.negatives)


# ---- from a dense index ---------------------------------------------------------------------------------------


def test_mine_from_dense_index(sample, dense_index, tiny_model, tmp_path):
    output = tmp_path / "dense.jsonl"
    ok(
        *common(sample),
        "--index",
        dense_index,
        "--output",
        output,
        "--depth",
        20,
        "--min-rank",
        2,
        "--max-rank",
        20,
        "--count",
        4,
        "--margin",
        0.0,
        "--device",
        "cpu",
    )
    mined, stats = read_output(output)
    assert stats["queries_mined"] == len(mined.queries) > 0
    encoder = BiEncoder(tiny_model, device="cpu")
    queries, qrels = read_queries(sample["queries"]), read_qrels(sample["qrels"])
    texts = read_doc_texts(sample["corpus"])
    for q in mined.queries:
        assert 1 <= len(q.negatives) <= 4
        assert all(c.source == "dense:sample-dense" and 2 <= c.rank <= 20 for c in q.negatives)
        assert not {c.docid for c in q.negatives} & set(q.positives)
        # the margin compares with the positive's exact dense score, retrieved or not
        positives = [d for d, g in qrels[q.qid].items() if g >= 1]
        vectors = encoder.encode([queries[q.qid]] + [texts[d] for d in positives])
        best = float(np.max(vectors[1:] @ vectors[0]))
        assert all(c.score <= best + 1e-5 for c in q.negatives)
    assert mined.config["indexes"] == [str(dense_index)]


# ---- teacher --------------------------------------------------------------------------------------------------


def test_teacher_scores_every_negative(sample, run_file, tiny_model, tmp_path):
    output = tmp_path / "teacher.jsonl"
    ok(
        *common(sample),
        "--run",
        run_file,
        "--output",
        output,
        "--count",
        3,
        "--max-rank",
        30,
        "--teacher",
        tiny_model,
        "--denoise-threshold",
        0.5,
        "--device",
        "cpu",
    )
    mined, stats = read_output(output)
    assert stats["negatives"] > 0
    negatives = [c for q in mined.queries for c in q.negatives]
    assert negatives and all(c.teacher_score is not None and c.teacher_score < 0.5 for c in negatives)
    assert all(c.strategy == "window>denoise>top" for c in negatives)
    assert all(p.teacher_score is not None for q in mined.queries for p in q.positive_provenance.values())
    assert "denoise" in stats["share_dropped_by_strategy"]


# ---- user errors ----------------------------------------------------------------------------------------------


def test_no_candidate_source(sample, tmp_path):
    fails(*common(sample), "--output", tmp_path / "m.jsonl", expect="--index")
    assert not (tmp_path / "m.jsonl").exists()


def test_denoise_without_teacher(sample, run_file, tmp_path):
    fails(
        *common(sample),
        "--run",
        run_file,
        "--output",
        tmp_path / "m.jsonl",
        "--denoise-threshold",
        0.5,
        expect="--teacher",
    )
    fails(*common(sample), "--run", run_file, "--output", tmp_path / "m.jsonl", "--adaptive-k", 1.0, expect="--teacher")
    assert not (tmp_path / "m.jsonl").exists()


def test_unknown_sampling(sample, run_file, tmp_path):
    usage_error(
        invoke(*common(sample), "--run", run_file, "--output", tmp_path / "m.jsonl", "--sampling", "hardest"),
        "--sampling",
        "'hardest' is not one of 'top', 'random', 'simans'",
    )


def test_unknown_score_field(sample, run_file, tmp_path):
    usage_error(
        invoke(*common(sample), "--run", run_file, "--output", tmp_path / "m.jsonl", "--score-field", "logit"),
        "--score-field",
        "'logit' is not one of",
    )


def test_window_deeper_than_retrieval(sample, dense_index, tmp_path):
    fails(
        *common(sample),
        "--index",
        dense_index,
        "--output",
        tmp_path / "m.jsonl",
        "--depth",
        50,
        "--max-rank",
        100,
        expect="--depth 100",
    )
    assert not (tmp_path / "m.jsonl").exists()


def test_missing_run_file(sample, tmp_path):
    fails(*common(sample), "--run", tmp_path / "nope.run", "--output", tmp_path / "m.jsonl", expect="nope.run")


def test_pooling_run_gives_the_provenance(sample, dense_index, run_file, tmp_path):
    output = tmp_path / "mined.jsonl"
    ok(
        *common(sample),
        "--index",
        dense_index,
        "--output",
        output,
        "--count",
        5,
        "--max-rank",
        30,
        "--depth",
        30,
        "--pooling-run",
        run_file,
        "--full-qrels",
        sample["qrels"],
    )
    mined, stats = read_output(output)
    assert set(stats["false_negative_rate"]) == {"dense:sample-dense"}  # measured per mining source
    pool = {
        qid: {h.docid: (rank, h.score) for rank, h in enumerate(hits, 1)} for qid, hits in read_run(run_file).items()
    }
    for q in mined.queries:
        for c in q.negatives:
            assert c.source == "bm25.run"
            assert (c.rank, c.score) == pool[q.qid].get(c.docid, (31, min(s for _, s in pool[q.qid].values())))
        assert {d: (c.rank, c.score) for d, c in q.positive_provenance.items()} == {
            d: pool[q.qid][d] for d in q.positives if d in pool[q.qid]
        }
    assert mined.config["provenance_from"] == "bm25.run"


@pytest.mark.usefixtures("native_bf16")
def test_bf16_mining_scores_match_fp32(sample, dense_index, tiny_model, tmp_path):
    mined = {}
    for precision in ("fp32", "bf16"):
        output = tmp_path / f"{precision}.jsonl"
        ok(
            *common(sample),
            "--index",
            dense_index,
            "--output",
            output,
            "--depth",
            20,
            "--max-rank",
            20,
            "--count",
            4,
            "--teacher",
            tiny_model,
            "--device",
            "cpu",
            "--precision",
            precision,
        )
        mined[precision] = read_output(output)[0]
    assert mined["bf16"].config["precision"] == "bf16"
    fp32 = {(q.qid, c.docid): c for q in mined["fp32"].queries for c in q.negatives}
    shared = [(key, c) for q in mined["bf16"].queries for c in q.negatives if (key := (q.qid, c.docid)) in fp32]
    assert len(shared) >= len(fp32) // 2  # near-ties may swap at the count cut, most negatives stay
    for key, candidate in shared:
        assert candidate.score == pytest.approx(fp32[key].score, abs=0.02)
        assert candidate.teacher_score == pytest.approx(fp32[key].teacher_score, abs=0.05)
