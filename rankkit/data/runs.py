"""TREC runs: 'qid Q0 docid rank score tag', held as {qid: [Hit, ...]} best first."""

from __future__ import annotations

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
            raise file_error(path, number, f"expected 6 fields 'qid Q0 docid rank score tag', found {len(fields)}",
                             "write a TREC run, one hit per line")
        qid, _, docid, _, score_text, _ = fields
        try:
            score = float(score_text)
        except ValueError:
            raise file_error(path, number, f"score {score_text!r} is not a number", "write numeric scores") from None
        if (qid, docid) in seen:
            raise file_error(path, number, f"docid {docid!r} appears twice for query {qid!r} "
                             f"(first on line {seen[qid, docid]})", "keep one line per (query, document)")
        seen[qid, docid] = number
        run.setdefault(qid, []).append(Hit(docid, score))
    if not run:
        raise file_error(path, None, "no hits found", "give a run with at least one line")
    for hits in run.values():
        hits.sort(key=lambda hit: -hit.score)
    return run


def write_run(run: Mapping[str, Sequence[Hit]], path: str | Path, tag: str = "rankkit") -> None:
    """Write a run in TREC format (ranks from 1, best first), atomically."""
    if not tag or any(c.isspace() for c in tag):
        raise RankkitError(f"run tag {tag!r} is not one word. Fix: pass a tag without spaces, e.g. --tag bm25")
    with atomic_write(path) as out:
        for qid, hits in run.items():
            for rank, hit in enumerate(sorted(hits, key=lambda h: -h.score), start=1):
                out.write(f"{qid} Q0 {hit.docid} {rank} {hit.score:.6f} {tag}\n")
