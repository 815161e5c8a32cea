"""The checks of plain (not grouped) numeric options, and the console that prints tables."""

from __future__ import annotations

from rich.console import Console

from rankkit.cli.groups import range_check
from rankkit.options import OptionSpec

AT_LEAST_1 = range_check(OptionSpec("", low=1), integer=True)
NON_NEGATIVE = range_check(OptionSpec("", low=0), integer=False)
POSITIVE = range_check(OptionSpec("", low=0, low_open=True), integer=False)


def stdout_console() -> Console:
    """A console for tables on stdout: the terminal's width on a terminal; piped or redirected
    (`rankkit eval ... | cat`), wide enough that run and measure names are never cut."""
    console = Console()
    return console if console.is_terminal else Console(width=10_000)
