"""The dense kind: corpus embeddings in a FAISS index, queries encoded by the index's model; and
the dense-shard kind, one shard of a dense index's embeddings (`index build --shard`), which is
merged, not searched."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rankkit.errors import RankkitError
from rankkit.index.kinds.registry import IndexKind, build_command, register
from rankkit.index.manifest import SHARD_KIND
from rankkit.index.options import DenseBuild
from rankkit.retrieve.options import DenseQuery

if TYPE_CHECKING:
    from rankkit.index.manifest import Manifest
    from rankkit.index.options import IndexBuild
    from rankkit.retrieve.base import Retriever
    from rankkit.retrieve.options import QueryOptions


def build(config: IndexBuild) -> tuple[Manifest, Path]:
    """A dense index, or with --shard one shard of its embeddings (in the shard's own folder)."""
    from rankkit.encode.backend import sample_texts
    from rankkit.encode.biencoder import BiEncoder
    from rankkit.encode.device import launcher_device
    from rankkit.index.dense import DenseBuildConfig, build_dense_index
    from rankkit.index.manifest import shard_name
    from rankkit.index.shards import build_dense_shard, resolve_shard

    out = config.folder()
    split = resolve_shard(config.shard)
    if split is not None and (config.factory != "Flat" or config.embeddings_from):
        raise RankkitError(
            "--shard encodes embeddings only, so --factory and --embeddings-from do not apply. "
            "Fix: drop them, and pass --factory to `rankkit index merge`"
        )
    device = launcher_device(config.device) if split is not None else config.device
    encoder = (
        None
        if config.embeddings_from
        else BiEncoder(
            config.model,
            device=device,
            precision=config.precision,
            passage_prompt=config.passage_prompt,
            inference=config,
            sample=sample_texts(config.corpus, config.format) if config.exported else None,
        )
    )
    query_encoder = BiEncoder(config.query_model, device=device) if config.query_model else None
    if split is not None:
        out = out.with_name(shard_name(out.name, split))
        manifest = build_dense_shard(
            config.corpus,
            out,
            encoder,
            split,
            fmt=config.format,
            overwrite=config.overwrite,
            query_encoder=query_encoder,
        )
        return manifest, out
    build = DenseBuildConfig(factory=config.factory, save_embeddings=config.save_embeddings)
    manifest = build_dense_index(
        config.corpus, out, encoder, build, config.format, config.embeddings_from, config.overwrite, query_encoder
    )
    return manifest, out


def open_dense(folder: Path, query: QueryOptions) -> Retriever:
    from rankkit.index.faiss_device import GpuOptions
    from rankkit.retrieve.dense import DenseRetriever

    dense = query.get(DenseQuery)
    return DenseRetriever.from_folder(
        folder,
        model=dense.model,
        device=dense.device,
        precision=dense.precision,
        inference=dense,
        search_params=dense.search_params(),
        query_prompt=dense.query_prompt,
        gpu=GpuOptions(dense.gpu_shard, dense.gpu_fp16),
    )


def verify(folder: Path, manifest: Manifest) -> list[str]:
    from rankkit.index.dense import DenseIndex, check_stored_vectors

    DenseIndex(folder)  # reads the FAISS file and docids, checks both counts
    return check_stored_vectors(folder, manifest)


def verify_shard(folder: Path, manifest: Manifest) -> list[str]:
    from rankkit.index.dense import check_stored_vectors
    from rankkit.index.shards import read_shard

    read_shard(folder)  # checks the counts of docids and vectors
    return check_stored_vectors(folder, manifest)


def rebuild(folder: Path, manifest: Manifest) -> str:
    return build_command(folder, manifest, options=f" --factory {manifest.index_type} --model {manifest.model}")


def rebuild_shard(folder: Path, manifest: Manifest) -> str:
    """The command of the whole split's build, for this shard: --shard writes into the shard's folder."""
    from rankkit.index.manifest import shard_name, shard_of

    shard = shard_of(manifest)
    index = folder.with_name(folder.name.removesuffix(shard_name("", shard)))
    return build_command(index, manifest, "dense", f" --model {manifest.model} --shard {shard}")


def check_served(folder: Path, manifest: Manifest, query: QueryOptions) -> None:
    """The query model's folder is there and whole (its weights load in the background)."""
    from rankkit.encode.models import resolve_model_dir

    resolve_model_dir(query.get(DenseQuery).model or manifest.query_model or manifest.model)


DENSE = register(
    IndexKind(
        name="dense",
        description="FAISS over a bi-encoder's embeddings",
        required_files=("index.faiss", "docids.txt"),
        open=open_dense,
        verify=verify,
        build=build,
        build_options=(DenseBuild,),
        rebuild=rebuild,
        check_served=check_served,
        query_model=True,
        verified="vectors finite",
    )
)
DENSE_SHARD = register(
    IndexKind(
        name=SHARD_KIND,
        description="one shard of a dense index's embeddings",
        required_files=("embeddings.f32", "docids.txt"),
        open=None,
        verify=verify_shard,
        rebuild=rebuild_shard,
        verified="vectors finite",
        not_searchable="merge the shards with `rankkit index merge`",
    )
)
