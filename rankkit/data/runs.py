"""TREC runs: 'qid Q0 docid rank score tag', held as {qid: [Hit, ...]} best first."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

from rankkit.data.files import atomic_write, iter_lines
from rankkit.errors import RankkitError, file_error


class Hit(NamedTuple):
    """One retrieved document, as pyserini's searchers return them."""

    docid: str
    score: float


Run = dict[str, list[Hit]]


def read_run(path: str | Path) -> Run:
    """Read a TREC run; each query's hits are sorted by score, best first (ties keep file order)."""
    path = Path(path)
    run: Run = {}
    seen: dict[tuple[str, str], int] = {}
    for number, line in iter_lines(path):
        fields = line.split()
        if len(fields) != 6:
            raise file_error(
                path,
                number,
                f"expected 6 fields 'qid Q0 docid rank score tag', found {len(fields)}",
                "write a TREC run, one hit per line",
            )
        qid, _, docid, _, score_text, _ = fields
        try:
            score = float(score_text)
        except ValueError:
            raise file_error(path, number, f"score {score_text!r} is not a number", "write numeric scores") from None
        if not math.isfinite(score):
            raise file_error(
                path,
                number,
                f"score {score_text!r} is not a finite number",
                "write finite scores (the system that wrote this run produced nan or inf)",
            )
        if (qid, docid) in seen:
            raise file_error(
                path,
                number,
                f"docid {docid!r} appears twice for query {qid!r} (first on line {seen[qid, docid]})",
                "keep one line per (query, document)",
            )
        seen[qid, docid] = number
        run.setdefault(qid, []).append(Hit(docid, score))
    if not run:
        raise file_error(path, None, "no hits found", "give a run with at least one line")
    for hits in run.values():
        hits.sort(key=lambda hit: -hit.score)
    return run


def check_word_ids(path: str | Path, line: int, **ids: str) -> None:
    """Refuse ids that a whitespace-separated TREC file (run, qrels) cannot hold: empty, or with
    whitespace. `path` and `line` are where the id would have been written."""
    for kind, value in ids.items():
        if not value or any(c.isspace() for c in value):
            raise file_error(
                path,
                line,
                f"{kind} {value!r} is empty or contains whitespace, which TREC files cannot hold",
                f"give every {kind} a single-word id (e.g. replace spaces by '_') "
                "in the corpus or queries file and rebuild",
            )


def write_run(run: Mapping[str, Sequence[Hit]], path: str | Path, tag: str = "rankkit") -> None:
    """Write a run in TREC format (ranks from 1, best first), atomically; ids with whitespace,
    which the format cannot hold, are refused."""
    if not tag or any(c.isspace() for c in tag):
        raise RankkitError(f"run tag {tag!r} is not one word. Fix: pass a tag without spaces, e.g. --tag bm25")
    with atomic_write(path) as out:
        line = 0
        for qid, hits in run.items():
            for rank, hit in enumerate(sorted(hits, key=lambda h: -h.score), start=1):
                line += 1
                check_word_ids(path, line, qid=qid, docid=hit.docid)
                out.write(f"{qid} Q0 {hit.docid} {rank} {hit.score:.6f} {tag}\n")
