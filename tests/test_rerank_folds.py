"""Reranking a run with a cross-encoder (library and `rankkit rerank`), and k-fold query splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_spread_model
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.data.corpus import read_doc_texts
from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit, read_run, write_run
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.encode.dev_record import DevRecord
from rankkit.errors import RankkitError
from rankkit.eval.folds import kfold_queries
from rankkit.retrieve.rerank import rerank_run


class TableModel:
    """A stand-in cross-encoder: each passage's score comes from a table; records what it scored."""

    def __init__(self, scores: dict[str, float]):
        self.scores, self.scored = scores, []

    def score(self, pairs, show_progress=False):
        self.scored += list(pairs)
        return np.array([self.scores[passage] for _, passage in pairs], dtype=np.float32)


QUERIES = {"q1": "first query", "q2": "second query"}
DOCS = {f"d{i}": f"text {i}" for i in range(1, 7)}
RUN = {
    "q1": [Hit("d1", 9.0), Hit("d2", 8.0), Hit("d3", 7.0), Hit("d4", 6.0), Hit("d5", 5.0)],
    "q2": [Hit("d6", 3.0), Hit("d1", 2.0)],
}
TABLE = {"text 1": 0.1, "text 2": 0.5, "text 3": 0.9, "text 4": 5.0, "text 5": -1.0, "text 6": 0.2}


def test_rerank_orders_the_top_by_model_score_and_keeps_the_rest_below():
    model = TableModel(TABLE)
    reranked = rerank_run(RUN, QUERIES, DOCS, model, depth=3)  # type: ignore[arg-type]
    # q1: d1..d3 rescored 0.1, 0.5, 0.9 -> d3, d2, d1; d4 (5.0 by the model, but below depth) and d5 follow
    assert [h.docid for h in reranked["q1"]] == ["d3", "d2", "d1", "d4", "d5"]
    assert [h.score for h in reranked["q1"][:3]] == pytest.approx([0.9, 0.5, 0.1])
    # the tail keeps its order, scored below the lowest reranked score (0.1 - 1, 0.1 - 2)
    assert [h.score for h in reranked["q1"][3:]] == pytest.approx([-0.9, -1.9])
    # q2 has only 2 hits: both reranked (d6 0.2 > d1 0.1)
    assert [h.docid for h in reranked["q2"]] == ["d6", "d1"]
    # only the top `depth` pairs went to the model, each with its own query's text
    assert sorted(model.scored) == sorted(
        [
            ("first query", "text 1"),
            ("first query", "text 2"),
            ("first query", "text 3"),
            ("second query", "text 6"),
            ("second query", "text 1"),
        ]
    )
    # the input run is untouched, and a TREC writer keeps the new order
    assert [h.docid for h in RUN["q1"]] == ["d1", "d2", "d3", "d4", "d5"]


def test_rerank_with_depth_beyond_the_run_reranks_everything():
    reranked = rerank_run(RUN, QUERIES, DOCS, TableModel(TABLE), depth=100)  # type: ignore[arg-type]
    assert [h.docid for h in reranked["q1"]] == ["d4", "d3", "d2", "d1", "d5"]


def test_rerank_written_run_reads_back_in_the_same_order(tmp_path):
    reranked = rerank_run(RUN, QUERIES, DOCS, TableModel(TABLE), depth=3)  # type: ignore[arg-type]
    write_run(reranked, tmp_path / "run.txt", tag="rr")
    back = read_run(tmp_path / "run.txt")
    assert {q: [h.docid for h in hits] for q, hits in back.items()} == {
        q: [h.docid for h in hits] for q, hits in reranked.items()
    }


def test_rerank_unknown_docid_is_a_user_error():
    run = {"q1": [Hit("d1", 2.0), Hit("nope", 1.0)]}
    with pytest.raises(RankkitError, match="'nope'.*Fix"):
        rerank_run(run, QUERIES, DOCS, TableModel(TABLE), depth=5)  # type: ignore[arg-type]
    # below the reranking depth the text is not needed
    reranked = rerank_run(run, QUERIES, DOCS, TableModel(TABLE), depth=1)  # type: ignore[arg-type]
    assert [h.docid for h in reranked["q1"]] == ["d1", "nope"]


def test_rerank_query_without_text_is_a_user_error():
    with pytest.raises(RankkitError, match="no text.*'q2'.*Fix"):
        rerank_run(RUN, {"q1": "first query"}, DOCS, TableModel(TABLE))  # type: ignore[arg-type]


# --- with a real (tiny) cross-encoder and the CLI --------------------------------------------------


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory) -> Path:
    """A tiny model with a seeded, randomly initialised scoring head, saved as a cross-encoder."""
    start = make_spread_model(tmp_path_factory.mktemp("spread-model"))
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cross-encoder")
    CrossEncoder(start, device="cpu").save(folder)
    return folder


@pytest.fixture(scope="module")
def sample_run(sample_dir, tmp_path_factory) -> Path:
    """A run over the sample: for each query, 8 documents in docid order with falling scores."""
    docids = sorted(read_doc_texts(sample_dir / "collection.tsv"))
    queries = read_queries(sample_dir / "queries.tsv")
    run = {
        qid: [Hit(d, float(100 - i)) for i, d in enumerate(docids[q * 3 : q * 3 + 8])]
        for q, qid in enumerate(sorted(queries)[:4])
    }
    path = tmp_path_factory.mktemp("run") / "run.txt"
    write_run(run, path, tag="first")
    return path


def test_rerank_with_a_cross_encoder_sorts_by_its_scores(cross_encoder, sample_dir, sample_run):
    model = CrossEncoder(cross_encoder, device="cpu")
    run, queries = read_run(sample_run), read_queries(sample_dir / "queries.tsv")
    docs = read_doc_texts(sample_dir / "collection.tsv")
    reranked = rerank_run(run, queries, docs, model, depth=5)
    for qid, hits in run.items():
        top = [h.docid for h in hits[:5]]
        scores = model.score([(queries[qid], docs[d]) for d in top])
        assert [h.docid for h in reranked[qid][:5]] == [top[i] for i in np.argsort(-scores, kind="stable")]
        assert [h.docid for h in reranked[qid][5:]] == [h.docid for h in hits[5:]]
    assert any([h.docid for h in reranked[q]] != [h.docid for h in run[q]] for q in run)


def test_cli_rerank_writes_a_trec_run(cross_encoder, sample_dir, sample_run, tmp_path):
    output = tmp_path / "reranked.txt"
    result = CliRunner().invoke(
        app,
        [
            "rerank",
            "--run",
            str(sample_run),
            "--queries",
            str(sample_dir / "queries.tsv"),
            "--corpus",
            str(sample_dir / "collection.tsv"),
            "--model",
            str(cross_encoder),
            "--output",
            str(output),
            "--depth",
            "5",
            "--tag",
            "ce",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    lines = [line.split() for line in output.read_text().splitlines()]
    assert all(len(fields) == 6 and fields[1] == "Q0" and fields[5] == "ce" for fields in lines)
    run = read_run(sample_run)
    expected = rerank_run(
        run,
        read_queries(sample_dir / "queries.tsv"),
        read_doc_texts(sample_dir / "collection.tsv"),
        CrossEncoder(cross_encoder, device="cpu"),
        5,
    )
    written = read_run(output)
    assert {q: [h.docid for h in hits] for q, hits in written.items()} == {
        q: [h.docid for h in hits] for q, hits in expected.items()
    }
    for qid in run:  # ranks 1..n in file order
        assert [int(f[3]) for f in lines if f[0] == qid] == list(range(1, len(run[qid]) + 1))


@pytest.mark.parametrize("improves", [True, False, None])
def test_cli_rerank_shows_the_rerankers_dev_record(cross_encoder, sample_dir, sample_run, tmp_path, improves):
    model = tmp_path / "model"
    shutil.copytree(cross_encoder, model)
    if improves is not None:
        DevRecord("nDCG@10", 0.7 if improves else 0.2, 0.6, 100, "bm25.trec").write(model)
    args = ["rerank", "--run", str(sample_run), "--queries", str(sample_dir / "queries.tsv")]
    args += ["--corpus", str(sample_dir / "collection.tsv"), "--model", str(model), "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    if improves is None:
        assert "no dev record" in result.stderr
    else:
        shown = "dev nDCG@10 0.7000 against 0.6000" if improves else "dev nDCG@10 0.2000 against 0.6000"
        assert shown in result.stderr and "bm25.trec, 100 queries" in result.stderr
        assert ("NOT better than" in result.stderr) is not improves


def test_cli_rerank_with_unknown_queries_exits_2(cross_encoder, sample_dir, tmp_path):
    run = tmp_path / "run.txt"
    write_run({"zz9": [Hit("s001", 1.0)]}, run)
    result = CliRunner().invoke(
        app,
        [
            "rerank",
            "--run",
            str(run),
            "--queries",
            str(sample_dir / "queries.tsv"),
            "--corpus",
            str(sample_dir / "collection.tsv"),
            "--model",
            str(cross_encoder),
            "--output",
            str(tmp_path / "out.txt"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "error:" in result.stderr and "zz9" in result.stderr
    assert not (tmp_path / "out.txt").exists()


# --- k-fold splits ---------------------------------------------------------------------------------

QIDS = [f"q{i}" for i in range(11)]


@pytest.mark.parametrize("k", [2, 3, 5, 11])
def test_kfold_tests_every_query_exactly_once(k):
    folds = kfold_queries(QIDS, k, seed=7)
    assert len(folds) == k
    tested = [q for _, test in folds for q in test]
    assert sorted(tested) == sorted(QIDS)  # each exactly once
    for train, test in folds:
        assert set(train).isdisjoint(test) and set(train) | set(test) == set(QIDS)
        assert train == sorted(train) and test == sorted(test)
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1


def test_kfold_is_seeded():
    assert kfold_queries(QIDS, 3, seed=1) == kfold_queries(list(reversed(QIDS)), 3, seed=1)
    assert kfold_queries(QIDS, 3, seed=1) != kfold_queries(QIDS, 3, seed=2)


def test_kfold_ignores_duplicate_qids():
    folds = kfold_queries(["a", "b", "a", "c", "b", "d"], 2)
    assert sorted(q for _, test in folds for q in test) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("k", [0, 1, -2, 12])
def test_kfold_bad_k_is_a_user_error(k):
    with pytest.raises(RankkitError, match=f"cannot make {k} folds of 11 queries.*Fix"):
        kfold_queries(QIDS, k)
