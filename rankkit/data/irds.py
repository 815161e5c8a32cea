"""ir_datasets as an optional source: pass `irds:<dataset id>` wherever a file is expected,
e.g. `irds:msmarco-passage/dev/small`. Needs `pip install ir_datasets` (the `datasets` extra)."""

from __future__ import annotations

from typing import Any, Iterator

from rankkit.errors import RankkitError

PREFIX = "irds:"


def is_irds(spec: object) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def load_dataset(spec: str) -> Any:
    try:
        import ir_datasets
    except ImportError:
        raise RankkitError(
            f"{spec}: ir_datasets is not installed. Fix: `pip install 'rankkit[datasets]'` or pass a local file"
        ) from None
    try:
        return ir_datasets.load(spec[len(PREFIX) :])
    except KeyError:
        raise RankkitError(f"{spec}: unknown ir_datasets id. Fix: see https://ir-datasets.com for ids") from None


def iter_docs(spec: str) -> Iterator[tuple[str, str, str]]:
    """(docid, title, text) of every document of an ir_datasets corpus."""
    for doc in load_dataset(spec).docs_iter():
        yield doc.doc_id, getattr(doc, "title", "") or "", getattr(doc, "text", "") or doc.default_text()


def queries(spec: str) -> dict[str, str]:
    return {q.query_id: q.default_text() for q in load_dataset(spec).queries_iter()}


def qrels(spec: str) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {}
    for qrel in load_dataset(spec).qrels_iter():
        result.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
    return result
