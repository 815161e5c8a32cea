"""Every `rankkit` command through Typer's CliRunner, on the bundled sample and the tiny model;
user errors exit 2 with one 'error: ... Fix' line and no traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import temp_leftovers, usage_error
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import read_run
from rankkit.index.manifest import Manifest

pytest.importorskip("pyserini", reason="the CLI tests build a BM25 index too (bm25 extra)")

runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args: str | Path):
    result = invoke(*args)
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def fails(*args: str | Path, expect: str | None = None):
    """A user error: exit status 2, an 'error:' line with a fix, and no traceback."""
    result = invoke(*args)
    assert result.exit_code == 2, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught exception
    assert "error:" in result.stderr
    assert "Fix" in result.stderr
    assert "Traceback" not in result.output
    if expect is not None:
        assert expect in result.stderr
    return result


@pytest.fixture(scope="module")
def corpus(sample_dir) -> Path:
    return sample_dir / "collection.tsv"


@pytest.fixture(scope="module")
def queries_file(sample_dir) -> Path:
    return sample_dir / "queries.tsv"


@pytest.fixture(scope="module")
def qrels_file(sample_dir) -> Path:
    return sample_dir / "qrels.txt"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-indexes")


@pytest.fixture(scope="module")
def dense_index(index_dir, corpus, tiny_model) -> Path:
    result = ok(
        "index",
        "build",
        corpus,
        "--model",
        tiny_model,
        "-o",
        index_dir / "collection-dense",
        "--device",
        "cpu",
        "--save-embeddings",
    )
    out = index_dir / "collection-dense"
    assert "with 80 documents (Flat)" in result.output
    return out


@pytest.fixture(scope="module")
def bm25_index(index_dir, corpus) -> Path:
    result = ok("index", "build", corpus, "--kind", "bm25", "-o", index_dir / "sample-bm25")
    assert "built bm25 index" in result.output
    return index_dir / "sample-bm25"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, dense_index, bm25_index, queries_file) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli-runs")
    ok(
        "search",
        "--index",
        bm25_index,
        "--queries",
        queries_file,
        "-o",
        folder / "bm25.trec",
        "-k",
        "100",
        "--tag",
        "bm25",
    )
    ok(
        "search",
        "--index",
        dense_index,
        "--queries",
        queries_file,
        "-o",
        folder / "dense.trec",
        "-k",
        "100",
        "--device",
        "cpu",
        "--tag",
        "dense",
    )
    return folder / "bm25.trec", folder / "dense.trec"


# --- index -----------------------------------------------------------------------------------


def test_index_build_dense(dense_index, tiny_model):
    manifest = Manifest.read(dense_index)
    assert (manifest.kind, manifest.count, manifest.dimension, manifest.index_type) == ("dense", 80, 32, "Flat")
    assert manifest.model == str(tiny_model)
    assert (dense_index / "embeddings.f32").is_file()


def test_index_build_bm25(bm25_index):
    manifest = Manifest.read(bm25_index)
    assert (manifest.kind, manifest.count, manifest.index_type) == ("bm25", 80, "lucene")


def test_index_build_from_saved_embeddings(dense_index, index_dir, corpus):
    result = ok(
        "index", "build", corpus, "-o", index_dir / "hnsw", "--factory", "HNSW32", "--embeddings-from", dense_index
    )
    assert "(HNSW32)" in result.output
    assert Manifest.read(index_dir / "hnsw").model_fingerprint == Manifest.read(dense_index).model_fingerprint


def test_index_build_existing_needs_overwrite(dense_index, index_dir, corpus, tiny_model):
    fails(
        "index",
        "build",
        corpus,
        "--model",
        tiny_model,
        "-o",
        index_dir / "collection-dense",
        "--device",
        "cpu",
        expect="--overwrite",
    )


def test_index_build_bad_factory(tmp_path, corpus, tiny_model):
    fails(
        "index",
        "build",
        corpus,
        "--model",
        tiny_model,
        "-o",
        tmp_path / "collection-dense",
        "--factory",
        "IVF256,Flat",
        "--device",
        "cpu",
    )
    assert list(tmp_path.iterdir()) == []


def test_index_build_missing_corpus(tmp_path):
    fails("index", "build", tmp_path / "nope.tsv", "--kind", "bm25", "-o", tmp_path / "nope-bm25", expect="nope.tsv")


def test_index_build_bad_model(tmp_path, corpus):
    fails("index", "build", corpus, "--model", tmp_path / "no-model", "-o", tmp_path / "out" / "collection-dense")


def test_index_info(dense_index):
    result = ok("index", "info", dense_index)
    info = json.loads(result.stdout)
    assert info["kind"] == "dense"
    assert info["count"] == 80
    assert info["dimension"] == 32
    assert info["corpus"]["sha256"] == Manifest.read(dense_index).corpus.sha256


def test_index_info_not_an_index(tmp_path):
    fails("index", "info", tmp_path, expect="not a rankkit index")


# --- search ----------------------------------------------------------------------------------


def test_search_query_dense(dense_index):
    result = ok("search", "--index", dense_index, "--query", "how do stars form", "-k", "5", "--device", "cpu")
    lines = [line for line in result.stdout.splitlines() if " s0" in line]
    assert len(lines) == 5  # one table row per hit, each with a docid of the sample
    assert "dense:collection-dense" in result.stdout


def test_search_query_bm25(bm25_index):
    result = ok(
        "search", "--index", bm25_index, "--query", "protostar hydrogen fusion", "-k", "3", "--k1", "1.2", "--b", "0.75"
    )
    assert "s001" in result.stdout


def test_search_queries_writes_a_trec_run(runs, queries_file):
    bm25_run, dense_run = runs
    queries = read_queries(queries_file)
    for path, tag in ((bm25_run, "bm25"), (dense_run, "dense")):
        lines = path.read_text().splitlines()
        assert lines
        per_query: dict[str, list[int]] = {}
        for line in lines:
            qid, q0, docid, rank, score, run_tag = line.split()
            assert q0 == "Q0" and run_tag == tag and docid.startswith("s")
            float(score)
            per_query.setdefault(qid, []).append(int(rank))
        assert set(per_query) <= set(queries)
        for ranks in per_query.values():
            assert ranks == list(range(1, len(ranks) + 1))
            assert len(ranks) <= 100
    assert set(read_run(dense_run)) == set(queries)
    assert all(len(hits) == 80 for hits in read_run(dense_run).values())


def test_search_hybrid_two_indexes(bm25_index, dense_index, queries_file, tmp_path):
    out = tmp_path / "hybrid.trec"
    result = ok(
        "search",
        "--index",
        bm25_index,
        "--index",
        dense_index,
        "--weight",
        "1",
        "--weight",
        "0.5",
        "--queries",
        queries_file,
        "-o",
        out,
        "-k",
        "10",
        "--device",
        "cpu",
    )
    assert f"to {out}" in result.stdout
    run = read_run(out)
    assert set(run) == set(read_queries(queries_file))
    assert all(len(hits) == 10 for hits in run.values())
    table = ok("search", "-i", bm25_index, "-i", dense_index, "-q", "yeast bread", "--device", "cpu")
    assert "hybrid:" in table.stdout


def test_search_hybrid_weight_count_mismatch(bm25_index, dense_index):
    fails(
        "search",
        "-i",
        bm25_index,
        "-i",
        dense_index,
        "--weight",
        "1",
        "-q",
        "stars",
        "--device",
        "cpu",
        expect="--weight",
    )


def test_search_with_neither_query_nor_queries(dense_index):
    fails("search", "--index", dense_index, expect="--query")


def test_search_with_both_query_and_queries(dense_index, queries_file, tmp_path):
    fails("search", "--index", dense_index, "--query", "x", "--queries", queries_file, "-o", tmp_path / "r")


def test_search_queries_without_output(dense_index, queries_file):
    fails("search", "--index", dense_index, "--queries", queries_file, expect="-o")


def test_search_mismatched_model(dense_index, other_tiny_model, tiny_model):
    result = fails("search", "--index", dense_index, "--model", other_tiny_model, "-q", "stars", "--device", "cpu")
    assert str(tiny_model) in result.stderr


def test_search_empty_query(bm25_index):
    fails("search", "--index", bm25_index, "--query", "   ", expect="empty")


def test_search_bad_k(bm25_index):
    usage_error(invoke("search", "--index", bm25_index, "--query", "stars", "-k", "0"), "-k", "integer >= 1")


def test_search_missing_queries_file(bm25_index, tmp_path):
    fails(
        "search",
        "--index",
        bm25_index,
        "--queries",
        tmp_path / "missing.tsv",
        "-o",
        tmp_path / "r.trec",
        expect="missing.tsv",
    )
    assert not (tmp_path / "r.trec").exists()


# --- eval ------------------------------------------------------------------------------------


def test_eval_trec_dl_preset(runs, qrels_file):
    result = ok("eval", runs[0], qrels_file, "--preset", "trec-dl")
    for measure in ("nDCG@10", "AP(rel=2)", "R(rel=2)@1000"):
        assert measure in result.stdout
    assert "bm25.trec" in result.stdout


def test_eval_default_preset_is_msmarco(runs, qrels_file):
    result = ok("eval", runs[0], qrels_file)
    assert "RR@10" in result.stdout and "R@1000" in result.stdout


def test_eval_two_runs_compares_and_writes_json(runs, qrels_file, tmp_path):
    out = tmp_path / "report.json"
    result = ok("eval", runs[0], runs[1], qrels_file, "--preset", "trec-dl", "--json", out)
    assert "Paired comparison" in result.stdout
    report = json.loads(out.read_text())
    assert set(report["runs"]) == {"bm25.trec", "dense.trec"}
    judged = set(read_qrels(qrels_file))
    for name, figures in report["runs"].items():
        assert set(figures["aggregate"]) == {"nDCG@10", "AP(rel=2)", "R(rel=2)@1000"}
        assert all(0.0 <= v <= 1.0 for v in figures["aggregate"].values())
        assert set(figures["per_query"]["nDCG@10"]) == judged
    assert len(report["comparisons"]) == 3
    comparison = report["comparisons"][0]
    assert comparison["baseline"] == "bm25.trec" and comparison["other"] == "dense.trec"
    assert comparison["queries"] == len(judged)
    bm25_ndcg = report["runs"]["bm25.trec"]["aggregate"]["nDCG@10"]
    dense_ndcg = report["runs"]["dense.trec"]["aggregate"]["nDCG@10"]
    nd = next(c for c in report["comparisons"] if c["measure"] == "nDCG@10")
    assert nd["mean_difference"] == pytest.approx(dense_ndcg - bm25_ndcg)


def test_eval_measure_p5(runs, qrels_file, tmp_path):
    out = tmp_path / "p5.json"
    result = ok("eval", runs[0], qrels_file, "--measure", "P@5", "--json", out)
    assert "P@5" in result.stdout
    assert "RR@10" not in result.stdout  # a named measure replaces the default preset
    assert set(json.loads(out.read_text())["runs"]["bm25.trec"]["aggregate"]) == {"P@5"}


def test_eval_per_query(runs, qrels_file):
    result = ok("eval", runs[0], qrels_file, "--measure", "nDCG@10", "--per-query")
    assert "Per query" in result.stdout
    for qid in read_qrels(qrels_file):
        assert qid in result.stdout


def test_eval_missing_run_file(qrels_file, tmp_path):
    fails("eval", tmp_path / "missing.trec", qrels_file, expect="missing.trec")


def test_eval_missing_qrels_file(runs, tmp_path):
    fails("eval", runs[0], tmp_path / "missing-qrels.txt", expect="missing-qrels.txt")


@pytest.mark.parametrize("measure", ["NoSuchMeasure@10", "nDCG@x", "P(foo=1)@5", "P@0"])
def test_eval_unknown_measure(runs, qrels_file, measure):
    fails("eval", runs[0], qrels_file, "--measure", measure, expect="measure")


def test_eval_unknown_preset(runs, qrels_file):
    usage_error(invoke("eval", runs[0], qrels_file, "--preset", "nope"), "--preset", "'nope' is not one of")


def test_eval_malformed_qrels_line(runs, qrels_file, tmp_path):
    bad = tmp_path / "bad-qrels.txt"
    bad.write_text(qrels_file.read_text() + "q01 0 s099\n")
    line = len(qrels_file.read_text().splitlines()) + 1
    fails("eval", runs[0], bad, expect=f"bad-qrels.txt:{line}")


def test_eval_needs_a_run_and_qrels(qrels_file):
    fails("eval", qrels_file, expect="QRELS")


# --- quickstart ------------------------------------------------------------------------------


def test_quickstart_with_tiny_model(tmp_path, tiny_model):
    out = tmp_path / "qs"
    result = ok("quickstart", "--model", tiny_model, "--output", out, "--device", "cpu")
    assert "report.json" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert set(report) == {"bm25", "dense", "hybrid"}
    for figures in report.values():
        # the sample has graded judgments (0-3), so binary measures count grade >= 2
        assert set(figures) == {"nDCG@10", "RR(rel=2)@10", "R(rel=2)@100"}
        assert all(0.0 <= v <= 1.0 for v in figures.values())
    assert report["bm25"]["nDCG@10"] > 0.3  # BM25 works on the sample whatever the random model does
    for name in ("bm25", "dense", "hybrid"):
        run = read_run(out / "runs" / f"{name}.trec")
        assert len(run) == 16
    assert json.loads((out / "config.json").read_text())["model"] == str(tiny_model)
    assert Manifest.read(out / "indexes" / "sample-dense").model == str(tiny_model)


def test_quickstart_bad_data_folder(tmp_path):
    fails("quickstart", "--data", tmp_path, "--output", tmp_path / "out", expect="collection.tsv")


# --- the installed console script ------------------------------------------------------------


def _console_script() -> str:
    script = Path(sys.executable).parent / "rankkit"
    found = str(script) if script.exists() else shutil.which("rankkit")
    if found is None:
        pytest.skip("the rankkit console script is not installed (pip install -e .)")
    return found


def test_console_script_help():
    result = subprocess.run([_console_script(), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("index", "search", "eval", "quickstart"):
        assert command in result.stdout


def test_console_script_error_has_no_traceback(runs, qrels_file):
    """A real process: the error line goes to stderr, the exit status is 2, no traceback.
    P@0 once aborted the interpreter inside pytrec_eval (an assertion in C)."""
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [_console_script(), "eval", str(runs[0]), str(qrels_file), "--measure", "P@0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "error:" in result.stderr and "Fix" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.slow
def test_quickstart_with_the_default_model(tmp_path):
    """The packaged all-MiniLM-L6-v2 on the sample: a trained model ranks well above chance."""
    out = tmp_path / "qs-default"
    ok("quickstart", "--output", out, "--device", "cpu")
    report = json.loads((out / "report.json").read_text())
    assert report["dense"]["nDCG@10"] > 0.5
    assert report["hybrid"]["nDCG@10"] > 0.5
    assert Manifest.read(out / "indexes" / "sample-dense").model == "all-MiniLM-L6-v2"


def test_sigterm_during_index_build_leaves_no_temporary_folder(tmp_path, tiny_model):
    # regression: SIGTERM killed the build without unwinding, leaving `.NAME.*.tmp` behind
    corpus = tmp_path / "big.tsv"
    corpus.write_text(
        "".join(f"d{i}\tpassage number {i} about topic {i % 97} and more words\n" for i in range(200_000)),
        encoding="utf-8",
    )
    out, log = tmp_path / "indexes", tmp_path / "stderr.txt"
    with open(log, "wb") as stderr:  # a file, not a pipe: an unread pipe fills up and blocks the build
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rankkit.cli",
                "index",
                "build",
                str(corpus),
                "--model",
                str(tiny_model),
                "-o",
                str(out / "collection-dense"),
                "--device",
                "cpu",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and temp_leftovers(out)):  # the build has started writing
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the build never started writing"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 128 + signal.SIGTERM, log.read_text()[-2000:]
    finally:
        process.kill()
    assert temp_leftovers(out) == [] and not (out / "big-dense").exists()
