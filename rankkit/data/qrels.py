"""TREC qrels: 'qid iteration docid grade' with graded (integer) relevance."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Mapping

from rankkit.data import irds
from rankkit.data.files import atomic_write, iter_lines
from rankkit.data.runs import check_word_ids
from rankkit.errors import file_error

Qrels = dict[str, dict[str, int]]
GRADE_RANGE = (-(2**31), 2**31 - 1)  # trec_eval and pytrec_eval hold grades in a C int
QRELS_HEADER = ("query-id", "corpus-id", "score")  # BEIR's qrels TSV header
_INTEGER = re.compile(r"[+-]?[0-9]+")


def read_qrels(path: str | Path) -> Qrels:
    """Read qrels as {qid: {docid: grade}} from TREC qrels, a BEIR qrels TSV (3 tab-separated
    columns after its header) or `irds:<id>`; a repeated (qid, docid) is an error."""
    if irds.is_irds(path):
        return irds.qrels(str(path))
    path = Path(path)
    if _looks_like_beir(path):
        return read_beir_qrels(path)
    qrels: Qrels = {}
    for number, line in iter_lines(path):
        fields = line.split()
        if len(fields) != 4:
            raise file_error(
                path,
                number,
                f"expected 4 fields 'qid 0 docid grade', found {len(fields)}",
                "write TREC qrels, one judgment per line",
            )
        qid, _, docid, grade_text = fields
        try:
            grade = int(grade_text)
        except ValueError:
            raise file_error(
                path, number, f"grade {grade_text!r} is not an integer", "use integer grades (0 = not relevant)"
            ) from None
        check_grade_range(path, number, grade, "grade")
        judged = qrels.setdefault(qid, {})
        if docid in judged:
            raise file_error(
                path,
                number,
                f"docid {docid!r} judged twice for query {qid!r}",
                "keep one judgment per (query, document)",
            )
        judged[docid] = grade
    if not qrels:
        raise file_error(path, None, "no judgments found", "give a qrels file with at least one line")
    return qrels


def check_grade_range(path: Path, number: int, grade: int, what: str) -> None:
    """Refuse a grade trec_eval and pytrec_eval cannot hold (a C int), naming the line."""
    if not GRADE_RANGE[0] <= grade <= GRADE_RANGE[1]:
        raise file_error(
            path,
            number,
            f"{what} {grade} is too large for an integer grade",
            f"use {what}s between {GRADE_RANGE[0]} and {GRADE_RANGE[1]} (usually 0-3)",
        )


def is_beir_qrels(path: str | Path) -> bool:
    """True when the file's first non-blank line is BEIR's qrels header."""
    for _, line in iter_lines(path):
        return tuple(field.strip() for field in line.split("\t")) == QRELS_HEADER
    return False


def iter_beir_qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """(line number, qid, docid, score) for every judgment, after checking the header."""
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None:
        raise file_error(
            path, None, "file is empty", "write the header 'query-id<TAB>corpus-id<TAB>score' and at least one judgment"
        )
    number, line = first
    if tuple(field.strip() for field in line.split("\t")) != QRELS_HEADER:
        raise file_error(
            path,
            number,
            f"expected the header 'query-id<TAB>corpus-id<TAB>score', found {line[:60]!r}",
            "add BEIR's header line first (or give TREC qrels 'qid 0 docid grade' in a .txt file)",
        )
    for number, line in lines:
        fields = [field.strip() for field in line.split("\t")]
        if len(fields) != 3:
            raise file_error(
                path,
                number,
                f"expected 3 tab-separated fields 'query-id corpus-id score', found {len(fields)}",
                "write one judgment per line, fields separated by tabs",
            )
        qid, docid, score_text = fields
        if not qid or not docid:
            raise file_error(path, number, "empty query-id or corpus-id", "give both ids on every line")
        if not _INTEGER.fullmatch(score_text):
            raise file_error(
                path, number, f"score {score_text!r} is not an integer", "use integer scores (0 = not relevant)"
            )
        score = int(score_text)
        check_grade_range(path, number, score, "score")
        yield number, qid, docid, score


def read_beir_qrels(path: str | Path) -> Qrels:
    """{qid: {docid: score}} from a BEIR qrels TSV; a repeated (qid, docid) is an error."""
    path = Path(path)
    qrels: Qrels = {}
    for number, qid, docid, score in iter_beir_qrels(path):
        judged = qrels.setdefault(qid, {})
        if docid in judged:
            raise file_error(
                path,
                number,
                f"corpus-id {docid!r} judged twice for query {qid!r}",
                "keep one judgment per (query, document)",
            )
        judged[docid] = score
    if not qrels:
        raise file_error(path, None, "no judgments after the header", "give at least one judgment")
    return qrels


def _looks_like_beir(path: Path) -> bool:
    """BEIR qrels: the first line has 3 tab-separated fields (its header, or a judgment when the
    header is missing, which the BEIR reader then reports)."""
    for _, line in iter_lines(path):
        return len(line.split("\t")) == 3
    return False


def write_qrels(qrels: Mapping[str, Mapping[str, int]], path: str | Path) -> None:
    """Write qrels in TREC format, atomically; ids with whitespace, which the format cannot hold,
    are refused."""
    with atomic_write(path) as out:
        line = 0
        for qid, judged in qrels.items():
            for docid, grade in judged.items():
                line += 1
                check_word_ids(path, line, qid=qid, docid=docid)
                out.write(f"{qid} 0 {docid} {int(grade)}\n")


def relevant(qrels: Qrels, min_grade: int = 1) -> dict[str, set[str]]:
    """Per query, the documents judged at least min_grade."""
    return {qid: {d for d, g in judged.items() if g >= min_grade} for qid, judged in qrels.items()}
