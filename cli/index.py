"""`rankkit index build`, `merge`, `info` and `verify`."""

from __future__ import annotations

import json
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich import print as rprint

from rankkit.cli.errors import friendly_errors
from rankkit.cli.options import PRECISION_HELP, Precision
from rankkit.errors import RankkitError
from rankkit.index.manifest import Manifest

app = typer.Typer(help="Build and inspect indexes.", no_args_is_help=True)

OUT_DIR_HELP = "Folder that holds indexes."
FACTORY_HELP = "Dense: FAISS factory string, e.g. Flat, HNSW32, IVF256,PQ32."
SAVE_EMBEDDINGS_HELP = "Dense: keep embeddings.f32 to build other index types later."
OVERWRITE_HELP = ("Replace an existing index of the same name (only a folder rankkit built; the old index stays until "
                  "the new one is complete).")


class Kind(str, Enum):
    bm25 = "bm25"
    dense = "dense"


class Format(str, Enum):
    tsv = "tsv"
    pyserini = "pyserini"
    beir = "beir"


@app.command()
@friendly_errors
def build(
    corpus: str = typer.Argument(..., help="Corpus file (.tsv, pyserini or BEIR .jsonl) or irds:<dataset id>."),
    kind: Kind = typer.Option(Kind.dense, help="bm25 (Lucene through pyserini) or dense (FAISS)."),
    name: Optional[str] = typer.Option(None, help="Index name; written to OUT_DIR/NAME. Default: corpus name + kind."),
    out_dir: Path = typer.Option(Path("indexes"), help=OUT_DIR_HELP),
    fmt: Optional[Format] = typer.Option(None, "--format", help="Corpus format; guessed from the file when absent."),
    model: str = typer.Option("default", help="Dense: model folder or hub id; 'default' = packaged all-MiniLM-L6-v2."),
    factory: Optional[str] = typer.Option(None, help=f"{FACTORY_HELP} Default: Flat."),
    save_embeddings: bool = typer.Option(False, help=SAVE_EMBEDDINGS_HELP),
    embeddings_from: Optional[Path] = typer.Option(None, help="Dense: reuse the embeddings saved in this index."),
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    precision: Precision = typer.Option(Precision.fp32, help=PRECISION_HELP),
    threads: int = typer.Option(2, min=1, help="BM25: indexing threads."),
    overwrite: bool = typer.Option(False, help=OVERWRITE_HELP),
    passage_prompt: Optional[str] = typer.Option(
        None, help="Dense: prompt prepended to passages (default: the model's own, from config_sentence_transformers.json)."),
    query_model: Optional[str] = typer.Option(
        None, help="Dense: a separate query encoder (two-tower, DPR / Tevatron style), recorded in the manifest and "
                   "used by search, serve and mine."),
    shard: Optional[str] = typer.Option(
        None, help="Dense: encode only shard I of N of the corpus (0-based, e.g. 0/2) into the shard folder "
                   "OUT_DIR/NAME-shard-I-of-N, for `rankkit index merge`; auto: this process's RANK of WORLD_SIZE "
                   "under torchrun (which then requires --shard)."),
) -> None:
    """Build a BM25 or dense index folder (atomically: nothing is left half-written), or one shard
    of a dense index's embeddings."""
    stem = Path(corpus).stem if not corpus.startswith("irds:") else corpus[5:].replace("/", "-")
    name = name or f"{stem}-{kind.value}"
    out = out_dir / name
    corpus_format = fmt.value if fmt else None
    if kind is Kind.bm25:
        if shard is not None:
            raise RankkitError("--shard with --kind bm25: only dense indexes are encoded in shards. Fix: drop --shard")
        from rankkit.index.bm25 import build_bm25_index

        manifest = build_bm25_index(corpus, out, corpus_format, threads=threads, overwrite=overwrite)
    else:
        from rankkit.encode.biencoder import BiEncoder
        from rankkit.index.dense import DenseBuildConfig, build_dense_index
        from rankkit.encode.device import launcher_device
        from rankkit.index.manifest import shard_name
        from rankkit.index.shards import build_dense_shard, resolve_shard

        split = resolve_shard(shard)
        if split is not None and (factory or embeddings_from):
            raise RankkitError("--shard encodes embeddings only, so --factory and --embeddings-from do not apply. "
                               "Fix: drop them, and pass --factory to `rankkit index merge`")
        device = launcher_device(device) if split is not None else device
        encoder = None if embeddings_from else BiEncoder(model, device=device, precision=precision.value,
                                                         passage_prompt=passage_prompt)
        query_encoder = BiEncoder(query_model, device=device) if query_model else None
        if split is not None:
            out = out_dir / shard_name(name, split)
            manifest = build_dense_shard(corpus, out, encoder, split, fmt=corpus_format, overwrite=overwrite,
                                         query_encoder=query_encoder)
            rprint(f"built shard {split} [bold]{out}[/] with {manifest.count} documents; merge the {split.count} "
                   f"shards with `rankkit index merge`")
            return
        config = DenseBuildConfig(factory=factory or "Flat", save_embeddings=save_embeddings)
        manifest = build_dense_index(corpus, out, encoder, config, corpus_format, embeddings_from, overwrite,
                                     query_encoder=query_encoder)
    rprint(f"built {manifest.kind} index [bold]{out}[/] with {manifest.count} documents ({manifest.index_type})")


@app.command()
@friendly_errors
def merge(
    shards: list[Path] = typer.Argument(..., help="The shard folders of one `index build --shard` split, any order."),
    name: str = typer.Option(..., help="Index name; written to OUT_DIR/NAME."),
    out_dir: Path = typer.Option(Path("indexes"), help=OUT_DIR_HELP),
    factory: str = typer.Option("Flat", help=FACTORY_HELP),
    save_embeddings: bool = typer.Option(False, help=SAVE_EMBEDDINGS_HELP),
    overwrite: bool = typer.Option(False, help=OVERWRITE_HELP),
) -> None:
    """Build one dense index from the shards of a corpus (checked to belong together), as a
    one-process `index build` would have built it."""
    from rankkit.index.dense import DenseBuildConfig
    from rankkit.index.shards import merge_dense_shards

    out = out_dir / name
    config = DenseBuildConfig(factory=factory, save_embeddings=save_embeddings)
    manifest = merge_dense_shards(shards, out, config, overwrite)
    rprint(f"built {manifest.kind} index [bold]{out}[/] with {manifest.count} documents ({manifest.index_type}) "
           f"from {len(shards)} shards")


@app.command()
@friendly_errors
def info(index: Path = typer.Argument(..., help="Index folder.")) -> None:
    """Print an index's manifest."""
    print(json.dumps(asdict(Manifest.read(index)), indent=2))


@app.command()
@friendly_errors
def verify(index: Path = typer.Argument(..., help="Index folder.")) -> None:
    """Check an index: every file's size and SHA-256 against its manifest, then open it and compare
    document counts. A problem names the file; the fix is to rebuild."""
    from rankkit.index.verify import verify as verify_index

    report = verify_index(index)
    for note in report.notes:
        rprint(f"[yellow]warning:[/] {note}")
    checked = f"{report.files_checked} files, sizes and SHA-256" if report.checksums else "layout only"
    rprint(f"ok: {report.kind} index {index} ({checked}; opened, document count matches)")
