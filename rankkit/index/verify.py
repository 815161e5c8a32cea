"""`rankkit index verify`: an index checked fully, its layout, the size and SHA-256 of every file
its manifest records, then opened, its document count compared with the manifest's, and its
stored vectors checked to be finite."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rankkit.index.integrity import check_checksums, check_sizes
from rankkit.index.kinds import index_kind
from rankkit.index.manifest import Manifest


@dataclass
class VerifyReport:
    folder: Path
    kind: str
    files_checked: int = 0
    checksums: bool = True  # every recorded file's SHA-256 was compared (always, since check_sizes refuses none)
    notes: list[str] = field(default_factory=list)
    verified: str = ""  # what the kind checked beyond the files (e.g. "vectors finite"), when it noted nothing


def verify(folder: str | Path) -> VerifyReport:
    """Check an index fully: layout, sizes and SHA-256 of every recorded file, then open it as its
    kind does, comparing what it holds (documents, vectors) with the manifest.
    Raises RankkitError on the first problem."""
    folder = Path(folder)
    manifest = Manifest.read(folder)
    check_sizes(folder, manifest)
    report = VerifyReport(folder, manifest.kind, files_checked=check_checksums(folder, manifest))
    kind = index_kind(manifest.kind, folder)
    report.notes += kind.verify(folder, manifest)
    report.verified = "" if report.notes else kind.verified
    return report
