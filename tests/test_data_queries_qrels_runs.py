"""Queries (TSV, TREC topics), qrels (graded TREC), runs (TREC) and the optional ir_datasets source.

Every error names the file, the line ('file:3') and a fix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import assert_file_error, temp_leftovers

from rankkit.data.corpus import read_corpus
from rankkit.data.qrels import read_qrels, relevant, write_qrels
from rankkit.data.queries import read_queries, write_queries
from rankkit.data.runs import Hit, read_run, write_run
from rankkit.errors import RankkitError


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


# --- queries -------------------------------------------------------------------------------------


def test_queries_tsv(tmp_path):
    path = write(tmp_path / "queries.tsv", "1\twhat is a fox\n\n 2 \t  many   spaces\there\r\n3\tcafé ✓\n")
    assert read_queries(path) == {"1": "what is a fox", "2": "many spaces here", "3": "café ✓"}


def test_queries_keep_file_order(tmp_path):
    path = write(tmp_path / "q.tsv", "30\tc\n10\ta\n20\tb\n")
    assert list(read_queries(path)) == ["30", "10", "20"]


def test_queries_write_read_round_trip(tmp_path):
    queries = {"1": "what is a fox", "q-2": "many   spaces\tand tab", "3": "newline\ninside"}
    path = tmp_path / "out" / "queries.tsv"
    write_queries(queries, path)
    assert path.read_text(encoding="utf-8") == "1\twhat is a fox\nq-2\tmany spaces and tab\n3\tnewline inside\n"
    assert read_queries(path) == {"1": "what is a fox", "q-2": "many spaces and tab", "3": "newline inside"}
    assert temp_leftovers(path.parent) == []


TOPICS = """<top>
<num> Number: 301
<title> International Organized Crime

<desc> Description:
Identify organizations that participate in international criminal activity.

<narr> Narrative:
A relevant document must as a minimum identify the organization.
</top>

<top>
<num> Number: 302
<title> Topic: Poliomyelitis and
Post-Polio

<desc> Description:
Is the disease of Poliomyelitis (polio) under control?
</top>
<top>
<num>303</num>
<title>Hubble Telescope Achievements</title>
<desc>Identify positive accomplishments.</desc>
</top>
"""


def test_trec_topic_file(tmp_path):
    path = write(tmp_path / "topics.301-303.txt", TOPICS)
    assert read_queries(path) == {
        "301": "International Organized Crime",
        "302": "Poliomyelitis and Post-Polio",  # 'Topic:' dropped, title over two lines joined
        "303": "Hubble Telescope Achievements",  # closed tags: regression, they used to stay in id and text
    }


def test_trec_topic_file_title_at_end_of_block(tmp_path):
    path = write(tmp_path / "t.txt", "<top>\n<num> Number: 1\n<title> only a title\n</top>\n")
    assert read_queries(path) == {"1": "only a title"}


def test_trec_topic_duplicate_qid_names_its_line(tmp_path):
    path = write(
        tmp_path / "topics.txt",
        "<top>\n<num> Number: 1\n<title> one\n</top>\n\n<top>\n<num> Number: 1\n<title> again\n</top>\n",
    )
    with pytest.raises(RankkitError) as excinfo:
        read_queries(path)
    assert_file_error(excinfo, path, 7, "duplicate qid '1'")


def test_trec_topic_empty_title_names_its_line(tmp_path):
    path = write(
        tmp_path / "topics.txt",
        "<top>\n<num> Number: 1\n<title> fine\n</top>\n"
        "<top>\n<num> Number: 2\n<title>\n<desc> Description:\nsome desc\n</top>\n",
    )
    with pytest.raises(RankkitError) as excinfo:
        read_queries(path)
    assert_file_error(excinfo, path, 6, "query '2' has empty text")


def test_trec_topic_without_num_names_its_line(tmp_path):
    path = write(
        tmp_path / "topics.txt", "<top>\n<num> Number: 1\n<title> fine\n</top>\n<top>\n<title> no number\n</top>\n"
    )
    with pytest.raises(RankkitError) as excinfo:
        read_queries(path)
    assert_file_error(excinfo, path, 5, "<num>")


def test_trec_topic_never_closed(tmp_path):
    # regression: an unclosed <top> used to read as zero queries without an error
    path = write(tmp_path / "topics.txt", "<top>\n<num> Number: 1\n<title> never closed\n")
    with pytest.raises(RankkitError) as excinfo:
        read_queries(path)
    assert_file_error(excinfo, path, 1, "</top>")


def test_queries_empty_text(tmp_path):
    path = write(tmp_path / "queries.tsv", "1\tfine\n2\t   \n")
    with pytest.raises(RankkitError) as excinfo:
        read_queries(path)
    assert_file_error(excinfo, path, 2, "query '2' has empty text")


def test_queries_duplicate_qid(tmp_path):
    path = write(tmp_path / "queries.tsv", "1\tfirst\n2\tsecond\n1\tagain\n")
    with pytest.raises(RankkitError) as excinfo:
        read_queries(path)
    assert_file_error(excinfo, path, 3, "duplicate qid '1'")


def test_queries_missing_tab(tmp_path):
    path = write(tmp_path / "queries.tsv", "1\tfine\n2 no tab\n")
    with pytest.raises(RankkitError) as excinfo:
        read_queries(path)
    assert_file_error(excinfo, path, 2, "tab")


def test_queries_invalid_utf8(tmp_path):
    path = tmp_path / "queries.tsv"
    path.write_bytes(b"1\tfine\n\n3\t\xff\xfe\n")
    with pytest.raises(RankkitError) as excinfo:
        read_queries(path)
    assert_file_error(excinfo, path, 3, "UTF-8")


def test_queries_empty_file(tmp_path):
    path = write(tmp_path / "queries.tsv", "\n\n")
    with pytest.raises(RankkitError) as excinfo:
        read_queries(path)
    assert str(path) in str(excinfo.value) and "empty" in str(excinfo.value) and "Fix:" in str(excinfo.value)


# --- qrels ---------------------------------------------------------------------------------------


def test_qrels_graded_read(tmp_path):
    path = write(tmp_path / "qrels.txt", "1 0 d1 3\n1 0 d2 0\n1\t0\td3\t1\n\n2 Q0 d1 2\n3 0 d9 -1\n")
    assert read_qrels(path) == {"1": {"d1": 3, "d2": 0, "d3": 1}, "2": {"d1": 2}, "3": {"d9": -1}}


def test_qrels_write_read_round_trip(tmp_path):
    qrels = {"q1": {"a": 3, "b": 0, "c": 1}, "q2": {"a": 2}}
    path = tmp_path / "qrels.txt"
    write_qrels(qrels, path)
    assert path.read_text() == "q1 0 a 3\nq1 0 b 0\nq1 0 c 1\nq2 0 a 2\n"
    assert read_qrels(path) == qrels
    assert temp_leftovers(tmp_path) == []


def test_qrels_empty_file(tmp_path):
    path = write(tmp_path / "qrels.txt", "\n")
    with pytest.raises(RankkitError) as excinfo:
        read_qrels(path)
    assert str(path) in str(excinfo.value) and "Fix:" in str(excinfo.value)


def test_relevant():
    qrels = {"1": {"a": 3, "b": 0, "c": 1, "d": 2}, "2": {"x": 0}, "3": {"y": -1, "z": 1}}
    assert relevant(qrels) == {"1": {"a", "c", "d"}, "2": set(), "3": {"z"}}
    assert relevant(qrels, min_grade=2) == {"1": {"a", "d"}, "2": set(), "3": set()}


# --- runs ----------------------------------------------------------------------------------------


def test_run_read_sorts_by_score_and_ignores_the_rank_column(tmp_path):
    path = write(
        tmp_path / "run.trec",
        "1 Q0 a 1 1.5 bm25\n1 Q0 b 2 3.0 bm25\n2 Q0 a 1 -2 bm25\n1\tQ0\tc\t3\t2.25\tbm25\n2 Q0 b 9 1e-3 bm25\n",
    )
    assert read_run(path) == {
        "1": [Hit("b", 3.0), Hit("c", 2.25), Hit("a", 1.5)],
        "2": [Hit("b", 0.001), Hit("a", -2.0)],
    }


def test_run_ties_keep_file_order(tmp_path):
    path = write(tmp_path / "run.trec", "1 Q0 z 1 1.0 t\n1 Q0 a 2 1.0 t\n1 Q0 m 3 2.0 t\n")
    assert [h.docid for h in read_run(path)["1"]] == ["m", "z", "a"]


def test_run_write_read_round_trip(tmp_path):
    run = {"q1": [Hit("low", 0.5), Hit("high", 2.0), Hit("mid", 1.25)], "q2": [Hit("only", -1.0)]}
    path = tmp_path / "runs" / "run.trec"
    write_run(run, path, tag="my-system")
    assert path.read_text().splitlines() == [
        "q1 Q0 high 1 2.000000 my-system",
        "q1 Q0 mid 2 1.250000 my-system",
        "q1 Q0 low 3 0.500000 my-system",
        "q2 Q0 only 1 -1.000000 my-system",
    ]
    assert read_run(path) == {"q1": [Hit("high", 2.0), Hit("mid", 1.25), Hit("low", 0.5)], "q2": [Hit("only", -1.0)]}
    assert temp_leftovers(path.parent) == []


def test_run_default_tag(tmp_path):
    path = tmp_path / "run.trec"
    write_run({"1": [Hit("d", 1.0)]}, path)
    assert path.read_text() == "1 Q0 d 1 1.000000 rankkit\n"


@pytest.mark.parametrize("tag", ["", "two words", "tab\there", "new\nline"])
def test_run_bad_tag_writes_nothing(tmp_path, tag):
    path = tmp_path / "run.trec"
    with pytest.raises(RankkitError) as excinfo:
        write_run({"1": [Hit("d", 1.0)]}, path, tag=tag)
    assert "tag" in str(excinfo.value) and "Fix:" in str(excinfo.value)
    assert not path.exists()
    assert temp_leftovers(tmp_path) == []


MALFORMED_LINES = [  # reader, file content, line named, fragments of the message
    (read_qrels, "1 0 d1 1\n1 0 d2\n", 2, ("expected 4 fields", "found 3")),
    (read_qrels, "1 0 d1 1\n1 0 d2 1 extra\n", 2, ("expected 4 fields", "found 5")),
    (read_qrels, "1 0 d1 1\n1\n", 2, ("expected 4 fields", "found 1")),
    *[
        (read_qrels, f"1 0 d1 1\n\n1 0 d2 {grade}\n", 3, (f"grade {grade!r} is not an integer",))
        for grade in ("1.5", "high", "nan")
    ],
    (read_qrels, "1 0 d1 1\n2 0 d1 0\n1 0 d1 2\n", 3, ("'d1' judged twice for query '1'",)),
    *[
        (read_run, f"1 Q0 a 1 2.0 t\n\n{bad}\n", 3, ("expected 6 fields", f"found {count}"))
        for bad, count in (("1 Q0 b 2 1.0", 5), ("1 Q0 b 2 1.0 tag extra", 7), ("1 b 1.0", 3))
    ],
    *[
        (read_run, f"1 Q0 a 1 2.0 t\n1 Q0 b 2 {score} t\n", 2, (f"score {score!r} is not a number",))
        for score in ("high", "1,5", "--1")
    ],
    (
        read_run,
        "1 Q0 a 1 2.0 t\n2 Q0 a 1 2.0 t\n1 Q0 b 2 1.0 t\n1 Q0 a 3 0.5 t\n",
        4,
        ("'a' appears twice for query '1'", "first on line 1"),
    ),
]


@pytest.mark.parametrize("reader, content, line, fragments", MALFORMED_LINES)
def test_malformed_qrels_and_run_lines_name_file_and_line(tmp_path, reader, content, line, fragments):
    path = write(tmp_path / "input.txt", content)
    with pytest.raises(RankkitError) as excinfo:
        reader(path)
    assert_file_error(excinfo, path, line, *fragments)


def test_run_empty_file(tmp_path):
    path = write(tmp_path / "run.trec", "")
    with pytest.raises(RankkitError) as excinfo:
        read_run(path)
    assert str(path) in str(excinfo.value) and "Fix:" in str(excinfo.value)


@pytest.mark.parametrize("reader", [read_queries, read_qrels, read_run])
def test_readers_missing_file_and_folder(tmp_path, reader):
    with pytest.raises(RankkitError) as excinfo:
        reader(tmp_path / "missing.txt")
    assert "missing.txt" in str(excinfo.value) and "Fix:" in str(excinfo.value)
    with pytest.raises(RankkitError) as excinfo:
        reader(tmp_path)
    assert "folder" in str(excinfo.value) and "Fix:" in str(excinfo.value)


# --- ir_datasets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda spec: read_queries(spec),
        lambda spec: read_qrels(spec),
        lambda spec: next(read_corpus(spec)),
    ],
)
def test_irds_without_ir_datasets_says_how_to_fix(monkeypatch, call):
    monkeypatch.setitem(sys.modules, "ir_datasets", None)  # absent, whether or not it is installed here
    spec = "irds:msmarco-passage/dev/small"
    with pytest.raises(RankkitError) as excinfo:
        call(spec)
    message = str(excinfo.value)
    assert spec in message
    assert "ir_datasets is not installed" in message
    assert "Fix:" in message and "pip install" in message and "rankkit[datasets]" in message
