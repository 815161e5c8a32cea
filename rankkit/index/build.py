"""`rankkit index build` as one library call: a BM25 index, a dense index or one dense shard."""

from __future__ import annotations

from rankkit.errors import RankkitError
from rankkit.index.manifest import Manifest
from rankkit.index.options import IndexBuild


def build_index(config: IndexBuild) -> tuple[Manifest, str]:
    """Build the index `config` describes (atomically: nothing is left half-written). Returns its
    manifest and the folder written (a shard's own folder for --shard)."""
    out = config.folder()
    if config.kind == "bm25":
        if config.shard is not None:
            raise RankkitError("--shard with --kind bm25: only dense indexes are encoded in shards. Fix: drop --shard")
        from rankkit.index.bm25 import build_bm25_index

        return build_bm25_index(
            config.corpus, out, config.format, threads=config.threads, overwrite=config.overwrite
        ), str(out)
    from rankkit.encode.biencoder import BiEncoder
    from rankkit.encode.device import launcher_device
    from rankkit.index.dense import DenseBuildConfig, build_dense_index
    from rankkit.index.manifest import shard_name
    from rankkit.index.shards import build_dense_shard, resolve_shard

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
        else BiEncoder(config.model, device=device, precision=config.precision, passage_prompt=config.passage_prompt)
    )
    query_encoder = BiEncoder(config.query_model, device=device) if config.query_model else None
    if split is not None:
        out = out.with_name(shard_name(out.name, split))
        return build_dense_shard(
            config.corpus,
            out,
            encoder,
            split,
            fmt=config.format,
            overwrite=config.overwrite,
            query_encoder=query_encoder,
        ), str(out)
    build = DenseBuildConfig(factory=config.factory, save_embeddings=config.save_embeddings)
    return build_dense_index(
        config.corpus,
        out,
        encoder,
        build,
        config.format,
        config.embeddings_from,
        config.overwrite,
        query_encoder=query_encoder,
    ), str(out)
