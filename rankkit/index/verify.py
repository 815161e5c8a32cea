"""`rankkit index verify`: an index checked fully, its layout, the size and SHA-256 of every file
its manifest records, then opened and its document count compared with the manifest's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rankkit.data.files import sha256_file
from rankkit.index.integrity import SHARD_KIND, check_sizes, index_error
from rankkit.index.manifest import Manifest


@dataclass
class VerifyReport:
    folder: Path
    kind: str
    files_checked: int = 0
    checksums: bool = True  # every recorded file's SHA-256 was compared (always, since check_sizes refuses none)
    notes: list[str] = field(default_factory=list)


def verify(folder: str | Path) -> VerifyReport:
    """Check an index fully: layout, sizes and SHA-256 of every recorded file, then open it and
    compare its document count with the manifest's. Raises RankkitError on the first problem."""
    folder = Path(folder)
    manifest = Manifest.read(folder)
    check_sizes(folder, manifest)
    report = VerifyReport(folder, manifest.kind, files_checked=len(manifest.files))
    for name, record in manifest.files.items():
        if sha256_file(folder / name) != record["sha256"]:
            raise index_error(
                folder,
                manifest,
                name,
                "its SHA-256 differs from the one recorded at build time (the file was changed or damaged)",
            )
    if manifest.kind == "dense":
        from rankkit.index.dense import DenseIndex

        DenseIndex(folder)  # reads the FAISS file and docids, checks both counts
    elif manifest.kind == SHARD_KIND:
        from rankkit.index.shards import read_shard

        read_shard(folder)  # checks the counts of docids and vectors
    else:
        from rankkit.index.bm25 import open_lucene_searcher

        open_lucene_searcher(folder, 0.9, 0.4)  # opens the Lucene segments, checks the count
    return report
