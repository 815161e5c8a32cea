"""Fuzzing every reader (issue 13): arbitrary bytes and mutated valid files either parse to what a
strict reference parse of the format gives, or raise RankkitError; never anything else.

The reference parsers below are written from the format descriptions (README "File formats"),
independently of rankkit's readers. Examples are bounded and derandomised, so the suite stays
fast and repeatable. With RANKKIT_FUZZ_REPORT=FILE the number of inputs fuzzed per reader is
written there as JSON (benchmarks/reliability.py reports it)."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankkit.data.corpus import read_corpus
from rankkit.data.qrels import read_beir_qrels, read_qrels
from rankkit.data.queries import read_beir_queries, read_queries
from rankkit.data.runs import Hit, read_run
from rankkit.errors import RankkitError
from rankkit.mining.minedset import MinedSet

BOM = b"\xef\xbb\xbf"
EXAMPLES = int(os.environ.get("RANKKIT_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
COUNTS: Counter[str] = Counter()
PARSED: Counter[str] = Counter()  # inputs the reader accepted (the rest it refused with RankkitError)
CRASHES: Counter[str] = Counter()
INVALID = "invalid"


class Invalid(Exception):
    """The reference parse rejects the input."""


class NoReference(Exception):
    """No reference parse for this input (a TREC topic file): only "no crash" is checked."""


# --- reference parsers -----------------------------------------------------------------------------


def ref_lines(data: bytes) -> list[tuple[int, str]]:
    """Non-blank lines with numbers: split on \\n only, UTF-8, BOM at the start and trailing \\r dropped."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    lines = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            raise Invalid from None
        if text.strip():
            lines.append((number, text))
    return lines


def ref_qrels(data: bytes) -> dict:
    qrels: dict[str, dict[str, int]] = {}
    for _, line in ref_lines(data):
        fields = line.split()
        if len(fields) != 4:
            raise Invalid
        try:
            grade = int(fields[3])
        except ValueError:
            raise Invalid from None
        if not -(2**31) <= grade < 2**31 or fields[2] in qrels.get(fields[0], {}):
            raise Invalid
        qrels.setdefault(fields[0], {})[fields[2]] = grade
    if not qrels:
        raise Invalid
    return qrels


def ref_run(data: bytes) -> dict:
    run: dict[str, list[Hit]] = {}
    for _, line in ref_lines(data):
        fields = line.split()
        if len(fields) != 6:
            raise Invalid
        try:
            score = float(fields[4])
        except ValueError:
            raise Invalid from None
        if not math.isfinite(score) or any(h.docid == fields[2] for h in run.get(fields[0], [])):
            raise Invalid
        run.setdefault(fields[0], []).append(Hit(fields[2], score))
    if not run:
        raise Invalid
    return {qid: sorted(hits, key=lambda h: -h.score) for qid, hits in run.items()}


def ref_queries_tsv(data: bytes) -> dict:
    queries: dict[str, str] = {}
    for _, line in ref_lines(data):
        qid, tab, text = line.partition("\t")
        qid = qid.strip()
        if not tab or not qid or not text.strip() or qid in queries:
            raise Invalid
        queries[qid] = " ".join(text.split())
    if not queries:
        raise Invalid
    return queries


def ref_queries(data: bytes) -> dict:
    lines = ref_lines(data)
    if lines and lines[0][1].lstrip().startswith("<top>"):
        raise NoReference
    return ref_queries_tsv(data)


def _text(value: Any, required: bool) -> str:
    """A corpus field: a string or integer (not a boolean), non-empty when required, valid Unicode."""
    if value is None and not required:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (required and str(value) == ""):
        raise Invalid
    try:
        str(value).encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid from None
    return str(value)


def _json_object(line: str) -> dict:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        raise Invalid from None
    if not isinstance(record, dict):
        raise Invalid
    return record


def ref_corpus(fmt: str) -> Callable[[bytes], list]:
    def parse(data: bytes) -> list:
        docs: list[tuple[str, str, str]] = []
        for _, line in ref_lines(data):
            if fmt == "tsv":
                docid, tab, text = line.partition("\t")
                if not tab or not docid.strip():
                    raise Invalid
                doc = (docid.strip(), text, "")
            elif fmt == "pyserini":
                record = _json_object(line)
                doc = (_text(record.get("id"), True), _text(record.get("contents"), False), "")
            else:
                record = _json_object(line)
                doc = (
                    _text(record.get("_id"), True),
                    _text(record.get("text"), False),
                    _text(record.get("title"), False),
                )
            if any(d[0] == doc[0] for d in docs):
                raise Invalid
            docs.append(doc)
        if not docs:
            raise Invalid
        return docs

    return parse


def _typed(
    record: dict, key: str, kind: type | tuple, nullable: bool = False, required: bool = True, default: Any = None
) -> Any:
    if key not in record:
        if required:
            raise Invalid
        return default
    value = record[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise Invalid
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Invalid from None
    return value


def _exact_keys(record: Any, allowed: set[str]) -> dict:
    if not isinstance(record, dict) or set(record) - allowed:
        raise Invalid
    return record


PROVENANCE = {"source", "rank", "score", "teacher_score"}


def _provenance(record: dict) -> tuple:
    return (
        _typed(record, "source", str, required=False, default=""),
        _typed(record, "rank", int, nullable=True, required=False),
        _typed(record, "score", (int, float), nullable=True, required=False),
        _typed(record, "teacher_score", (int, float), nullable=True, required=False),
    )


def ref_minedset(data: bytes) -> tuple:
    lines = ref_lines(data)
    if not lines:
        return ({}, {}, [])
    header = _json_object(lines[0][1])
    meta = header.get("_meta") if "_meta" in header else None
    if not isinstance(meta, dict) or meta.get("format") != "rankkit-minedset":
        raise Invalid
    queries = []
    for _, line in lines[1:]:
        record = _exact_keys(_json_object(line), {"qid", "query", "positives", "negatives"})
        qid, text = _typed(record, "qid", str), _typed(record, "query", str)
        positives, retrieved = {}, {}
        for p in _typed(record, "positives", list):
            p = _exact_keys(p, {"docid", "grade", "retrieved"})
            docid, grade = _typed(p, "docid", str), _typed(p, "grade", int)
            positives[docid] = grade
            provenance = _typed(p, "retrieved", dict, nullable=True)
            if provenance is not None:
                retrieved[docid] = _provenance(_exact_keys(provenance, PROVENANCE))
        negatives = []
        for n in _typed(record, "negatives", list):
            n = _exact_keys(n, {"docid", "strategy"} | PROVENANCE)
            negatives.append(
                (_typed(n, "docid", str), *_provenance(n), _typed(n, "strategy", str, required=False, default=""))
            )
        queries.append((qid, text, positives, negatives, retrieved))
    return (meta.get("config", {}), meta.get("stats", {}), queries)


# --- what rankkit's readers give, in the reference's shape -----------------------------------------


def rankkit_minedset(path: Path) -> tuple:
    mined = MinedSet.read(path)
    return (
        mined.config,
        mined.stats,
        [
            (
                q.qid,
                q.query,
                q.positives,
                [(c.docid, c.source, c.rank, c.score, c.teacher_score, c.strategy) for c in q.negatives],
                {d: (c.source, c.rank, c.score, c.teacher_score) for d, c in q.positive_provenance.items()},
            )
            for q in mined.queries
        ],
    )


def rankkit_corpus(fmt: str) -> Callable[[Path], list]:
    return lambda path: [(d.docid, d.text, d.title) for d in read_corpus(path, fmt)]  # type: ignore[arg-type]


def check(
    name: str, folder: Path, data: bytes, reader: Callable[[Path], Any], reference: Callable[[bytes], Any] | None
) -> None:
    """The reader agrees with the reference (value, or both reject); it raises nothing but
    RankkitError. Without a reference, only the second half is checked."""
    path = folder / f"{name}.input"
    path.write_bytes(data)
    COUNTS[name] += 1
    try:
        got: Any = reader(path)
        PARSED[name] += 1
    except RankkitError:
        got = INVALID
    except Exception:
        CRASHES[name] += 1
        raise
    if reference is None:
        return
    try:
        expected: Any = reference(data)
    except Invalid:
        expected = INVALID
    except NoReference:
        return
    assert got == expected, (data, got, expected)


# --- inputs ----------------------------------------------------------------------------------------

TOKENS = [
    b"\t",
    b" ",
    b"\n",
    b"\r",
    b"\r\n",
    BOM,
    b"\xff",
    b"\xc3",
    b"\xc2\x85",
    b"\xe2\x80\xa8",
    b"nan",
    b"inf",
    b"-1",
    b"2147483648",
    b"1e400",
    b"1_0",
    b'"',
    b"{",
    b"}",
    b"[",
    b",",
    b":",
    b"null",
    b"true",
    b"\\ud800",
    b'"_id"',
    b'"id"',
    b"<top>",
    b"</top>",
    b"<num>",
    b"<title>",
    b"\x00",
]


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _retyped(draw: st.DrawFn, line: bytes) -> bytes:
    """A JSON line with one value (at any depth) replaced by a value of any type, or a key dropped."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    containers = []

    def walk(node: Any) -> None:
        if isinstance(node, dict) and node:
            containers.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list) and node:
            containers.append(node)
            for value in node:
                walk(value)

    walk(record)
    if not containers:
        return line
    node = draw(st.sampled_from(containers))
    key = draw(st.sampled_from(list(node) if isinstance(node, dict) else list(range(len(node)))))
    if isinstance(node, dict) and draw(st.booleans()):
        del node[key]
    else:
        node[key] = draw(JSON_VALUES)
    return json.dumps(record).encode()


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """A valid file with one to four edits: bytes inserted, deleted or replaced, a line repeated,
    a token that parsers trip on (tabs, BOMs, bad UTF-8, nan, huge numbers, JSON punctuation), a
    byte-order mark in front, or, in a JSON line, a value of another type or a key dropped."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(
            st.sampled_from(["insert", "delete", "replace", "repeat line", "token", "bom", "retype", "retype"])
        )
        if action == "bom":
            data[0:0] = BOM
        elif action == "retype":
            lines = bytes(data).split(b"\n")
            which = draw(st.integers(0, len(lines) - 1))
            lines[which] = _retyped(draw, lines[which])
            data = bytearray(b"\n".join(lines))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 12))]
        elif action == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "repeat line":
            lines = bytes(data).split(b"\n")
            line = lines[draw(st.integers(0, len(lines) - 1))]
            data = bytearray(b"\n".join([*lines, line]))
        else:
            data[at:at] = draw(st.sampled_from(TOKENS))
    return bytes(data)


def _head(path: Path, lines: int) -> bytes:
    return b"".join(path.read_bytes().splitlines(keepends=True)[:lines])


@pytest.fixture(scope="module")
def seeds(sample_dir, tmp_path_factory) -> dict[str, bytes]:
    """Small valid files of every format, from the bundled sample."""
    docs = list(read_corpus(sample_dir / "collection.tsv"))[:4]
    pyserini = "".join(json.dumps({"id": d.docid, "contents": d.text}) + "\n" for d in docs)
    beir = "".join(json.dumps({"_id": d.docid, "title": "t", "text": d.text}) + "\n" for d in docs)
    mined = (
        json.dumps({"_meta": {"format": "rankkit-minedset", "version": 1, "config": {"seed": 0}, "stats": {}}})
        + "\n"
        + json.dumps(
            {
                "qid": "q1",
                "query": "stars",
                "positives": [
                    {
                        "docid": "s001",
                        "grade": 2,
                        "retrieved": {"source": "bm25", "rank": 1, "score": 3.5, "teacher_score": None},
                    }
                ],
                "negatives": [
                    {
                        "docid": "s002",
                        "source": "bm25",
                        "rank": 2,
                        "score": 2.0,
                        "teacher_score": None,
                        "strategy": "window>top",
                    }
                ],
            }
        )
        + "\n"
    )
    return {
        "tsv": _head(sample_dir / "collection.tsv", 4),
        "pyserini": pyserini.encode(),
        "beir": beir.encode(),
        "queries": _head(sample_dir / "queries.tsv", 4),
        "qrels": _head(sample_dir / "qrels.txt", 5),
        "run": b"q1 Q0 s001 1 3.5 bm25\nq1 Q0 s002 2 2.0 bm25\nq2 Q0 s001 1 1.25 bm25\n",
        "topics": b"<top>\n<num> Number: 7\n<title> stars and planets\n</top>\n<top>\n<num> 8\n<title> moon\n</top>\n",
        "minedset": mined.encode(),
        "beir-queries": b'{"_id": "q1", "text": "stars", "metadata": {}}\n{"_id": 2, "text": "moon"}\n',
        "beir-qrels": b"query-id\tcorpus-id\tscore\r\nq1\ts001\t1\r\nq1\ts002\t0\r\n",
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    if os.environ.get("RANKKIT_FUZZ_REPORT"):
        Path(os.environ["RANKKIT_FUZZ_REPORT"]).write_text(
            json.dumps(
                {
                    "inputs": dict(COUNTS),
                    "parsed": dict(PARSED),
                    "crashes": dict(CRASHES),
                    "examples_per_test": EXAMPLES,
                },
                indent=2,
            )
        )


READERS: dict[str, tuple[Callable[[Path], Any], Callable[[bytes], Any] | None]] = {
    "tsv": (rankkit_corpus("tsv"), ref_corpus("tsv")),
    "pyserini": (rankkit_corpus("pyserini"), ref_corpus("pyserini")),
    "beir": (rankkit_corpus("beir"), ref_corpus("beir")),
    "queries": (read_queries, ref_queries),
    "qrels": (read_qrels, ref_qrels),
    "run": (read_run, ref_run),
    "topics": (read_queries, ref_queries),
    "minedset": (rankkit_minedset, ref_minedset),
    "beir-queries": (read_beir_queries, None),  # BEIR readers (tests/test_beir.py): "no crash" only
    "beir-qrels": (read_beir_qrels, None),
}


@pytest.mark.parametrize("name", list(READERS))
@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes(name, data, scratch):
    check(f"{name}-bytes", scratch, data, *READERS[name])


@pytest.mark.parametrize("name", list(READERS))
@FUZZ
@given(edit=st.data())
def test_mutated_valid_files(name, edit, seeds, scratch):
    data = edit.draw(mutated(seeds[name]))
    check(f"{name}-mutated", scratch, data, *READERS[name])


@pytest.mark.parametrize("name", list(READERS))
def test_the_seeds_are_valid(name, seeds, scratch):
    reader, _ = READERS[name]
    path = scratch / f"{name}.seed"
    path.write_bytes(seeds[name])
    assert reader(path)
