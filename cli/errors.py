"""Turn rankkit errors, and a full disk wherever it strikes, into one clear line on stderr and
exit status 2, without a traceback."""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import typer
from rich.console import Console

from rankkit.data.files import DISK_FULL_ERRNOS, disk_full_error
from rankkit.errors import RankkitError

F = TypeVar("F", bound=Callable)
stderr = Console(stderr=True)


def friendly_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RankkitError as exc:
            _print_error(exc)
        except OSError as exc:  # outputs written through atomic_write/atomic_dir name their file already
            if exc.errno not in DISK_FULL_ERRNOS:
                raise
            _print_error(disk_full_error(exc.filename))
        raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _print_error(exc: RankkitError) -> None:
    stderr.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
