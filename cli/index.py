"""`rankkit index build`, `merge`, `info` and `verify`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console

from rankkit.cli.errors import friendly_errors
from rankkit.cli.groups import with_options
from rankkit.index.manifest import Manifest, shard_of
from rankkit.index.options import IndexBuild, IndexMerge

app = typer.Typer(help="Build and inspect indexes.", no_args_is_help=True)
console = Console(soft_wrap=True)  # a long index path stays on one line


@app.command()
@friendly_errors
@with_options
def build(config: IndexBuild) -> None:
    """Build an index folder of any kind (atomically: nothing is left half-written), or one shard
    of a dense index's embeddings. Each kind takes only its own options."""
    from rankkit.index.build import build_index

    manifest, out = build_index(config)
    if "shard" in manifest.settings:
        console.print(
            f"built shard {shard_of(manifest)} [bold]{out}[/] with {manifest.count} documents; merge the shards "
            "with `rankkit index merge`"
        )
        return
    console.print(f"built {manifest.kind} index [bold]{out}[/] with {manifest.count} documents ({manifest.index_type})")


@app.command()
@friendly_errors
@with_options
def merge(config: IndexMerge) -> None:
    """Build one dense index from the shards of a corpus (checked to belong together), as a
    one-process `index build` would have built it."""
    from rankkit.index.dense import DenseBuildConfig
    from rankkit.index.shards import merge_dense_shards

    build = DenseBuildConfig(factory=config.factory, save_embeddings=config.save_embeddings)
    manifest = merge_dense_shards(
        [Path(shard) for shard in config.shards], Path(config.output), build, config.overwrite
    )
    console.print(
        f"built {manifest.kind} index [bold]{config.output}[/] with {manifest.count} documents "
        f"({manifest.index_type}) from {len(config.shards)} shards"
    )


@app.command()
@friendly_errors
def info(index: Path = typer.Argument(..., help="Index folder.")) -> None:
    """Print an index's manifest."""
    print(json.dumps(asdict(Manifest.read(index)), indent=2))


@app.command()
@friendly_errors
def verify(index: Path = typer.Argument(..., help="Index folder.")) -> None:
    """Check an index: every file's size and SHA-256 against its manifest, then open it, compare
    document counts and check its stored vectors are finite. A problem names the file; the fix is to rebuild."""
    from rankkit.index.verify import verify as verify_index

    report = verify_index(index)
    for note in report.notes:
        console.print(f"[yellow]warning:[/] {note}")
    checked = f"{report.files_checked} files, sizes and SHA-256" if report.checksums else "layout only"
    verified = f"; {report.verified}" if report.verified else ""
    console.print(f"ok: {report.kind} index {index} ({checked}; opened, document count matches{verified})")
