"""The `rankkit` Typer app: thin commands over the library."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import typer

from rankkit.cli import cet, export, index, models, sentiment, train, tune
from rankkit.cli.distill import distill
from rankkit.cli.evaluate import evaluate
from rankkit.cli.mine import mine
from rankkit.cli.quickstart import quickstart
from rankkit.cli.rerank import rerank
from rankkit.cli.search import search
from rankkit.cli.serve import query, serve

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    help="rankkit: neural retrieval and ranking.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(index.app, name="index")
app.add_typer(cet.app, name="cet")
app.add_typer(train.app, name="train")
app.add_typer(tune.app, name="tune")
app.add_typer(export.app, name="export")
app.add_typer(sentiment.app, name="sentiment")
app.add_typer(models.app, name="models")
app.command()(search)
app.command("eval")(evaluate)
app.command()(quickstart)
app.command()(mine)
app.command()(distill)
app.command()(rerank)
app.command()(serve)
app.command()(query)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a scheduler's or `kill`'s stop) unwinds like Ctrl-C does: half-written outputs,
    kept under temporary names until complete, are removed on the way out.

    Python prints and drops an exception raised while it runs a __del__ method (it happened in
    the regex module's, mid-build), so there the signal is sent again a moment later instead."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()
            return
        frame = frame.f_back
    raise SystemExit(128 + signum)


def main() -> None:
    # transformers reads these when it is first imported (by a command that runs a model): its
    # warnings and progress bars stay off without importing it here, which would cost every
    # command, --help included, most of a second
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # `rankkit serve` replaces it with uvicorn's
    app()
