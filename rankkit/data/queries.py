"""Queries: TSV (qid, text) and TREC topic files (<top><num>...<title>...)."""

from __future__ import annotations

import bisect
import itertools
import re
from pathlib import Path
from typing import Mapping

from rankkit.data import irds
from rankkit.data.files import atomic_write, iter_lines, json_object
from rankkit.errors import file_error

_TOPIC = re.compile(r"<top>(.*?)</top>", re.S)
_NUM = re.compile(r"<num>\s*(?:Number:)?\s*([^\s<]+)")
_TITLE = re.compile(r"<title>\s*(?:Topic:)?\s*(.*?)\s*(?=</title>|<desc>|<narr>|</top>|<title>|$)", re.S)


def _add(queries: dict[str, str], path: Path, line: int | None, qid: str, text: str) -> None:
    if not text.strip():
        raise file_error(path, line, f"query {qid!r} has empty text", "give every query some text or drop it")
    if qid in queries:
        raise file_error(path, line, f"duplicate qid {qid!r}", "give every query a unique id")
    queries[qid] = " ".join(text.split())


def _read_trec_topics(path: Path) -> dict[str, str]:
    numbered = list(iter_lines(path))
    content = "\n".join(line for _, line in numbered)
    starts = list(itertools.accumulate((len(line) + 1 for _, line in numbered), initial=0))

    def line_at(offset: int) -> int:  # the file's line number of a character offset in `content`
        return numbered[bisect.bisect_right(starts, offset) - 1][0]

    queries: dict[str, str] = {}
    for match in _TOPIC.finditer(content):
        block = match.group(1)
        num, title = _NUM.search(block), _TITLE.search(block)
        if not num or not title:
            raise file_error(
                path,
                line_at(match.start()),
                f"topic without <num> or <title>: {block.strip()[:60]!r}",
                "give every <top> a <num> and a <title>",
            )
        _add(queries, path, line_at(match.start(1) + num.start()), num.group(1), title.group(1))
    if not queries:
        raise file_error(
            path, numbered[0][0], "no complete <top> ... </top> topic found", "close every topic with </top>"
        )
    return queries


def _id_field(path: Path, number: int, record: dict, key: str = "_id") -> str:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise file_error(
            path,
            number,
            f"field {key!r} is missing, empty or not a string",
            f"give every record a non-empty string {key!r}",
        )
    return str(value).strip()


def read_beir_queries(path: str | Path) -> dict[str, str]:
    """{qid: text} from a BEIR queries.jsonl; whitespace in texts collapsed, as the TSV reader does."""
    path = Path(path)
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in iter_lines(path):
        record = json_object(path, number, line)
        qid = _id_field(path, number, record)
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise file_error(
                path,
                number,
                f"query {qid!r} has no text (field 'text' missing, empty or not a string)",
                "give every query a non-empty 'text'",
            )
        if qid in first_line:
            raise file_error(
                path,
                number,
                f"duplicate query id {qid!r} (first on line {first_line[qid]})",
                "give every query a unique '_id'",
            )
        first_line[qid] = number
        queries[qid] = " ".join(text.split())
    if not queries:
        raise file_error(path, None, "file is empty", "give at least one query")
    return queries


def read_queries(path: str | Path) -> dict[str, str]:
    """Read queries as {qid: text} from a TSV, a TREC topic file (detected by '<top>'), a BEIR
    queries.jsonl or `irds:<id>`."""
    if irds.is_irds(path):
        return irds.queries(str(path))
    path = Path(path)
    if path.suffix == ".jsonl":
        return read_beir_queries(path)
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None:
        raise file_error(path, None, "file is empty", "give at least one query")
    if first[1].lstrip().startswith("<top>"):
        return _read_trec_topics(path)
    queries: dict[str, str] = {}
    for number, line in [first, *lines]:
        qid, sep, text = line.partition("\t")
        if not sep or not qid.strip():
            raise file_error(path, number, "expected 'qid<TAB>query text'", "separate the id from the text with a tab")
        _add(queries, path, number, qid.strip(), text)
    return queries


def write_queries(queries: Mapping[str, str], path: str | Path) -> None:
    """Write {qid: text} as TSV, atomically."""
    with atomic_write(path) as out:
        for qid, text in queries.items():
            out.write(f"{qid}\t{' '.join(text.split())}\n")
