"""Issue 13's CLI rows: each bad input ends in one clear error (or, where asked, a warning), never
a traceback or silent corruption. Readers and the library first, then the commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_file_error, usage_error
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.data.corpus import read_corpus
from rankkit.data.qrels import read_qrels, write_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit, read_run, write_run
from rankkit.encode.models import model_fingerprint
from rankkit.errors import RankkitError
from rankkit.mining import MinedSet
from rankkit.mining.candidates import Candidate
from rankkit.mining.mine import mine
from rankkit.mining.strategies import QueryContext, RankWindow, SimANS, TopN

BOM = b"\xef\xbb\xbf"
runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def user_error(result, *fragments: str) -> str:
    """A rankkit error: exit 2, one 'error: ... Fix' message on stderr, no traceback."""
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "error:" in result.stderr and "Fix" in result.stderr and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


# --- byte-order marks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,text",
    [
        ("c.tsv", "s001\tfirst\ns002\tsecond\n"),
        ("c.jsonl", '{"id": "s001", "contents": "first"}\n'),
        ("b.jsonl", '{"_id": "s001", "title": "", "text": "first"}\n'),
    ],
)
def test_bom_is_stripped_from_corpora(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(BOM + text.encode())
    assert next(iter(read_corpus(path))).docid == "s001"


def test_bom_is_stripped_from_queries_qrels_runs_and_minedsets(tmp_path, sample_dir):
    for name, reader, key in (("queries.tsv", read_queries, "q01"), ("qrels.txt", read_qrels, "q01")):
        path = tmp_path / name
        path.write_bytes(BOM + (sample_dir / name).read_bytes())
        assert key in reader(path)
    run = tmp_path / "run.trec"
    run.write_bytes(BOM + b"q01 Q0 s001 1 2.5 t\n")
    assert read_run(run) == {"q01": [Hit("s001", 2.5)]}
    topics = tmp_path / "topics.txt"
    topics.write_bytes(BOM + b"<top>\n<num> Number: 7\n<title> stars\n</top>\n")
    assert read_queries(topics) == {"7": "stars"}
    mined = tmp_path / "mined.jsonl"
    MinedSet([], {"seed": 0}).write(mined)
    mined.write_bytes(BOM + mined.read_bytes())
    assert MinedSet.read(mined).config == {"seed": 0}


# --- ids, grades, scores ---------------------------------------------------------------------------


def test_index_build_refuses_docids_with_whitespace_naming_the_line(tmp_path, tiny_model):
    from rankkit.encode import BiEncoder
    from rankkit.index.dense import build_dense_index

    corpus = tmp_path / "c.tsv"
    corpus.write_text("s1\tfine\nD 901\tspace in the id\n")
    with pytest.raises(RankkitError) as info:
        build_dense_index(corpus, tmp_path / "idx", BiEncoder(tiny_model, device="cpu"))
    assert_file_error(info, corpus, 2, "'D 901' contains whitespace")
    assert not (tmp_path / "idx").exists()
    assert [d.docid for d in read_corpus(corpus)] == ["s1", "D 901"]  # a corpus itself may hold it


def test_run_and_qrels_writers_refuse_ids_they_cannot_hold(tmp_path):
    with pytest.raises(RankkitError) as info:
        write_run({"q1": [Hit("ok", 2.0), Hit("D 901", 1.0)]}, tmp_path / "r.trec")
    assert_file_error(info, tmp_path / "r.trec", 2, "docid 'D 901'")
    with pytest.raises(RankkitError) as info:
        write_qrels({"q 1": {"d": 1}}, tmp_path / "q.txt")
    assert_file_error(info, tmp_path / "q.txt", 1, "qid 'q 1'")
    assert not (tmp_path / "r.trec").exists() and not (tmp_path / "q.txt").exists()


@pytest.mark.parametrize("grade", ["2147483648", "-2147483649", "99999999999999999999"])
@pytest.mark.parametrize(
    "name, line",
    [("qrels.txt", "q1 0 d1 1\nq1 0 d2 {}\n"), ("dev.tsv", "query-id\tcorpus-id\tscore\r\nq1\td2\t{}\r\n")],
    ids=["trec", "beir"],
)
def test_qrels_grade_too_large_for_an_int(tmp_path, grade, name, line):
    path = tmp_path / name
    path.write_bytes(line.format(grade).encode())
    with pytest.raises(RankkitError) as info:
        read_qrels(path)
    assert_file_error(info, path, 2, "too large")


def test_qrels_grade_at_the_int_limit_is_fine(tmp_path):
    path = tmp_path / "qrels.txt"
    path.write_text("q1 0 d1 2147483647\n")
    assert read_qrels(path) == {"q1": {"d1": 2147483647}}


@pytest.mark.parametrize("score", ["nan", "inf", "-inf", "NaN"])
def test_run_with_non_finite_scores(tmp_path, score):
    path = tmp_path / "run.trec"
    path.write_text(f"q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 {score} t\n")
    with pytest.raises(RankkitError) as info:
        read_run(path)
    assert_file_error(info, path, 2, "not a finite number")


def test_simans_over_nan_scores_is_a_clear_error():
    candidates = [Candidate(f"d{i}", "run", i + 1, float("nan") if i == 2 else 1.0 - i / 10) for i in range(6)]
    ctx = QueryContext("q1", 1.0, None, np.random.default_rng(0))
    with pytest.raises(RankkitError, match="query q1: SimANS needs finite scores.*Fix"):
        SimANS(2)(candidates, ctx)


def test_window_beyond_the_candidates_depth_is_counted():
    candidates = {
        "q1": [Candidate(f"d{i}", "run", i, 1.0 / i) for i in range(1, 51)],
        "q2": [Candidate(f"e{i}", "run", i, 1.0 / i) for i in range(1, 101)],
    }
    qrels = {"q1": {"p": 1}, "q2": {"p": 1}}
    mined = mine({"q1": "a", "q2": "b"}, qrels, candidates, [RankWindow(60, 100), TopN(4)])
    assert mined.stats["window_beyond_depth"] == 1 and mined.stats["skipped_empty_after_strategies"] == 1
    assert [q.qid for q in mined.queries] == ["q2"]


def test_model_fingerprint_covers_the_tokenizer(tmp_path, tiny_model):
    swapped = Path(shutil.copytree(tiny_model, tmp_path / "swapped"))
    tokenizer = json.loads((swapped / "tokenizer.json").read_text())
    table = tokenizer["model"]["vocab"]
    first, second = [word for word, index in table.items() if index in (2000, 2001)]
    table[first], table[second] = table[second], table[first]  # two vocabulary entries swapped
    (swapped / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert model_fingerprint(swapped) != model_fingerprint(tiny_model)
    assert model_fingerprint(Path(shutil.copytree(tiny_model, tmp_path / "copy"))) == model_fingerprint(tiny_model)


# --- the commands ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, sample_dir) -> Path:
    """A run over the sample without an index: every document for every query, by word overlap."""
    docs = {d.docid: set(d.contents.lower().split()) for d in read_corpus(sample_dir / "collection.tsv")}
    queries = read_queries(sample_dir / "queries.tsv")
    run = {
        qid: [Hit(d, float(len(set(text.lower().split()) & words))) for d, words in docs.items()][:50]
        for qid, text in queries.items()
    }
    path = tmp_path_factory.mktemp("bad-inputs") / "run50.trec"
    write_run(run, path)
    return path


def _mine(sample_dir: Path, run: Path, out: Path, *extra: str):
    return invoke(
        "mine",
        "--queries",
        sample_dir / "queries.tsv",
        "--qrels",
        sample_dir / "qrels.txt",
        "--corpus",
        sample_dir / "collection.tsv",
        "--run",
        run,
        "-o",
        out,
        *extra,
    )


def test_mine_inverted_window(sample_dir, sample_run, tmp_path):
    user_error(
        _mine(sample_dir, sample_run, tmp_path / "m.jsonl", "--min-rank", "50", "--max-rank", "10"),
        "the rank window 50..10 is empty",
    )


@pytest.mark.parametrize("count", ["0", "-3"])
def test_mine_count_below_one(sample_dir, sample_run, tmp_path, count):
    usage_error(_mine(sample_dir, sample_run, tmp_path / "m.jsonl", "--count", count), "--count", "integer >= 1")
    assert not (tmp_path / "m.jsonl").exists()


def test_mine_window_beyond_depth_warns(sample_dir, sample_run, tmp_path):
    result = _mine(sample_dir, sample_run, tmp_path / "m.jsonl", "--min-rank", "60", "--max-rank", "100")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "beyond the candidates' depth" in result.stderr
    stats = json.loads((tmp_path / "m.stats.json").read_text())
    assert stats["window_beyond_depth"] == 16 and stats["negatives"] == 0


def test_output_paths_naming_an_existing_folder(sample_dir, sample_run, tmp_path):
    user_error(_mine(sample_dir, sample_run, tmp_path), "is a folder")
    user_error(invoke("eval", sample_run, sample_dir / "qrels.txt", "--json", tmp_path), "is a folder")


@pytest.mark.parametrize(
    "option,value,fragment",
    [
        ("--batch-size", "0", "integer >= 1"),
        ("--grad-accum", "0", "integer >= 1"),
        ("--lr", "nan", "> 0"),
        ("--lr", "-1", "> 0"),
        ("--lr", "inf", "> 0"),
        ("--negatives", "0", "integer >= 1"),
        ("--max-steps", "0", "integer >= 1"),
        ("--warmup-ratio", "1", "< 1"),
        ("--max-grad-norm", "0", "> 0"),
        ("--epochs", "0", "integer >= 1"),
    ],
)
def test_train_numeric_options_are_range_checked(tmp_path, option, value, fragment):
    result = invoke(
        "train", "biencoder", "--mined", tmp_path / "m.jsonl", "--corpus", "c.tsv", "-o", tmp_path / "o", option, value
    )
    usage_error(result, option, fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option,value", [("--k1", "-1"), ("--b", "1.5"), ("--weight", "-1"), ("--k1", "nan")])
def test_search_numeric_options_are_range_checked(tmp_path, option, value):
    usage_error(invoke("search", "--index", tmp_path, "--query", "q", option, value), option)


def test_train_sub_commands_show_only_their_own_options():
    biencoder = invoke("train", "biencoder", "--help").output
    reranker = invoke("train", "reranker", "--help").output
    cet = invoke("train", "cet", "--help").output
    assert "--temperature" in biencoder and "--debias-ratio" not in biencoder and "--selection" not in biencoder
    assert "--temperature" not in reranker and "--debias-ratio" not in reranker and "softmax" in reranker
    assert "--debias-ratio" in cet and "--relevance" in cet
    for text in (biencoder, reranker, cet):
        assert "--mined" in text and "--grad-accum" in text and "--overwrite" in text


@pytest.mark.parametrize("kind,loss", [("biencoder", "bce"), ("reranker", "infonce"), ("reranker", "nope")])
def test_train_loss_choices_per_kind(tmp_path, kind, loss):
    usage_error(
        invoke("train", kind, "--mined", "m", "--corpus", "c", "-o", tmp_path / "o", "--loss", loss),
        "--loss",
        "is not one of",
    )


def test_train_cet_model_choices(tmp_path):
    usage_error(
        invoke("train", "cet", "--mined", "m", "--corpus", "c", "-o", tmp_path / "o", "--selection", "bm25"),
        "--selection",
        "'provenance', 'cross-encoder'",
    )


def test_rerank_refuses_a_model_without_a_trained_head(sample_dir, sample_run, tiny_model, tmp_path):
    args = [
        "rerank",
        "--run",
        sample_run,
        "--queries",
        sample_dir / "queries.tsv",
        "--corpus",
        sample_dir / "collection.tsv",
        "--model",
        tiny_model,
        "-o",
        tmp_path / "r.trec",
        "--depth",
        "5",
        "--device",
        "cpu",
    ]
    user_error(invoke(*args), "no trained scoring head", "--allow-new-head", "rankkit train reranker")
    assert not (tmp_path / "r.trec").exists()
    result = invoke(*args, "--allow-new-head")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.trec").is_file()


def test_rerank_accepts_a_trained_cross_encoder(sample_dir, sample_run, tiny_model, tmp_path):
    from rankkit.encode.crossencoder import CrossEncoder

    CrossEncoder(tiny_model, device="cpu").save(tmp_path / "ce")
    assert not CrossEncoder(tmp_path / "ce", device="cpu").new_head
    result = invoke(
        "rerank",
        "--run",
        sample_run,
        "--queries",
        sample_dir / "queries.tsv",
        "--corpus",
        sample_dir / "collection.tsv",
        "--model",
        tmp_path / "ce",
        "-o",
        tmp_path / "r.trec",
        "--depth",
        "5",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output


def test_eval_of_runs_of_different_depths_warns(sample_dir, sample_run, tmp_path):
    shallow = tmp_path / "shallow.trec"
    write_run({qid: hits[:10] for qid, hits in read_run(sample_run).items()}, shallow)
    result = invoke("eval", shallow, sample_run, sample_dir / "qrels.txt", "-m", "R@50", "-m", "nDCG@10")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "R@50" in result.stderr and "nDCG@10 " not in result.stderr
    same = invoke("eval", sample_run, sample_run, sample_dir / "qrels.txt", "-m", "R@50")
    assert "warning" not in same.stderr


def test_eval_piped_keeps_names_whole(sample_dir, sample_run, tmp_path):
    long_name = tmp_path / ("run." + "very-long-system-name-" * 4 + "bm25.trec")
    shutil.copyfile(sample_run, long_name)
    result = invoke(
        "eval",
        long_name,
        sample_dir / "qrels.txt",
        "-m",
        "AP(rel=2)",
        "-m",
        "R(rel=2)@1000",
        "-m",
        "nDCG@10",
        "-m",
        "P(rel=2)@5",
    )
    assert result.exit_code == 0, result.output
    assert long_name.name in result.stdout and "R(rel=2)@1000" in result.stdout and "…" not in result.stdout


def test_nan_run_in_eval_names_the_line(sample_dir, tmp_path):
    run = tmp_path / "nan.trec"
    run.write_text("q01 Q0 s001 1 1.0 t\nq01 Q0 s002 2 nan t\n")
    user_error(invoke("eval", run, sample_dir / "qrels.txt"), f"{run}:2", "not a finite number")
