"""Turn rankkit errors into one clear line on stderr and exit status 2, without a traceback."""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import typer
from rich.console import Console

from rankkit.errors import RankkitError

F = TypeVar("F", bound=Callable)
stderr = Console(stderr=True)


def friendly_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RankkitError as exc:
            stderr.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
