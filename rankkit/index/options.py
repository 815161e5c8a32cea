"""The options of building an index (`rankkit index build` and `build_index`): what every kind
takes (IndexTarget) and the groups of the kinds (each kind names the groups it takes in its
registry entry; `index build` refuses the others)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from rankkit.errors import RankkitError
from rankkit.options import Inference, Output, option, option_spec, same_option

DEFAULT_INDEX_DIR = Path("indexes")


@dataclass(frozen=True, kw_only=True)
class EncoderBuild(Inference):
    """The model an index encodes its corpus with (dense and SPLADE indexes)."""

    panel: ClassVar[str] = "Index model"

    model: str = option(
        "default",
        "Model folder or hub id that encodes the corpus; default: the kind's own "
        "(dense: the packaged all-MiniLM-L6-v2, splade: splade-tiny).",
    )


@dataclass(frozen=True, kw_only=True)
class LuceneBuild:
    """How a Lucene index (BM25 or SPLADE impacts) is written."""

    panel: ClassVar[str] = "Lucene index"

    threads: int = option(2, "Lucene indexing threads (bm25, splade).", low=1)


@dataclass(frozen=True, kw_only=True)
class DenseBuild(EncoderBuild):
    """How a dense index encodes and stores its corpus."""

    panel: ClassVar[str] = "Dense index"

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
class IndexTarget(Output):
    """What every index kind takes: the corpus, the kind and the folder to write."""

    corpus: str = option(
        help="Corpus file (.tsv, pyserini or BEIR .jsonl), a folder of .txt/.md files, or irds:<dataset id>.",
        argument=True,
    )
    kind: str = option(
        "dense",
        "Index kind: bm25 (Lucene through pyserini), dense (FAISS) or splade (a Lucene impact index of a SPLADE model).",
    )
    output: str | None = same_option(
        Output, "output", None, "Index folder to write (default: indexes/CORPUS_NAME-KIND)."
    )
    format: Literal["tsv", "pyserini", "beir", "folder"] | None = option(
        None, "Corpus format; guessed from the path when absent."
    )


@dataclass(frozen=True, kw_only=True)
class IndexBuild(IndexTarget, DenseBuild, LuceneBuild):
    """One index to build from one corpus; each kind takes the options of its own groups."""

    def check_kind_options(self, kind: str, groups: tuple[type, ...]) -> None:
        """Refuse an option set away from its default that belongs to none of `groups` (nor to
        IndexTarget): `--factory` means nothing to a BM25 index."""
        taken = {f.name for group in (IndexTarget, *groups) for f in dataclasses.fields(group)}
        for field in dataclasses.fields(self):
            if field.name in taken or getattr(self, field.name) == field.default:
                continue
            spec = option_spec(field)
            flag = spec.flags[0] if spec and spec.flags else "--" + field.name.replace("_", "-")
            raise RankkitError(f"{flag} does not apply to a {kind} index. Fix: drop {flag}, or build another kind")

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
