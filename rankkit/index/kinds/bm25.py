"""The bm25 kind: a Lucene index of the corpus's text, searched with BM25 (and RM3) through pyserini."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rankkit.index.kinds.registry import IndexKind, register
from rankkit.index.options import LuceneBuild
from rankkit.retrieve.options import BM25Params

if TYPE_CHECKING:
    from rankkit.index.manifest import Manifest
    from rankkit.index.options import IndexBuild
    from rankkit.retrieve.base import Retriever
    from rankkit.retrieve.options import QueryOptions


def build(config: IndexBuild) -> tuple[Manifest, Path]:
    from rankkit.index.bm25 import build_bm25_index

    out = config.folder()
    return build_bm25_index(config.corpus, out, config.format, threads=config.threads, overwrite=config.overwrite), out


def open_bm25(folder: Path, query: QueryOptions) -> Retriever:
    from rankkit.retrieve.bm25 import BM25Retriever

    return BM25Retriever(folder, query.get(BM25Params))


def verify(folder: Path, manifest: Manifest) -> list[str]:
    from rankkit.index.bm25 import open_lucene_searcher

    open_lucene_searcher(folder)  # opens the Lucene segments, checks the count
    return []


BM25 = register(
    IndexKind(
        name="bm25",
        description="Lucene through pyserini, BM25 and RM3",
        required_files=("lucene",),
        open=open_bm25,
        verify=verify,
        build=build,
        build_options=(LuceneBuild,),
    )
)
