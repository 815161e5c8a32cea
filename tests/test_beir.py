"""BEIR folders: qrels TSV (header, CRLF and LF, 3 columns), queries.jsonl, corpus.jsonl with and
without titles, id checks, the folder as a collection, and writing the layout back; property
tests compare the readers with a strict reference on arbitrary and mutated input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import assert_file_error, temp_leftovers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankkit.data.beir import (
    BeirPaths,
    beir_folder,
    check_qrels_ids,
    is_beir_folder,
    load_beir_split,
    write_beir_folder,
    write_beir_qrels,
)
from rankkit.data.collection import collection, export_beir, queries_and_qrels
from rankkit.data.corpus import Document, read_corpus
from rankkit.data.qrels import is_beir_qrels, read_beir_qrels, read_qrels
from rankkit.data.queries import read_beir_queries, read_queries
from rankkit.errors import RankkitError

HEADER = "query-id\tcorpus-id\tscore"


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def make_folder(root: Path, corpus: list[dict], queries: list[dict], splits: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write(root / "corpus.jsonl", "".join(json.dumps(d) + "\n" for d in corpus))
    write(root / "queries.jsonl", "".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir(exist_ok=True)
    for split, text in splits.items():
        write(root / "qrels" / f"{split}.tsv", text)
    return root


CORPUS = [
    {"_id": "d1", "title": "Bread", "text": "Yeast makes bread rise."},
    {"_id": "d2", "text": "Stars form in clouds of gas."},  # no title
    {"_id": "d3", "title": "", "text": "The moon orbits the earth."},
]
QUERIES = [
    {"_id": "q1", "text": "how does bread rise", "metadata": {}},
    {"_id": "q2", "text": "star  formation"},
    {"_id": "q3", "text": "moon orbit"},
]


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_folder(
        tmp_path / "toy",
        CORPUS,
        QUERIES,
        {"test": f"{HEADER}\r\nq1\td1\t1\r\nq2\td2\t2\r\n", "dev": f"{HEADER}\nq3\td3\t1\n"},
    )


# --- qrels -------------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_qrels_crlf_and_lf(tmp_path, newline):
    path = write(tmp_path / "q.tsv", newline.join([HEADER, "q1\td1\t1", "q1\td2\t0", "q2\td1\t2"]) + newline)
    assert read_beir_qrels(path) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d1": 2}}
    assert is_beir_qrels(path)


def test_qrels_through_read_qrels_and_trec_still_read(tmp_path):
    beir = write(tmp_path / "dev.tsv", f"{HEADER}\r\nq1\td1\t1\r\n")
    trec = write(tmp_path / "qrels.dev.tsv", "q1\t0\td1\t1\n")  # MS MARCO's TREC qrels, named .tsv
    assert read_qrels(beir) == read_qrels(trec) == {"q1": {"d1": 1}}


def test_qrels_without_header(tmp_path):
    path = write(tmp_path / "q.tsv", "q1\td1\t1\r\nq2\td2\t1\r\n")
    with pytest.raises(RankkitError) as excinfo:
        read_qrels(path)
    assert_file_error(excinfo, path, 1, "header", "query-id<TAB>corpus-id<TAB>score")


@pytest.mark.parametrize(
    "line, problem",
    [
        ("q1\td1", "found 2"),
        ("q1\td1\t1\t0", "found 4"),
        ("q1 d1 1", "found 1"),
        ("q1\td1\tyes", "not an integer"),
        ("q1\td1\t1.5", "not an integer"),
        ("\td1\t1", "empty"),
    ],
)
def test_qrels_bad_lines(tmp_path, line, problem):
    path = write(tmp_path / "q.tsv", f"{HEADER}\r\nq0\td0\t1\r\n{line}\r\n")
    with pytest.raises(RankkitError) as excinfo:
        read_beir_qrels(path)
    assert_file_error(excinfo, path, 3, problem)


def test_qrels_duplicate_pair(tmp_path):
    path = write(tmp_path / "q.tsv", f"{HEADER}\nq1\td1\t1\nq1\td2\t1\nq1\td1\t0\n")
    with pytest.raises(RankkitError) as excinfo:
        read_beir_qrels(path)
    assert_file_error(excinfo, path, 4, "judged twice")


@pytest.mark.parametrize("text, problem", [("", "empty"), (f"{HEADER}\r\n", "no judgments")])
def test_qrels_empty(tmp_path, text, problem):
    path = write(tmp_path / "q.tsv", text)
    with pytest.raises(RankkitError) as excinfo:
        read_beir_qrels(path)
    assert_file_error(excinfo, path, None, problem)


def test_write_qrels_as_beir_does(tmp_path):
    path = tmp_path / "out" / "test.tsv"
    write_beir_qrels({"q1": {"d1": 1, "d2": 0}}, path)
    assert path.read_bytes() == f"{HEADER}\r\nq1\td1\t1\r\nq1\td2\t0\r\n".encode()
    assert read_beir_qrels(path) == {"q1": {"d1": 1, "d2": 0}}
    assert temp_leftovers(path.parent) == []


@pytest.mark.parametrize("qrels", [{"q\t1": {"d1": 1}}, {"q1": {"d 1\n": 1}}, {"q1": {"": 1}}])
def test_write_qrels_refuses_ids_tsv_cannot_hold(tmp_path, qrels):
    with pytest.raises(RankkitError, match="Fix: rename it"):
        write_beir_qrels(qrels, tmp_path / "q.tsv")
    assert not (tmp_path / "q.tsv").exists()


# --- queries -----------------------------------------------------------------------------------


def test_queries_jsonl(folder):
    assert read_beir_queries(folder / "queries.jsonl") == {
        "q1": "how does bread rise",
        "q2": "star formation",
        "q3": "moon orbit",
    }
    assert read_queries(folder / "queries.jsonl") == read_beir_queries(folder / "queries.jsonl")


@pytest.mark.parametrize(
    "record, problem",
    [
        ({"text": "x"}, "'_id'"),
        ({"_id": "", "text": "x"}, "'_id'"),
        ({"_id": ["a"], "text": "x"}, "'_id'"),
        ({"_id": "q9"}, "no text"),
        ({"_id": "q9", "text": "  "}, "no text"),
        ({"_id": "q9", "text": 3}, "no text"),
        ({"_id": "q1", "text": "again"}, "duplicate query id 'q1' (first on line 1)"),
    ],
)
def test_queries_bad_records(tmp_path, record, problem):
    path = write(
        tmp_path / "queries.jsonl", json.dumps({"_id": "q1", "text": "one"}) + "\n" + json.dumps(record) + "\n"
    )
    with pytest.raises(RankkitError) as excinfo:
        read_beir_queries(path)
    assert_file_error(excinfo, path, 2, problem)


@pytest.mark.parametrize("line, problem", [("{not json", "invalid JSON"), ("[1, 2]", "not an object")])
def test_queries_bad_json(tmp_path, line, problem):
    path = write(tmp_path / "queries.jsonl", line + "\n")
    with pytest.raises(RankkitError) as excinfo:
        read_beir_queries(path)
    assert_file_error(excinfo, path, 1, problem)


# --- corpus (read by rankkit.data.corpus) --------------------------------------------------------


def test_corpus_title_and_text_both_reach_contents(folder):
    docs = {d.docid: d for d in read_corpus(folder / "corpus.jsonl")}
    assert docs["d1"].contents == "Bread Yeast makes bread rise."  # BEIR / pyserini: title + " " + text
    assert docs["d2"].contents == "Stars form in clouds of gas."  # title missing
    assert docs["d3"].contents == "The moon orbits the earth."  # title empty


def test_corpus_duplicate_ids(tmp_path):
    path = write(
        tmp_path / "corpus.jsonl",
        json.dumps({"_id": "d1", "text": "a"}) + "\n" + json.dumps({"_id": "d1", "text": "b"}) + "\n",
    )
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path))
    assert_file_error(excinfo, path, 2, "duplicate docid")


# --- the folder ----------------------------------------------------------------------------------


def test_folder_as_a_collection(folder):
    paths = collection(folder, "test")
    assert isinstance(paths, BeirPaths)
    assert (paths.corpus, paths.queries, paths.qrels) == (
        folder / "corpus.jsonl",
        folder / "queries.jsonl",
        folder / "qrels" / "test.tsv",
    )
    assert paths.name == "toy-test"
    queries, qrels = queries_and_qrels(paths)
    assert queries == {"q1": "how does bread rise", "q2": "star formation"}  # only the split's judged queries
    assert qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert load_beir_split(beir_folder(folder, "dev")) == ({"q3": "moon orbit"}, {"q3": {"d3": 1}})


def test_folder_default_split(folder, tmp_path):
    assert beir_folder(folder).split == "test"
    only = make_folder(tmp_path / "only", CORPUS, QUERIES, {"train": f"{HEADER}\nq1\td1\t1\n"})
    assert beir_folder(only).split == "train"


def test_folder_unknown_split(folder):
    with pytest.raises(RankkitError, match=r"no qrels/train.tsv \(splits there: dev, test\). Fix: pass --split"):
        collection(folder, "train")


def test_not_a_beir_folder(tmp_path):
    assert not is_beir_folder(tmp_path)
    with pytest.raises(RankkitError, match="corpus.jsonl"):
        collection(tmp_path)


@pytest.mark.parametrize(
    "line, problem",
    [("q9\td1\t1", "query-id 'q9' is not in queries.jsonl"), ("q1\td9\t1", "corpus-id 'd9' is not in corpus.jsonl")],
)
def test_unknown_ids(folder, line, problem):
    path = write(folder / "qrels" / "test.tsv", f"{HEADER}\r\nq1\td1\t1\r\n{line}\r\n")
    with pytest.raises(RankkitError) as excinfo:
        load_beir_split(beir_folder(folder, "test"))
    assert_file_error(excinfo, path, 3, problem)
    with pytest.raises(RankkitError):
        check_qrels_ids(path, {"q1": "x"}, ["d1"])


def test_write_folder_round_trip(tmp_path):
    docs = [Document("d1", "Yeast makes bread rise.", "Bread"), Document("d2", 'Stars "form" ünïcode.')]
    out = write_beir_folder(
        tmp_path / "beir", docs, {"q1": "bread"}, {"test": {"q1": {"d1": 1}}, "dev": {"q1": {"d2": 0}}}
    )
    assert is_beir_folder(out)
    assert list(read_corpus(out / "corpus.jsonl")) == docs
    assert json.loads((out / "corpus.jsonl").read_text().splitlines()[0]) == {
        "_id": "d1",
        "title": "Bread",
        "text": "Yeast makes bread rise.",
        "metadata": {},
    }
    assert (out / "qrels" / "dev.tsv").read_bytes() == f"{HEADER}\r\nq1\td2\t0\r\n".encode()
    assert load_beir_split(beir_folder(out, "test")) == ({"q1": "bread"}, {"q1": {"d1": 1}})


def test_write_folder_is_atomic(tmp_path):
    with pytest.raises(RankkitError, match="rename it"):
        write_beir_folder(tmp_path / "beir", [Document("d\t1", "x")], {"q1": "a"}, {"test": {"q1": {"d1": 1}}})
    assert list(tmp_path.iterdir()) == []


def test_export_collection_as_beir(tmp_path):
    sample = collection()
    out = export_beir(sample, tmp_path / "sample-beir")
    queries, qrels = queries_and_qrels(collection(out))
    assert qrels == read_qrels(sample.qrels)
    assert queries == {qid: text for qid, text in read_queries(sample.queries).items() if qid in qrels}
    assert [d.contents for d in read_corpus(out / "corpus.jsonl")] == [d.contents for d in read_corpus(sample.corpus)]


# --- property tests: arbitrary and mutated input parses like a strict reference, or raises ------


def reference_qrels(text: str) -> dict | None:
    """A strict reading of BEIR qrels, written independently: None where the file is invalid."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    lines = [line for line in lines if line.strip()]
    if not lines or [f.strip() for f in lines[0].split("\t")] != ["query-id", "corpus-id", "score"]:
        return None
    qrels: dict = {}
    for line in lines[1:]:
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 3 or not fields[0] or not fields[1] or not re.fullmatch(r"[+-]?[0-9]+", fields[2]):
            return None
        if fields[1] in qrels.get(fields[0], {}):
            return None
        qrels.setdefault(fields[0], {})[fields[1]] = int(fields[2])
    return qrels or None


ids = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\r\n"), min_size=1, max_size=6)
judgment = st.tuples(ids, ids, st.integers(-3, 5))
noise = st.lists(st.sampled_from(list("q1d2\t \r\n-+x.\u0085") + ["query-id", "corpus-id", "score"]), max_size=20).map(
    "".join
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(judgment, max_size=12), crlf=st.booleans(), cut=st.integers(0, 400), junk=noise)
def test_qrels_property_valid_and_mutated(tmp_path, rows, crlf, cut, junk):
    newline = "\r\n" if crlf else "\n"
    text = newline.join([HEADER] + [f"{q}\t{d}\t{s}" for q, d, s in rows]) + newline
    for candidate in (text, text[:cut] + junk + text[cut:]):
        path = write(tmp_path / "q.tsv", candidate)
        expected = reference_qrels(candidate)
        if expected is None:
            with pytest.raises(RankkitError, match="Fix:"):
                read_beir_qrels(path)
        else:
            assert read_beir_qrels(path) == expected


def reference_queries(lines: list[str]) -> dict | None:
    queries: dict = {}
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        qid, text = record.get("_id"), record.get("text")
        if type(qid) not in (str, int) or not str(qid).strip() or not isinstance(text, str) or not text.strip():
            return None
        if str(qid).strip() in queries:
            return None
        queries[str(qid).strip()] = " ".join(text.split())
    return queries or None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2),
    max_leaves=3,
)
records = st.dictionaries(st.sampled_from(["_id", "text", "title", "metadata"]), json_values | ids, max_size=4)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(records | st.text(max_size=8), max_size=6))
def test_queries_property(tmp_path, items):
    lines = [json.dumps(item) if isinstance(item, dict) else item.replace("\n", " ") for item in items]
    path = write(tmp_path / "queries.jsonl", "\n".join(lines) + "\n")
    expected = reference_queries(lines)
    if expected is None:
        with pytest.raises(RankkitError, match="Fix:"):
            read_beir_queries(path)
    else:
        assert read_beir_queries(path) == expected


# --- the shared SciFact folder --------------------------------------------------------------------


def test_scifact_splits_read_as_beir_wrote_them(shared_data):
    root = shared_data / "scifact"
    if not is_beir_folder(root):
        pytest.skip(f"no BEIR SciFact at {root}")
    assert (root / "qrels" / "dev.tsv").read_bytes().startswith(b"query-id\tcorpus-id\tscore\r\n")  # CRLF
    train_queries, train = load_beir_split(beir_folder(root, "train"))
    dev_queries, dev = load_beir_split(beir_folder(root, "dev"))
    assert (len(train), sum(map(len, train.values())), len(dev), sum(map(len, dev.values()))) == (709, 804, 100, 115)
    assert not set(train) & set(dev)
    assert set(dev_queries) == set(dev) and set(train_queries) == set(train)
    titled = next(d for d in read_corpus(root / "corpus.jsonl") if d.title)
    assert titled.contents == f"{titled.title} {titled.text}"
