"""Export a MinedSet in the training formats of other trainers, so a user can mine with rankkit
and train elsewhere. Each format is JSONL, one record per line:

- `st` (sentence-transformers): one row per (query, positive) with columns anchor, positive,
  negative_1 .. negative_n, the "n-tuple" layout of sentence_transformers.util.mine_hard_negatives,
  ready for MultipleNegativesRankingLoss (`datasets.load_dataset("json", data_files=...)`). Every row
  needs n negatives, so n is the most any query has and queries with fewer are left out (counted).
- `flagembedding` (FlagEmbedding's embedder and reranker fine-tuning): per query {"query", "pos",
  "neg", "pos_scores", "neg_scores"}; the scores are teacher scores (for its knowledge
  distillation), written only when the teacher scored every positive and negative in the file.
- `tevatron` (Tevatron's training JSONL, as its msmarco-passage train sets): per query
  {"query_id", "query", "positive_passages", "negative_passages"}, each passage
  {"docid", "title", "text"} (rankkit corpora have no titles: "").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Literal, Mapping, get_args

from rankkit.data.files import atomic_write
from rankkit.errors import RankkitError
from rankkit.mining.minedset import MinedQuery, MinedSet

ExportFormat = Literal["st", "flagembedding", "tevatron"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)


def export_path(output: str | Path, fmt: str) -> Path:
    """Where `rankkit mine -o OUTPUT --export FMT` writes: beside the MinedSet, OUTPUT_STEM.FMT.jsonl."""
    output = Path(output)
    return output.with_name(f"{output.stem}.{fmt}.jsonl")


def _st_rows(mined: MinedSet, texts: Mapping[str, str], counts: dict) -> Iterator[dict]:
    width = max((len(q.negatives) for q in mined.queries), default=0)
    if width == 0:
        raise RankkitError("the MinedSet has no negatives to export. Fix: mine with a wider window or larger --count")
    for q in mined.queries:
        if len(q.negatives) < width or not q.positives:
            counts["queries_left_out"] += 1
            continue
        negatives = {f"negative_{i}": texts[c.docid] for i, c in enumerate(q.negatives, start=1)}
        for docid in q.positives:
            yield {"anchor": q.query, "positive": texts[docid], **negatives}


def _teacher_scores(q: MinedQuery) -> tuple[list, list]:
    positives = [q.positive_provenance[d].teacher_score if d in q.positive_provenance else None for d in q.positives]
    return positives, [c.teacher_score for c in q.negatives]


def _flagembedding_rows(mined: MinedSet, texts: Mapping[str, str], counts: dict) -> Iterator[dict]:
    scored = all(s is not None for q in mined.queries for side in _teacher_scores(q) for s in side)
    counts["scores"] = "teacher_score" if scored else "none (no teacher scored every candidate)"
    for q in mined.queries:
        if not q.positives:
            counts["queries_left_out"] += 1
            continue
        row = {"query": q.query, "pos": [texts[d] for d in q.positives], "neg": [texts[c.docid] for c in q.negatives]}
        if scored:
            row["pos_scores"], row["neg_scores"] = _teacher_scores(q)
        yield row


def _tevatron_rows(mined: MinedSet, texts: Mapping[str, str], counts: dict) -> Iterator[dict]:
    def passage(docid: str) -> dict:
        return {"docid": docid, "title": "", "text": texts[docid]}

    for q in mined.queries:
        if not q.positives:
            counts["queries_left_out"] += 1
            continue
        yield {
            "query_id": q.qid,
            "query": q.query,
            "positive_passages": [passage(d) for d in q.positives],
            "negative_passages": [passage(c.docid) for c in q.negatives],
        }


_WRITERS = {"st": _st_rows, "flagembedding": _flagembedding_rows, "tevatron": _tevatron_rows}


def export_minedset(mined: MinedSet, doc_texts: Mapping[str, str], fmt: str, path: str | Path) -> dict:
    """Write `mined` in format `fmt` (one of EXPORT_FORMATS) to `path` atomically; returns counts
    (rows written, queries left out, and for flagembedding where its scores came from)."""
    if fmt not in _WRITERS:
        raise RankkitError(f"unknown export format {fmt!r}. Fix: use one of {', '.join(EXPORT_FORMATS)}")
    missing = sorted(
        {d for q in mined.queries for d in (*q.positives, *(c.docid for c in q.negatives))} - set(doc_texts)
    )
    if missing:
        raise RankkitError(
            f"{len(missing)} mined documents have no text (first: {missing[0]}). "
            "Fix: pass the corpus the MinedSet was mined from"
        )
    counts = {"format": fmt, "path": str(path), "rows": 0, "queries_left_out": 0}
    with atomic_write(path) as out:
        for row in _WRITERS[fmt](mined, doc_texts, counts):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            counts["rows"] += 1
    return counts
