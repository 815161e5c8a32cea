"""The options of building an index (`rankkit index build` and `build_index`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from rankkit.options import Output, Runtime, option, same_option

DEFAULT_INDEX_DIR = Path("indexes")


@dataclass(frozen=True, kw_only=True)
class DenseBuild(Runtime):
    """How a dense index encodes its corpus."""

    panel: ClassVar[str] = "Dense index"

    model: str = option("default", "Dense: model folder or hub id; default: the packaged all-MiniLM-L6-v2.")
    factory: str = option("Flat", "Dense: FAISS factory string, e.g. Flat, HNSW32, IVF256,PQ32.")
    save_embeddings: bool = option(False, "Dense: keep embeddings.f32 to build other index types later.")
    embeddings_from: str | None = option(None, "Dense: reuse the embeddings saved in this index.")
    passage_prompt: str | None = option(
        None, "Dense: prompt prepended to passages (default: the model's own, from config_sentence_transformers.json)."
    )
    query_model: str | None = option(
        None,
        "Dense: a separate query encoder (two-tower, DPR / Tevatron style), "
        "recorded in the manifest and used by search, serve and mine.",
    )
    shard: str | None = option(
        None,
        "Dense: encode only shard I of N of the corpus (0-based, e.g. 0/2) into the "
        "shard folder OUTPUT-shard-I-of-N, for `rankkit index merge`; auto: this "
        "process's RANK of WORLD_SIZE under torchrun (which then requires --shard).",
    )


@dataclass(frozen=True, kw_only=True)
class IndexBuild(Output, DenseBuild):
    """One index to build from one corpus."""

    corpus: str = option(
        help="Corpus file (.tsv, pyserini or BEIR .jsonl), a folder of .txt/.md files, or irds:<dataset id>.",
        argument=True,
    )
    kind: Literal["bm25", "dense"] = option("dense", "bm25 (Lucene through pyserini) or dense (FAISS).")
    output: str | None = same_option(
        Output, "output", None, "Index folder to write (default: indexes/CORPUS_NAME-KIND)."
    )
    format: Literal["tsv", "pyserini", "beir", "folder"] | None = option(
        None, "Corpus format; guessed from the path when absent."
    )
    threads: int = option(2, "BM25: indexing threads.", low=1)

    def folder(self) -> Path:
        """The index folder: --output, else indexes/CORPUS_NAME-KIND."""
        if self.output is not None:
            return Path(self.output)
        stem = self.corpus[5:].replace("/", "-") if self.corpus.startswith("irds:") else Path(self.corpus).stem
        return DEFAULT_INDEX_DIR / f"{stem}-{self.kind}"


@dataclass(frozen=True, kw_only=True)
class IndexMerge(Output):
    """One dense index from the shards of one `index build --shard` split."""

    shards: tuple[str, ...] = option(
        help="The shard folders of one `index build --shard` split, any order.", argument=True
    )
    output: str = same_option(Output, "output", help="Index folder to write.")
    factory: str = same_option(DenseBuild, "factory")
    save_embeddings: bool = same_option(DenseBuild, "save_embeddings")
