"""A test collection folder in the ../shared/data layout: collection.tsv, queries.tsv, qrels.txt."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankkit.data.beir import BeirPaths, beir_folder, is_beir_folder, load_beir_split, write_beir_folder
from rankkit.data.corpus import read_corpus
from rankkit.data.qrels import Qrels, read_qrels
from rankkit.data.queries import read_queries
from rankkit.errors import RankkitError

SAMPLE_DIR = Path(__file__).parent / "sample"
COLLECTION_FILES = ("collection.tsv", "queries.tsv", "qrels.txt")


@dataclass(frozen=True)
class CollectionPaths:
    root: Path

    @property
    def corpus(self) -> Path:
        return self.root / "collection.tsv"

    @property
    def queries(self) -> Path:
        return self.root / "queries.tsv"

    @property
    def qrels(self) -> Path:
        return self.root / "qrels.txt"

    @property
    def name(self) -> str:
        return self.root.name if self.root != SAMPLE_DIR else "sample"


def collection(root: str | Path | None = None, split: str | None = None) -> CollectionPaths | BeirPaths:
    """The collection in `root` (the bundled sample when None), checked for its three files; a
    BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) with its split `split`."""
    if root is not None and is_beir_folder(root):
        return beir_folder(root, split)
    paths = CollectionPaths(Path(root) if root is not None else SAMPLE_DIR)
    if split is not None:
        raise RankkitError(
            f"{paths.root}: --split {split} names a qrels split, which only BEIR folders have "
            "(qrels/SPLIT.tsv); this one has a single qrels.txt. Fix: drop --split"
        )
    missing = [name for name in COLLECTION_FILES if not (paths.root / name).is_file()]
    if missing:
        raise RankkitError(
            f"{paths.root}: missing {', '.join(missing)}. Fix: give a folder holding "
            "collection.tsv (docid<TAB>text), queries.tsv (qid<TAB>text) and qrels.txt (TREC qrels), "
            "or a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)"
        )
    return paths


def corpus_file(root: str | Path) -> Path:
    """The corpus of a collection folder (collection.tsv) or a BEIR folder (corpus.jsonl), which
    does not depend on a qrels split."""
    path = Path(root) / ("corpus.jsonl" if is_beir_folder(root) else "collection.tsv")
    if not path.is_file():
        raise RankkitError(f"{root}: no collection.tsv or corpus.jsonl. Fix: give a collection or BEIR folder")
    return path


def shared_data_root() -> Path:
    """Where the shared collections live: $RANKKIT_DATA, else ../shared/data beside the checkout."""
    if os.environ.get("RANKKIT_DATA"):
        return Path(os.environ["RANKKIT_DATA"])
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def queries_and_qrels(paths: BeirPaths | CollectionPaths) -> tuple[dict[str, str], Qrels]:
    """The queries and qrels of a collection folder: a BEIR split's judged queries, or a
    collection.tsv folder's queries.tsv and qrels.txt."""
    if isinstance(paths, BeirPaths):
        return load_beir_split(paths)
    return read_queries(paths.queries), read_qrels(paths.qrels)


def export_beir(paths: CollectionPaths, out: str | Path, split: str = "test", overwrite: bool = False) -> Path:
    """Write a collection folder (collection.tsv, queries.tsv, qrels.txt) in BEIR's layout, its
    qrels as qrels/SPLIT.tsv; texts go to "text" (the TSV layout has no titles)."""
    return write_beir_folder(
        out,
        read_corpus(paths.corpus),
        read_queries(paths.queries),
        {split: read_qrels(paths.qrels)},
        overwrite=overwrite,
    )


def collection_files(data: str | Path | None, split: str | None, split_flag: str = "--split") -> Any:
    """The CollectionPaths / BeirPaths of --data (with its qrels split), or None without --data;
    a split without a folder is refused."""
    if data is None:
        if split is not None:
            raise RankkitError(
                f"{split_flag} {split} names a qrels split of a BEIR folder, but no folder was given. "
                f"Fix: pass --data DIR with {split_flag}"
            )
        return None
    return collection(data, split)


def required_files(**given: str | Path | None) -> dict[str, str]:
    """The file options (name -> path) once --data filled them in: a missing one is refused, naming
    its flag."""
    missing = [f"--{name.replace('_', '-')}" for name, value in given.items() if value is None]
    if missing:
        raise RankkitError(
            f"missing {', '.join(missing)}. Fix: pass {' and '.join(missing)}, or --data DIR "
            "(a collection or BEIR folder) whose files stand in for them"
        )
    return {name: str(value) for name, value in given.items()}
