"""`rankkit index build` as one library call: an index of any registered kind."""

from __future__ import annotations

from pathlib import Path

from rankkit.errors import RankkitError
from rankkit.index.kinds import index_kind
from rankkit.index.manifest import Manifest
from rankkit.index.options import IndexBuild


def build_index(config: IndexBuild) -> tuple[Manifest, Path]:
    """Build the index `config` describes (atomically: nothing is left half-written). Returns its
    manifest and the folder written (a shard's own folder for --shard)."""
    kind = index_kind(config.kind)
    if kind.build is None:
        raise RankkitError(f"--kind {kind.name}: not built by `index build`. Fix: {kind.not_searchable}")
    config.check_kind_options(kind.name, kind.build_options)
    return kind.build(config)
