"""BEIR's folder layout (Thakur et al., NeurIPS 2021 datasets track), read and written as BEIR does:

    corpus.jsonl     {"_id", "title", "text", "metadata"} per line (read by rankkit.data.corpus)
    queries.jsonl    {"_id", "text", "metadata"} per line (read by rankkit.data.queries)
    qrels/SPLIT.tsv  a header line 'query-id<TAB>corpus-id<TAB>score', then one judgment per line;
                     BEIR writes CRLF line ends (Python's csv writer), both CRLF and LF are read
                     (by rankkit.data.qrels)

The readers are strict where BEIR's loader is silent: a missing header, a wrong column count, a
non-integer score, a repeated id or a judgment naming an unknown query or document is an error
naming the file, the line and the fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from rankkit.data.corpus import Document, read_corpus
from rankkit.data.files import atomic_dir, atomic_write
from rankkit.data.qrels import QRELS_HEADER, Qrels, iter_beir_qrels, read_beir_qrels
from rankkit.data.queries import read_beir_queries
from rankkit.errors import RankkitError, file_error

BEIR_FILES = ("corpus.jsonl", "queries.jsonl")


def check_qrels_ids(path: str | Path, queries: Mapping[str, str], docids: Iterable[str]) -> None:
    """Every judgment in the BEIR qrels file names a known query and a known document."""
    path, known = Path(path), set(docids)
    for number, qid, docid, _ in iter_beir_qrels(path):
        if qid not in queries:
            raise file_error(
                path,
                number,
                f"query-id {qid!r} is not in queries.jsonl",
                "judge only queries of the folder's queries.jsonl, or add the query",
            )
        if docid not in known:
            raise file_error(
                path,
                number,
                f"corpus-id {docid!r} is not in corpus.jsonl",
                "judge only documents of the folder's corpus.jsonl, or add the document",
            )


def is_beir_folder(root: str | Path) -> bool:
    root = Path(root)
    return root.is_dir() and all((root / name).is_file() for name in BEIR_FILES) and (root / "qrels").is_dir()


@dataclass(frozen=True)
class BeirPaths:
    """A BEIR folder and one of its qrels splits; the same properties as CollectionPaths."""

    root: Path
    split: str

    @property
    def corpus(self) -> Path:
        return self.root / "corpus.jsonl"

    @property
    def queries(self) -> Path:
        return self.root / "queries.jsonl"

    @property
    def qrels(self) -> Path:
        return self.root / "qrels" / f"{self.split}.tsv"

    @property
    def name(self) -> str:
        return f"{self.root.name}-{self.split}"


def beir_splits(root: str | Path) -> list[str]:
    return sorted(p.stem for p in (Path(root) / "qrels").glob("*.tsv"))


def beir_folder(root: str | Path, split: str | None = None) -> BeirPaths:
    """The BEIR folder `root` with split `split` (default: test, else the only split there is)."""
    root = Path(root)
    if not is_beir_folder(root):
        raise RankkitError(
            f"{root}: not a BEIR folder. Fix: give a folder holding corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv"
        )
    splits = beir_splits(root)
    if split is None:
        if "test" in splits or len(splits) != 1:
            split = "test"
        else:
            split = splits[0]
    if split not in splits:
        raise RankkitError(
            f"{root}: no qrels/{split}.tsv (splits there: {', '.join(splits) or 'none'}). "
            f"Fix: pass --split with one of them"
        )
    return BeirPaths(root, split)


def load_beir_split(paths: BeirPaths) -> tuple[dict[str, str], Qrels]:
    """The split's judged queries and its qrels, with every judged id checked against the folder:
    as BEIR's loader does, only queries the split judges are returned."""
    queries, qrels = read_beir_queries(paths.queries), read_beir_qrels(paths.qrels)
    check_qrels_ids(paths.qrels, queries, (doc.docid for doc in read_corpus(paths.corpus, "beir")))
    return {qid: queries[qid] for qid in qrels}, qrels


def _qrels_tsv(qrels: Mapping[str, Mapping[str, int]]) -> Iterator[str]:
    yield "\t".join(QRELS_HEADER) + "\r\n"
    for qid, judged in qrels.items():
        _check_id("query", qid)
        for docid, score in judged.items():
            _check_id("document", docid)
            yield f"{qid}\t{docid}\t{int(score)}\r\n"


def write_beir_qrels(qrels: Mapping[str, Mapping[str, int]], path: str | Path) -> None:
    """A BEIR qrels TSV as BEIR writes it (header, CRLF), atomically."""
    with atomic_write(path) as out:
        out.writelines(_qrels_tsv(qrels))


def _check_id(kind: str, identifier: str) -> None:
    if not identifier.strip() or identifier != identifier.strip() or any(c in identifier for c in "\t\r\n"):
        raise RankkitError(
            f"{kind} id {identifier!r} is empty or holds a tab or line break, which BEIR's qrels "
            "TSV cannot hold (or spaces around it, which readers strip). Fix: rename it"
        )


def write_beir_folder(
    out: str | Path,
    docs: Iterable[Document],
    queries: Mapping[str, str],
    splits: Mapping[str, Mapping[str, Mapping[str, int]]],
    overwrite: bool = False,
) -> Path:
    """Write a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv per split) atomically:
    the folder appears complete or not at all; `overwrite` replaces only a BEIR folder (or an
    empty one). Returns its path."""
    for split in splits:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", split):
            raise RankkitError(
                f"split name {split!r} cannot be a file name under qrels/. Fix: use letters, digits, "
                "'.', '_' or '-', e.g. test, dev or train"
            )
    with atomic_dir(out, overwrite=overwrite, replaceable=is_beir_folder, what="BEIR folder") as folder:
        with open(folder / "corpus.jsonl", "w", encoding="utf-8", newline="\n") as handle:
            for doc in docs:
                _check_id("document", doc.docid)
                handle.write(
                    json.dumps(
                        {"_id": doc.docid, "title": doc.title, "text": doc.text, "metadata": {}}, ensure_ascii=False
                    )
                    + "\n"
                )
        with open(folder / "queries.jsonl", "w", encoding="utf-8", newline="\n") as handle:
            for qid, text in queries.items():
                _check_id("query", qid)
                handle.write(json.dumps({"_id": qid, "text": text, "metadata": {}}, ensure_ascii=False) + "\n")
        (folder / "qrels").mkdir()
        for split, qrels in splits.items():
            with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8", newline="") as handle:
                handle.writelines(_qrels_tsv(qrels))
    return Path(out)
