"""MinedSet: per query, its labeled positives and its mined negatives with provenance.

File format (JSONL, written atomically by `rankkit mine`, read by every trainer): the first line
is {"_meta": {"format": "rankkit-minedset", "version": 1, "config": {...}, "stats": {...}}}; each
following line is one query ("retrieved" is a positive's own provenance, null when no source found it):
    {"qid": str, "query": str,
     "positives": [{"docid": str, "grade": int, "retrieved": null | {"source": str, "rank": int,
                    "score": float, "teacher_score": float | null}}, ...],
     "negatives": [{"docid": str, "source": str, "rank": int, "score": float,
                    "teacher_score": float | null, "strategy": str}, ...]}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rankkit.data.files import atomic_write, iter_lines
from rankkit.errors import file_error
from rankkit.mining.candidates import Candidate

FORMAT = "rankkit-minedset"
VERSION = 1


@dataclass
class MinedQuery:
    qid: str
    query: str
    positives: dict[str, int]  # docid -> grade
    negatives: list[Candidate]
    positive_provenance: dict[str, Candidate] = field(default_factory=dict)  # positives a source retrieved


def _provenance(candidate: Candidate | None) -> dict | None:
    if candidate is None:
        return None
    return {"source": candidate.source, "rank": candidate.rank, "score": candidate.score,
            "teacher_score": candidate.teacher_score}


@dataclass
class MinedSet:
    queries: list[MinedQuery]
    config: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    positive_provenance_recorded: bool = True  # False for files from miners that did not record it

    def write(self, path: str | Path) -> None:
        with atomic_write(path) as out:
            out.write(json.dumps({"_meta": {"format": FORMAT, "version": VERSION, "config": self.config,
                                            "stats": self.stats}}) + "\n")
            for q in self.queries:
                out.write(json.dumps({
                    "qid": q.qid, "query": q.query,
                    "positives": [{"docid": d, "grade": g, "retrieved": _provenance(q.positive_provenance.get(d))}
                                  for d, g in q.positives.items()],
                    "negatives": [asdict(c) for c in q.negatives]}, ensure_ascii=False) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> "MinedSet":
        path = Path(path)
        mined = cls(queries=[])
        for number, line in iter_lines(path):
            try:
                record = json.loads(line)
                if number == 1:
                    meta = record["_meta"]
                    if meta.get("format") != FORMAT:
                        raise KeyError("format")
                    mined.config, mined.stats = meta.get("config", {}), meta.get("stats", {})
                    continue
                positives = record["positives"]
                mined.queries.append(MinedQuery(
                    record["qid"], record["query"], {p["docid"]: int(p["grade"]) for p in positives},
                    [Candidate(**n) for n in record["negatives"]],
                    {p["docid"]: Candidate(p["docid"], strategy="positive", **p["retrieved"])
                     for p in positives if p.get("retrieved")}))
                mined.positive_provenance_recorded &= all("retrieved" in p for p in positives)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise file_error(path, number, f"not a MinedSet record ({type(exc).__name__}: {exc})",
                                 "give a file written by `rankkit mine`") from None
        return mined
