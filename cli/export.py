"""`rankkit export beir`: a collection folder written in BEIR's layout."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rankkit.cli.errors import friendly_errors
from rankkit.errors import RankkitError

app = typer.Typer(help="Write collections in other tools' layouts.", no_args_is_help=True)


@app.command()
@friendly_errors
def beir(
    data: Optional[Path] = typer.Argument(
        None, help="Collection folder (collection.tsv, queries.tsv, qrels.txt); default: the bundled sample."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="BEIR folder to write (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)."
    ),
    split: str = typer.Option("test", help="Name of the qrels split the folder's qrels.txt becomes."),
    overwrite: bool = typer.Option(False, help="Replace OUTPUT (only a BEIR folder) once the new folder is complete."),
) -> None:
    """Write a collection folder in BEIR's layout (qrels with header and CRLF, as BEIR writes them),
    for BEIR's loader, sentence-transformers' evaluators or pyserini."""
    from rankkit.data.beir import BeirPaths
    from rankkit.data.collection import collection, export_beir

    paths = collection(data)
    if isinstance(paths, BeirPaths):
        raise RankkitError(f"{data} is already a BEIR folder. Fix: copy it, or give a collection.tsv folder")
    export_beir(paths, output, split=split, overwrite=overwrite)
    print(f"wrote {paths.name} in BEIR's layout to {output} (split {split})")
