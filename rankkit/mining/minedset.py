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
import math
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
    return {
        "source": candidate.source,
        "rank": candidate.rank,
        "score": candidate.score,
        "teacher_score": candidate.teacher_score,
    }


# field -> (type, may be absent); a type ending in "?" may also be null
_CANDIDATE_FIELDS = {
    "docid": ("str", False),
    "source": ("str", True),
    "rank": ("int?", True),
    "score": ("number?", True),
    "teacher_score": ("number?", True),
    "strategy": ("str", True),
}
_PROVENANCE_FIELDS = {key: _CANDIDATE_FIELDS[key] for key in ("source", "rank", "score", "teacher_score")}
_POSITIVE_FIELDS = {"docid": ("str", False), "grade": ("int", False), "retrieved": ("object?", False)}
_QUERY_FIELDS = {
    "qid": ("str", False),
    "query": ("str", False),
    "positives": ("list", False),
    "negatives": ("list", False),
}
_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "list": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _fields(record: Any, spec: dict[str, tuple[str, bool]], what: str) -> dict[str, Any]:
    """The fields of a JSON object, each checked against `spec`; unknown fields are an error."""
    if not isinstance(record, dict):
        raise ValueError(f"{what} is not a JSON object")
    if unknown := sorted(set(record) - set(spec)):
        raise ValueError(f"{what} has unknown fields {unknown}")
    values = {}
    for key, (kind, optional) in spec.items():
        if key not in record:
            if not optional:
                raise KeyError(key)
            continue
        value, nullable = record[key], kind.endswith("?")
        if not (value is None and nullable) and not _CHECKS[kind.rstrip("?")](value):
            raise ValueError(
                f"{what}: {key!r} must be {'a finite number' if 'number' in kind else 'a ' + kind}"
                f"{' or null' if nullable else ''}"
            )
        if isinstance(value, str):
            value.encode("utf-8")  # a lone surrogate (valid JSON, not text) raises UnicodeEncodeError
        values[key] = value
    return values


@dataclass
class MinedSet:
    queries: list[MinedQuery]
    config: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def write(self, path: str | Path) -> None:
        with atomic_write(path) as out:
            out.write(
                json.dumps(
                    {"_meta": {"format": FORMAT, "version": VERSION, "config": self.config, "stats": self.stats}}
                )
                + "\n"
            )
            for q in self.queries:
                out.write(
                    json.dumps(
                        {
                            "qid": q.qid,
                            "query": q.query,
                            "positives": [
                                {"docid": d, "grade": g, "retrieved": _provenance(q.positive_provenance.get(d))}
                                for d, g in q.positives.items()
                            ],
                            "negatives": [asdict(c) for c in q.negatives],
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )

    @classmethod
    def read(cls, path: str | Path) -> "MinedSet":
        """Read a MinedSet, checking every field's type (finite numbers, text that is valid Unicode)."""
        path = Path(path)
        mined, header = cls(queries=[]), True
        for number, line in iter_lines(path):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("the line is not a JSON object")
                if header:
                    meta = record["_meta"]
                    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                        raise KeyError("format")
                    mined.config, mined.stats = meta.get("config", {}), meta.get("stats", {})
                    header = False
                    continue
                query = _fields(record, _QUERY_FIELDS, "the query record")
                positives = [_fields(p, _POSITIVE_FIELDS, "a positive") for p in query["positives"]]
                mined.queries.append(
                    MinedQuery(
                        query["qid"],
                        query["query"],
                        {p["docid"]: p["grade"] for p in positives},
                        [Candidate(**_fields(n, _CANDIDATE_FIELDS, "a negative")) for n in query["negatives"]],
                        {
                            p["docid"]: Candidate(
                                p["docid"],
                                strategy="positive",
                                **_fields(p["retrieved"], _PROVENANCE_FIELDS, "a positive's provenance"),
                            )
                            for p in positives
                            if p["retrieved"] is not None
                        },
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
                raise file_error(
                    path,
                    number,
                    f"not a MinedSet record ({type(exc).__name__}: {exc})",
                    "give a file written by `rankkit mine`",
                ) from None
        return mined
