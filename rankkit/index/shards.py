"""Sharded dense encoding: shard I of N encodes one contiguous slice of the corpus into a shard
folder (manifest.json of kind "dense-shard", docids.txt, embeddings.f32; no FAISS index), on as
many processes or machines as there are shards; `merge_dense_shards` checks that the shards belong
together and builds from them the index one process would have built from the whole corpus.

Shard I of N holds the documents at positions [I*n//N, (I+1)*n//N) of the n in the corpus, so
shards 0..N-1 concatenated are the corpus in its order. Under torchrun, shard "auto" is this
process's RANK of WORLD_SIZE.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np

from rankkit.data.corpus import CorpusFormat
from rankkit.data.files import atomic_dir
from rankkit.encode.biencoder import BiEncoder
from rankkit.errors import RankkitError
from rankkit.index.dense import (
    DOCIDS_FILE,
    EMBEDDINGS_FILE,
    DenseBuildConfig,
    corpus_format,
    encode_corpus,
    encoder_fields,
    load_embeddings,
    same_corpus,
    source_fields,
    write_dense_index,
)
from rankkit.index.integrity import check_sizes, index_error
from rankkit.index.manifest import SHARD_KIND, CorpusInfo, Manifest, Shard, is_index_folder, shard_of
from rankkit.index.progress import corpus_size

SHARD_PATTERN = re.compile(r"(\d+)/(\d+)")


def parse_shard(text: str) -> Shard:
    """'I/N' as a Shard."""
    match = SHARD_PATTERN.fullmatch(text.strip())
    if match is None or int(match[1]) >= int(match[2]):
        raise RankkitError(
            f"--shard {text!r} is not a shard of a split. Fix: pass --shard I/N with whole numbers "
            "0 <= I < N (e.g. 0/2 and 1/2 for two shards), or --shard auto under torchrun"
        )
    return Shard(int(match[1]), int(match[2]))


def launcher_shard() -> Shard | None:
    """This process's (RANK, WORLD_SIZE): from an initialised torch.distributed process group,
    else from the environment torchrun sets; None outside both."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank is None or world is None:
        return None
    try:
        return parse_shard(f"{rank}/{world}")
    except RankkitError:
        raise RankkitError(
            f"RANK={rank!r} and WORLD_SIZE={world!r} are not a rank of a world. Fix: launch with "
            "torchrun, which sets them, or pass --shard I/N"
        ) from None


def resolve_shard(option: str | None) -> Shard | None:
    """The shard a build encodes: --shard I/N, --shard auto (the launcher's rank of its world
    size), or None (the whole corpus). Without --shard, a process that is one of several that
    torchrun started is refused: each would encode the whole corpus into the same folder."""
    launched = launcher_shard()
    if option is None:
        if launched is not None and launched.count > 1:
            raise RankkitError(
                f"this process is rank {launched.index} of {launched.count} (torchrun), but no --shard "
                "was given, so each would encode the whole corpus. Fix: pass --shard auto"
            )
        return None
    if option.strip() == "auto":
        if launched is None:
            raise RankkitError(
                "--shard auto: no RANK and WORLD_SIZE set, nor a torch.distributed process group. "
                "Fix: launch with torchrun, or pass --shard I/N"
            )
        return launched
    return parse_shard(option)


def build_dense_shard(
    corpus: str | Path,
    out: str | Path,
    encoder: BiEncoder,
    shard: Shard,
    chunk_size: int = DenseBuildConfig.chunk_size,
    fmt: CorpusFormat | None = None,
    overwrite: bool = False,
    query_encoder: BiEncoder | None = None,
) -> Manifest:
    """Encode shard `shard` of `corpus` into the shard folder `out` (atomically). Returns its manifest."""
    fmt = fmt or corpus_format(corpus)
    corpus_info = CorpusInfo.of(corpus, fmt)
    model, encoding = encoder_fields(encoder, query_encoder)  # checked before the corpus is read
    documents = corpus_size(corpus, fmt)[0]
    with atomic_dir(out, overwrite=overwrite, replaceable=is_index_folder, what="a rankkit index") as folder:
        count = encode_corpus(corpus, fmt, encoder, folder, chunk_size, shard.rows(documents))
        manifest = Manifest(
            kind=SHARD_KIND,
            count=count,
            corpus=corpus_info,
            index_type="embeddings",
            metric="ip",
            settings={**encoding, "shard": {"index": shard.index, "count": shard.count}},
            **model,
        )
        manifest = manifest.write(folder)
    return manifest


def read_shard(folder: str | Path) -> Manifest:
    """The manifest of a shard folder, after checking its files: recorded sizes, and the docids
    and vectors its manifest counts."""
    folder = Path(folder)
    manifest = Manifest.read(folder)
    if manifest.kind != SHARD_KIND:
        raise RankkitError(
            f"{folder}: a {manifest.kind} index, not a shard. Fix: pass the shard folders that "
            "`rankkit index build --shard I/N` wrote"
        )
    check_sizes(folder, manifest)
    size = (folder / EMBEDDINGS_FILE).stat().st_size
    if size != manifest.count * manifest.dimension * np.dtype(np.float32).itemsize:
        raise index_error(
            folder,
            manifest,
            EMBEDDINGS_FILE,
            f"{size:,} bytes, not {manifest.count} vectors of {manifest.dimension} float32",
        )
    with open(folder / DOCIDS_FILE, "rb") as ids:
        lines = sum(1 for _ in ids)
    if lines != manifest.count:
        raise index_error(folder, manifest, DOCIDS_FILE, f"{lines} docids for {manifest.count} vectors")
    return manifest


def _identity(manifest: Manifest) -> dict:
    """What the shards of one split share: the number of shards, the model and its encoding setting."""
    model, encoding = source_fields(manifest)
    return {"number of shards": shard_of(manifest).count, **model, **encoding}


def _check_together(shards: list[tuple[Path, Manifest]]) -> list[tuple[Path, Manifest]]:
    """The shards in shard order, once they are checked to be the N shards of one split of one
    corpus, each once, encoded by one model with one setting."""
    first, reference = shards[0]
    expected = _identity(reference)
    for folder, manifest in shards[1:]:
        if not same_corpus(manifest.corpus, reference.corpus):
            raise RankkitError(
                f"{folder} was encoded from {manifest.corpus.path}, {first} from "
                f"{reference.corpus.path}, and their contents differ. Fix: merge the shards of one "
                "corpus (rebuild the odd ones from the same corpus file)"
            )
        for field, value in _identity(manifest).items():
            if value != expected[field]:
                raise RankkitError(
                    f"{folder} and {first} differ in {field} ({value!r}, {expected[field]!r}). Fix: "
                    "merge the shards of one split, encoded by one model with one setting (rebuild "
                    "the odd ones with the options of the others)"
                )
    by_index: dict[int, Path] = {}
    for folder, manifest in shards:
        index = shard_of(manifest).index
        if index in by_index:
            raise RankkitError(
                f"shard {shard_of(manifest)} is given twice ({by_index[index]}, {folder}). "
                "Fix: pass each shard folder once"
            )
        by_index[index] = folder
    count = expected["number of shards"]
    missing = [Shard(index, count) for index in range(count) if index not in by_index]
    if missing:
        build = (
            f"rankkit index build {reference.corpus.path} --kind dense --model {reference.model} --shard {missing[0]}"
        )
        raise RankkitError(
            f"{len(missing)} of {count} shards missing ({', '.join(map(str, missing))}). Fix: build "
            f"each missing shard and pass its folder too, e.g. {build}"
        )
    return sorted(shards, key=lambda shard: shard_of(shard[1]).index)


def merge_dense_shards(
    shard_folders: list[str | Path],
    out: str | Path,
    config: DenseBuildConfig = DenseBuildConfig(),
    overwrite: bool = False,
) -> Manifest:
    """Build the dense index `out` (atomically) from the shards of one corpus: their docids and
    vectors (checked against their checksums, and finite) concatenated in shard order, indexed
    exactly as `build_dense_index` indexes a whole corpus. Returns its manifest."""
    if not shard_folders:
        raise RankkitError("no shard folders to merge. Fix: pass the folders that `rankkit index build --shard` wrote")
    shards = _check_together([(Path(folder), read_shard(folder)) for folder in shard_folders])
    for shard, _ in shards:
        load_embeddings(shard)  # checksums and finite vectors, before they are reused
    reference = shards[0][1]
    model, encoding = source_fields(reference)
    with atomic_dir(out, overwrite=overwrite, replaceable=is_index_folder, what="a rankkit index") as folder:
        for name in (DOCIDS_FILE, EMBEDDINGS_FILE):
            with open(folder / name, "wb") as merged:
                for shard, _ in shards:
                    with open(shard / name, "rb") as part:
                        shutil.copyfileobj(part, merged)
        count = sum(manifest.count for _, manifest in shards)
        vectors = np.memmap(folder / EMBEDDINGS_FILE, dtype=np.float32, mode="r", shape=(count, reference.dimension))
        manifest = write_dense_index(folder, vectors, reference.corpus, model, encoding, config)
    return manifest
