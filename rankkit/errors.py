"""The one error type users see: a message that names the problem and the fix."""

from __future__ import annotations

from pathlib import Path


class RankkitError(Exception):
    """An error the user can cause and fix (bad file, unknown id, mismatched model and index).

    The CLI prints the message without a traceback and exits with status 2.
    """


def file_error(path: str | Path, line: int | None, problem: str, fix: str) -> RankkitError:
    """Build an error that names the file, the line (1-based) when known, the problem and the fix."""
    where = f"{path}:{line}" if line is not None else str(path)
    return RankkitError(f"{where}: {problem}. Fix: {fix}")
