"""`rankkit index verify`: an index checked fully, its layout, the size and SHA-256 of every file
its manifest records, then opened, its document count compared with the manifest's, and its
stored vectors checked to be finite."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rankkit.index.integrity import SHARD_KIND, check_checksums, check_sizes
from rankkit.index.manifest import Manifest


@dataclass
class VerifyReport:
    folder: Path
    kind: str
    files_checked: int = 0
    checksums: bool = True  # every recorded file's SHA-256 was compared (always, since check_sizes refuses none)
    notes: list[str] = field(default_factory=list)


def verify(folder: str | Path) -> VerifyReport:
    """Check an index fully: layout, sizes and SHA-256 of every recorded file, then open it,
    compare its document count with the manifest's and check its stored vectors are finite.
    Raises RankkitError on the first problem."""
    folder = Path(folder)
    manifest = Manifest.read(folder)
    check_sizes(folder, manifest)
    report = VerifyReport(folder, manifest.kind, files_checked=check_checksums(folder, manifest))
    if manifest.kind == "dense":
        from rankkit.index.dense import DenseIndex, check_stored_vectors

        DenseIndex(folder)  # reads the FAISS file and docids, checks both counts
        report.notes += check_stored_vectors(folder, manifest)
    elif manifest.kind == SHARD_KIND:
        from rankkit.index.dense import check_stored_vectors
        from rankkit.index.shards import read_shard

        read_shard(folder)  # checks the counts of docids and vectors
        report.notes += check_stored_vectors(folder, manifest)
    else:
        from rankkit.index.bm25 import open_lucene_searcher

        open_lucene_searcher(folder, 0.9, 0.4)  # opens the Lucene segments, checks the count
    return report
