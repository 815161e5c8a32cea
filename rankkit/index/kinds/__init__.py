"""Index kinds through one registry (see registry.py): bm25, dense (and its shards), splade, and
any kind a module registers."""

from rankkit.index.kinds.registry import (
    IndexKind,
    index_kind,
    kind_of,
    open_index,
    register,
    registered,
)

__all__ = ["IndexKind", "index_kind", "kind_of", "open_index", "register", "registered"]
