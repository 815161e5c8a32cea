"""Corpus readers and writers: MS MARCO TSV, pyserini JSONL, BEIR JSONL; detection, gzip,
malformed input (errors name the file, the line and the fix), streaming, atomic writes."""

from __future__ import annotations

import gzip
import inspect
import json
from pathlib import Path

import pytest
from conftest import assert_file_error, temp_leftovers

from rankkit.data.corpus import Document, detect_corpus_format, read_corpus, write_corpus
from rankkit.errors import RankkitError

DOCS = [
    Document("d1", "The quick brown fox.", "Foxes"),
    Document("d2", "Jumps over the lazy dog. Ünïcödé ✓ 中文"),
    Document("7", "Numbers as ids", 'Title with "quotes"'),
]


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


# --- round trips ---------------------------------------------------------------------------------


def test_tsv_round_trip_keeps_ids_and_joins_title_into_text(tmp_path):
    path = tmp_path / "corpus.tsv"
    assert write_corpus(DOCS, path, "tsv") == 3
    assert path.read_text(encoding="utf-8").splitlines() == [
        "d1\tFoxes The quick brown fox.",
        "d2\tJumps over the lazy dog. Ünïcödé ✓ 中文",
        '7\tTitle with "quotes" Numbers as ids',
    ]
    back = list(read_corpus(path))
    assert [d.docid for d in back] == ["d1", "d2", "7"]
    assert [d.contents for d in back] == [d.contents for d in DOCS]
    assert all(d.title == "" for d in back)  # TSV has no title column
    assert temp_leftovers(tmp_path) == []


def test_pyserini_round_trip(tmp_path):
    path = tmp_path / "corpus.jsonl"
    assert write_corpus(DOCS, path, "pyserini") == 3
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records[0] == {"id": "d1", "contents": "Foxes The quick brown fox."}
    assert records[1]["contents"] == "Jumps over the lazy dog. Ünïcödé ✓ 中文"
    assert "中文" in path.read_text(encoding="utf-8")  # written as UTF-8, not \u escapes
    assert detect_corpus_format(path) == "pyserini"
    back = list(read_corpus(path))
    assert [(d.docid, d.contents) for d in back] == [(d.docid, d.contents) for d in DOCS]


def test_beir_round_trip_keeps_title_separate_and_joins_it_into_contents(tmp_path):
    path = tmp_path / "corpus.jsonl"
    assert write_corpus(DOCS, path, "beir") == 3
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records[0] == {"_id": "d1", "title": "Foxes", "text": "The quick brown fox."}
    assert records[1] == {"_id": "d2", "title": "", "text": "Jumps over the lazy dog. Ünïcödé ✓ 中文"}
    assert detect_corpus_format(path) == "beir"
    back = list(read_corpus(path))
    assert back == DOCS
    assert back[0].contents == "Foxes The quick brown fox."
    assert back[1].contents == "Jumps over the lazy dog. Ünïcödé ✓ 中文"  # no leading space without title


def test_beir_reader_accepts_missing_or_null_title_and_extra_keys(tmp_path):
    path = write_text(
        tmp_path / "c.jsonl",
        '{"_id": "a", "text": "alpha", "metadata": {"url": "x"}}\n'
        '{"_id": "b", "title": null, "text": "beta"}\n'
        '{"_id": 3, "title": "T", "text": "gamma"}\n',
    )
    assert list(read_corpus(path)) == [Document("a", "alpha"), Document("b", "beta"), Document("3", "gamma", "T")]


def test_tab_inside_tsv_text_is_kept(tmp_path):
    # only the first tab separates the id; MS MARCO never has more, but the text must survive
    path = write_text(tmp_path / "c.tsv", "1\tleft\tright\n")
    assert list(read_corpus(path)) == [Document("1", "left\tright")]


# --- detection -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("c.tsv", "1\ttext\n", "tsv"),
        ("c.txt", "1\ttext\n", "tsv"),
        ("c.tsv.gz", None, "tsv"),
        ("c.jsonl", '{"id": "1", "contents": "x"}\n', "pyserini"),
        ("c.json", '{"id": "1", "contents": "x"}\n', "pyserini"),
        ("c.jsonl", '{"_id": "1", "title": "", "text": "x"}\n', "beir"),
        ("c.jsonl", '\n\n{"_id": "1", "text": "x"}\n', "beir"),  # blank lines before the first record
    ],
)
def test_detect_corpus_format(tmp_path, name, content, expected):
    path = tmp_path / name
    if content is None:
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write("1\ttext\n")
    else:
        write_text(path, content)
    assert detect_corpus_format(path) == expected


def test_detect_gzipped_jsonl_reads_the_first_record(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write('{"_id": "x", "title": "t", "text": "body"}\n')
    assert detect_corpus_format(path) == "beir"
    assert list(read_corpus(path)) == [Document("x", "body", "t")]


def test_detect_unknown_extension_names_the_file_and_the_fix(tmp_path):
    path = write_text(tmp_path / "corpus.xml", "<doc/>")
    with pytest.raises(RankkitError) as excinfo:
        detect_corpus_format(path)
    assert_file_error(excinfo, path, None, "corpus.xml", "--format")


def test_explicit_format_overrides_the_extension(tmp_path):
    path = write_text(tmp_path / "corpus.data", '{"id": "1", "contents": "x"}\n')
    assert list(read_corpus(path, "pyserini")) == [Document("1", "x")]


# --- gzip, line ends, U+0085 ---------------------------------------------------------------------


def test_gzip_tsv_input(tmp_path):
    path = tmp_path / "collection.tsv.gz"
    with gzip.open(path, "wb") as out:
        out.write("1\tfirst passage\n2\tsecond ✓\n".encode("utf-8"))
    assert list(read_corpus(path)) == [Document("1", "first passage"), Document("2", "second ✓")]


def test_file_named_gz_that_is_not_gzip_is_a_rankkit_error(tmp_path):
    # regression: gzip.BadGzipFile used to escape instead of a RankkitError naming the file
    path = write_text(tmp_path / "collection.tsv.gz", "1\tplain text\n")
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path))
    assert_file_error(excinfo, path, 1, "gzip")


def test_truncated_gzip_is_a_rankkit_error(tmp_path):
    # regression: a cut-off download raised a bare EOFError
    data = gzip.compress(("".join(f"{i}\tpassage number {i}\n" for i in range(2000))).encode())
    path = write_bytes(tmp_path / "collection.tsv.gz", data[: len(data) // 2])
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path))
    assert str(path) in str(excinfo.value) and "Fix:" in str(excinfo.value)


def test_u0085_inside_a_passage_does_not_split_the_line(tmp_path):
    text = "before\u0085after \u2028 and \u2029 and \x1c too"
    path = write_text(tmp_path / "c.tsv", f"1\t{text}\n2\tnext\n")
    docs = list(read_corpus(path))
    assert docs == [Document("1", text), Document("2", "next")]
    # and the writers keep it on one line as well
    for fmt, name in (("tsv", "o.tsv"), ("pyserini", "o.jsonl"), ("beir", "b.jsonl")):
        out = tmp_path / name
        write_corpus(docs, out, fmt)
        assert out.read_bytes().count(b"\n") == 2
        assert list(read_corpus(out, fmt)) == docs


def test_crlf_line_ends(tmp_path):
    path = write_bytes(tmp_path / "c.tsv", b"1\tone\r\n2\ttwo\r\n\r\n")
    assert list(read_corpus(path)) == [Document("1", "one"), Document("2", "two")]
    jpath = write_bytes(tmp_path / "c.jsonl", b'{"id": "1", "contents": "one"}\r\n{"id": "2", "contents": "two"}\r\n')
    assert list(read_corpus(jpath)) == [Document("1", "one"), Document("2", "two")]


def test_blank_lines_are_skipped_but_line_numbers_count_them(tmp_path):
    path = write_text(tmp_path / "c.tsv", "1\tone\n\n   \n2\ttwo\nbroken\n")
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path))
    assert_file_error(excinfo, path, 5)


# --- streaming -----------------------------------------------------------------------------------


def test_read_corpus_is_a_lazy_generator(tmp_path):
    path = write_text(tmp_path / "c.tsv", "1\tfine\n2\talso fine\nno tab here\n")
    docs = read_corpus(path)
    assert inspect.isgenerator(docs)
    # the malformed third line is not read until the consumer gets that far
    assert next(docs) == Document("1", "fine")
    assert next(docs) == Document("2", "also fine")
    with pytest.raises(RankkitError):
        next(docs)


def test_read_corpus_does_not_open_the_file_before_iteration(tmp_path):
    missing = tmp_path / "later.tsv"
    docs = read_corpus(missing)  # nothing happens yet
    write_text(missing, "1\tcreated after the call\n")
    assert list(docs) == [Document("1", "created after the call")]


# --- malformed input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, fmt, line, fragments",
    [
        ("c.tsv", "1\tok\n2 no tab\n", None, 2, ("tab",)),
        ("c.tsv", "\tno id\n", None, 1, ()),
        ("c.jsonl", '{"id": "1", "contents": "ok"}\n{"id": "2", "contents": \n', None, 2, ("invalid JSON",)),
        ("c.jsonl", '{"id": "1", "contents": "ok"}\n{"contents": "no id"}\n', None, 2, ("'id'",)),
        ("c.jsonl", '{"id": "", "contents": "x"}\n', "pyserini", 1, ("'id'",)),
        ("c.jsonl", '{"_id": "1", "text": "ok"}\n{"title": "t", "text": "no id"}\n', None, 2, ("'_id'",)),
        ("c.jsonl", '{"_id": "1", "text": ["a", "list"]}\n', None, 1, ("'text'",)),
    ],
    ids=[
        "tsv-missing-tab",
        "tsv-empty-docid",
        "bad-json",
        "pyserini-missing-id",
        "pyserini-empty-id",
        "beir-missing-id",
        "non-string-text",
    ],
)
def test_malformed_corpus_names_file_and_line(tmp_path, name, content, fmt, line, fragments):
    path = write_text(tmp_path / name, content)
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path, fmt) if fmt else read_corpus(path))
    assert_file_error(excinfo, path, line, *fragments)


def test_bad_json_on_the_first_line_fails_detection(tmp_path):
    path = write_text(tmp_path / "c.jsonl", "{not json}\n")
    with pytest.raises(RankkitError) as excinfo:
        detect_corpus_format(path)
    assert_file_error(excinfo, path, 1, "invalid JSON")


@pytest.mark.parametrize("line", ['["1", "text"]', '"just a string"', "42", "null"])
def test_json_not_an_object(tmp_path, line):
    path = write_text(tmp_path / "c.jsonl", '{"id": "1", "contents": "ok"}\n' + line + "\n")
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path))
    assert_file_error(excinfo, path, 2, "not an object")


@pytest.mark.parametrize("record", ['{"docid": "1", "body": "x"}', '{"id": "1", "text": "x"}', "{}"])
def test_jsonl_with_wrong_keys(tmp_path, record):
    path = write_text(tmp_path / "c.jsonl", record + "\n")
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path))
    assert_file_error(excinfo, path, 1, "keys", "pyserini", "BEIR")


def test_invalid_utf8(tmp_path):
    path = write_bytes(tmp_path / "c.tsv", b"1\tok\n2\tcaf\xe9 latin-1\n")
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path))
    assert_file_error(excinfo, path, 2, "UTF-8")


@pytest.mark.parametrize(
    "name, content",
    [
        ("c.tsv", "a\tfirst\nb\tother\n\na\tsecond\n"),
        ("c.jsonl", '{"id": "a", "contents": "first"}\n{"id": "b", "contents": "x"}\n\n{"id": "a", "contents": "y"}\n'),
    ],
)
def test_duplicate_docid_names_both_lines(tmp_path, name, content):
    path = write_text(tmp_path / name, content)
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path))
    assert_file_error(excinfo, path, 4, "duplicate docid 'a'", "first on line 1")


def test_duplicate_docid_counts_numeric_json_ids_as_strings(tmp_path):
    path = write_text(tmp_path / "c.jsonl", '{"_id": 1, "text": "a"}\n{"_id": "1", "text": "b"}\n')
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path))
    assert_file_error(excinfo, path, 2, "duplicate docid '1'", "first on line 1")


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.jsonl", ""),
        ("blank.jsonl", "\n  \n"),
        ("empty.tsv", ""),
        ("blank.tsv", "\n\n"),
        ("e.tsv.gz", None),
    ],
)
def test_empty_file(tmp_path, name, content):
    # regression: an empty TSV corpus used to read as zero documents without a word
    path = tmp_path / name
    if content is None:
        with gzip.open(path, "wb"):
            pass
    else:
        write_text(path, content)
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path))
    assert_file_error(excinfo, path, None, "empty")


def test_unknown_format_names_the_file(tmp_path):
    path = write_text(tmp_path / "c.tsv", "1\tx\n")
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path, "xml"))  # type: ignore[arg-type]
    assert_file_error(excinfo, path, None, "'xml'", "tsv, pyserini, beir")


def test_write_unknown_format_writes_nothing(tmp_path):
    # regression: with no documents, an unknown format used to leave an empty file behind
    path = tmp_path / "out.xml"
    for docs in ([], DOCS):
        with pytest.raises(RankkitError) as excinfo:
            write_corpus(docs, path, "xml")  # type: ignore[arg-type]
        assert "'xml'" in str(excinfo.value) and "Fix:" in str(excinfo.value)
        assert not path.exists()
        assert temp_leftovers(tmp_path) == []


def test_folder_instead_of_a_file(tmp_path):
    folder = tmp_path / "corpus.tsv"
    folder.mkdir()
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(folder))
    assert_file_error(excinfo, folder, None, "folder")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.tsv"
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(path))
    assert_file_error(excinfo, path, None, "no such file")
    with pytest.raises(RankkitError) as excinfo:
        detect_corpus_format(tmp_path / "nope.jsonl")
    assert_file_error(excinfo, tmp_path / "nope.jsonl", None, "no such file")


# --- atomic writes -------------------------------------------------------------------------------


def test_write_tsv_with_tab_in_text_fails_and_leaves_no_file(tmp_path):
    path = tmp_path / "out.tsv"
    docs = [Document("1", "fine"), Document("2", "has\ta tab")]
    with pytest.raises(RankkitError) as excinfo:
        write_corpus(docs, path, "tsv")
    assert "'2'" in str(excinfo.value) and "Fix:" in str(excinfo.value)
    assert not path.exists()
    assert temp_leftovers(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad",
    [Document("1", "line\nbreak"), Document("1", "x", "title\nbreak"), Document("a\tb", "x"), Document("a\nb", "x")],
)
def test_write_tsv_refuses_what_tsv_cannot_hold_and_keeps_the_old_file(tmp_path, bad):
    # regression: a newline in a docid used to be written, corrupting the file
    path = write_text(tmp_path / "out.tsv", "old\tcontent\n")
    before = path.read_bytes()
    with pytest.raises(RankkitError):
        write_corpus([Document("ok", "good"), bad], path, "tsv")
    assert path.read_bytes() == before
    assert temp_leftovers(tmp_path) == []


def test_writer_failing_midway_in_the_input_leaves_no_file(tmp_path):
    def docs():
        yield Document("1", "one")
        yield Document("2", "two")
        raise RuntimeError("source broke")

    path = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError, match="source broke"):
        write_corpus(docs(), path, "beir")
    assert not path.exists()
    assert temp_leftovers(tmp_path) == []


def test_write_overwrites_and_creates_parent_folders(tmp_path):
    path = tmp_path / "new" / "sub" / "c.tsv"
    write_corpus(DOCS[:1], path)
    write_corpus(DOCS[1:], path)
    assert [d.docid for d in read_corpus(path)] == ["d2", "7"]
    assert temp_leftovers(path.parent) == []


def test_write_accepts_a_generator_and_counts(tmp_path):
    path = tmp_path / "c.jsonl"
    n = write_corpus((Document(str(i), f"text {i}") for i in range(250)), path, "pyserini")
    assert n == 250
    assert [d.docid for d in read_corpus(path)] == [str(i) for i in range(250)]


def test_tsv_round_trip_of_the_bundled_sample(sample_dir, tmp_path):
    docs = list(read_corpus(sample_dir / "collection.tsv"))
    assert docs, "the bundled sample has documents"
    for fmt, name in (("tsv", "s.tsv"), ("pyserini", "s.jsonl"), ("beir", "b.jsonl")):
        write_corpus(docs, tmp_path / name, fmt)
        assert [(d.docid, d.contents) for d in read_corpus(tmp_path / name)] == [(d.docid, d.contents) for d in docs]


def test_atomic_writes_give_files_and_folders_the_usual_permissions(tmp_path):
    import os
    import stat

    from rankkit.data.files import atomic_dir, atomic_write

    mask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "file.txt") as out:
            out.write("x")
        with atomic_dir(tmp_path / "folder") as folder:
            (folder / "inside").write_text("y")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "file.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755


def test_reading_the_umask_does_not_change_it():
    import os

    from rankkit.data.files import _umask

    mask = os.umask(0o027)
    try:
        assert _umask() == 0o027
        assert os.umask(0o027) == 0o027  # still set, as read
    finally:
        os.umask(mask)
