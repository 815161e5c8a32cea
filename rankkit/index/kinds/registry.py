"""The index-kind registry: each kind (bm25, dense, splade, ...) declares in one module how it is
built, opened for search, verified and served, which files it needs and which `index build`
options it takes. Commands ask the registry; none of them tests a kind's name.

A kind module imports only this registry and option groups at import time: what it builds or
opens (Lucene, FAISS, torch) is imported when it is used, so a BM25 search never loads torch.
The built-in kinds are imported by name on the first look-up: their modules use the index
modules, which use this registry (the layout checks, the fix that rebuilds a damaged index)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rankkit.errors import RankkitError

if TYPE_CHECKING:
    from rankkit.index.manifest import Manifest
    from rankkit.index.options import IndexBuild
    from rankkit.retrieve.base import Retriever
    from rankkit.retrieve.options import QueryOptions


def _nothing_to_check(folder: Path, manifest: Manifest, query: QueryOptions) -> None:
    return None


def build_command(folder: Path, manifest: Manifest, kind: str | None = None, options: str = "") -> str:
    """The `rankkit index build` command that writes an index like `manifest`'s into `folder`."""
    kind = kind or manifest.kind
    return f"rankkit index build {manifest.corpus.path} --kind {kind} -o {folder} --overwrite{options}"


@dataclass(frozen=True)
class IndexKind:
    """One kind of index.

    - `open(folder, query)`: a Retriever over the folder, taking its own query option group from
      `query` (its defaults when the command has none); None for a kind that is not searched.
    - `verify(folder, manifest)`: open the index fully and compare what it holds with the
      manifest (raising RankkitError); returns notes on what could not be checked.
    - `build(config)`: write the index `config` describes; returns its manifest and folder; None
      for a kind another command writes.
    - `build_options`: the option groups of `index build` this kind takes (others are refused).
    - `rebuild(folder, manifest)`: the command that builds this index again (the fix of a damaged one).
    - `check_served(folder, manifest, query)`: the cheap checks `serve` runs before it binds.
    - `query_model`: queries are encoded by a model, so a server waits a moment to batch them.
    - `verified`: what `index verify` reports as checked beyond the files, when it noted nothing.
    """

    name: str
    description: str
    required_files: tuple[str, ...]
    open: Callable[[Path, QueryOptions], Retriever] | None
    verify: Callable[[Path, Manifest], list[str]]
    build: Callable[[IndexBuild], tuple[Manifest, Path]] | None = None
    build_options: tuple[type, ...] = ()
    rebuild: Callable[[Path, Manifest], str] = build_command
    check_served: Callable[[Path, Manifest, QueryOptions], None] = _nothing_to_check
    query_model: bool = False
    verified: str = ""
    not_searchable: str = ""  # the fix for searching a kind with no `open`


# the modules of the built-in kinds; each registers its kind(s) when imported
BUILT_IN = ("rankkit.index.kinds.bm25", "rankkit.index.kinds.dense", "rankkit.index.kinds.splade")
_KINDS: dict[str, IndexKind] = {}


def register(kind: IndexKind) -> IndexKind:
    """Add `kind` to the registry (a kind registered again under its name replaces the earlier one)."""
    _KINDS[kind.name] = kind
    return kind


def registered() -> dict[str, IndexKind]:
    """Every registered kind by name, the built-in ones first."""
    for module in BUILT_IN:
        importlib.import_module(module)  # registers on the first import; a dict look-up after
    return _KINDS


def index_kind(name: str, folder: str | Path | None = None) -> IndexKind:
    """The registered kind `name`; an unknown one is an error naming the kinds there are."""
    try:
        return registered()[name]
    except KeyError:
        where = f"{folder}: " if folder is not None else ""
        kinds = "; ".join(f"{kind.name} ({kind.description})" for kind in registered().values() if kind.build)
        raise RankkitError(f"{where}unknown index kind {name!r}. Fix: use one of {kinds}") from None


def kind_of(folder: str | Path) -> IndexKind:
    """The kind of the index in `folder`, as its manifest says."""
    from rankkit.index.manifest import Manifest

    return index_kind(Manifest.read(folder).kind, folder)


def open_index(folder: str | Path, query: QueryOptions) -> Retriever:
    """A retriever over the index in `folder`, whatever its kind."""
    kind = kind_of(folder)
    if kind.open is None:
        raise RankkitError(f"{folder}: a {kind.name} index, which is not searched. Fix: {kind.not_searchable}")
    return kind.open(Path(folder), query)
