"""`rankkit index build` and `rankkit index info`."""

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
from rankkit.index.manifest import Manifest

app = typer.Typer(help="Build and inspect indexes.", no_args_is_help=True)


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
    out_dir: Path = typer.Option(Path("indexes"), help="Folder that holds indexes."),
    fmt: Optional[Format] = typer.Option(None, "--format", help="Corpus format; guessed from the file when absent."),
    model: str = typer.Option("default", help="Dense: model folder or hub id; 'default' = packaged all-MiniLM-L6-v2."),
    factory: str = typer.Option("Flat", help="Dense: FAISS factory string, e.g. Flat, HNSW32, IVF256,PQ32."),
    save_embeddings: bool = typer.Option(False, help="Dense: keep embeddings.f32 to build other index types later."),
    embeddings_from: Optional[Path] = typer.Option(None, help="Dense: reuse the embeddings saved in this index."),
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    precision: Precision = typer.Option(Precision.fp32, help=PRECISION_HELP),
    threads: int = typer.Option(2, min=1, help="BM25: indexing threads."),
    overwrite: bool = typer.Option(False, help="Replace an existing index of the same name (only a folder rankkit "
                                               "built; the old index stays until the new one is complete)."),
    passage_prompt: Optional[str] = typer.Option(
        None, help="Dense: prompt prepended to passages (default: the model's own, from config_sentence_transformers.json)."),
    query_model: Optional[str] = typer.Option(
        None, help="Dense: a separate query encoder (two-tower, DPR / Tevatron style), recorded in the manifest and "
                   "used by search, serve and mine."),
) -> None:
    """Build a BM25 or dense index folder (atomically: nothing is left half-written)."""
    stem = Path(corpus).stem if not corpus.startswith("irds:") else corpus[5:].replace("/", "-")
    out = out_dir / (name or f"{stem}-{kind.value}")
    corpus_format = fmt.value if fmt else None
    if kind is Kind.bm25:
        from rankkit.index.bm25 import build_bm25_index

        manifest = build_bm25_index(corpus, out, corpus_format, threads=threads, overwrite=overwrite)
    else:
        from rankkit.encode.biencoder import BiEncoder
        from rankkit.index.dense import DenseBuildConfig, build_dense_index

        encoder = None if embeddings_from else BiEncoder(model, device=device, precision=precision.value,
                                                         passage_prompt=passage_prompt)
        query_encoder = BiEncoder(query_model, device=device) if query_model else None
        config = DenseBuildConfig(factory=factory, save_embeddings=save_embeddings)
        manifest = build_dense_index(corpus, out, encoder, config, corpus_format, embeddings_from, overwrite,
                                     query_encoder=query_encoder)
    rprint(f"built {manifest.kind} index [bold]{out}[/] with {manifest.count} documents ({manifest.index_type})")


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
    from rankkit.index.integrity import verify as verify_index

    report = verify_index(index)
    for note in report.notes:
        rprint(f"[yellow]warning:[/] {note}")
    checked = f"{report.files_checked} files, sizes and SHA-256" if report.checksums else "layout only"
    rprint(f"ok: {report.kind} index {index} ({checked}; opened, document count matches)")
