"""What the Lucene index kinds (BM25, SPLADE impacts) share: their Lucene folder, the check that
Lucene committed every document of a build, and opening a searcher over a checked folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar

from rankkit.errors import RankkitError
from rankkit.index.integrity import check_count, check_sizes, index_error
from rankkit.index.java import start_jvm
from rankkit.index.manifest import Manifest

LUCENE_DIR = "lucene"
Searcher = TypeVar("Searcher")


def check_committed(out: str | Path, lucene: Path, count: int, make: Callable[[str], Any]) -> None:
    """Every document added is in the committed index: Anserini's indexers log and swallow
    Lucene's IOException (a full disk among them), leaving a partial index or none. On a full disk
    atomic_dir turns this error into its own. `make` opens an Anserini searcher over `lucene`."""
    try:
        searcher = make(str(lucene))
    except Exception:  # jnius.JavaException: no segments were committed
        committed = 0
    else:
        committed = searcher.num_docs
        searcher.object.close()
    if committed != count:
        raise RankkitError(
            f"{out}: Lucene committed {committed} of the {count} documents (it logged why above). "
            "Fix: mend what Lucene's error says (a full disk: free space, or -o a folder on another disk), then rebuild"
        )


def open_lucene(folder: str | Path, kind: str, what: str, make: Callable[[str], Searcher]) -> tuple[Searcher, Manifest]:
    """A searcher (`make` over the folder's Lucene index) of a rankkit index of `kind` (`what`
    names it in errors), its files' sizes and its document count checked; and its manifest."""
    manifest = Manifest.read(folder)
    if manifest.kind != kind:
        raise RankkitError(f"{folder}: a {manifest.kind} index, not a {what} one. Fix: pass a {what} index")
    check_sizes(folder, manifest)
    start_jvm()  # a missing pyserini or Java is reported as such, not as a damaged index
    try:
        searcher = make(str(Path(folder) / LUCENE_DIR))
    except Exception as exc:  # jnius.JavaException: corrupt or missing segments
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise index_error(folder, manifest, LUCENE_DIR, f"Lucene cannot open it ({reason})") from None
    check_count(folder, manifest, searcher.num_docs, "the Lucene index")  # type: ignore[attr-defined]
    return searcher, manifest
