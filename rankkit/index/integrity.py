"""Index integrity: each kind's required files (a dense shard's too) and the sizes checked whenever
an index opens (cheap); rankkit.index.verify also compares checksums and opens the index (`rankkit
index verify`).

Every problem names the file and says to rebuild: an index is derived data, rebuilt from its
corpus, never repaired."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterable

import numpy as np

from rankkit.data.files import not_a_file, sha256_file
from rankkit.errors import RankkitError
from rankkit.index.kinds.registry import build_command, registered
from rankkit.index.manifest import Manifest

VECTOR_CHUNK = 50_000  # vectors checked at a time: memory-mapped files stream


def rebuild_fix(folder: str | Path, manifest: Manifest) -> str:
    """The fix for a damaged index: the build command that makes it again."""
    kind = registered().get(manifest.kind)
    command = (kind.rebuild if kind else build_command)(Path(folder), manifest)
    return f"Fix: rebuild the index ({command})"


def index_error(folder: str | Path, manifest: Manifest, file: str | None, problem: str) -> RankkitError:
    where = Path(folder) / file if file else Path(folder)
    return RankkitError(f"{where}: {problem}. {rebuild_fix(folder, manifest)}")


def check_layout(folder: str | Path, manifest: Manifest) -> None:
    """The files the manifest's kind needs are present (a dense manifest over a Lucene folder is caught)."""
    folder = Path(folder)
    kinds = registered()
    if manifest.kind not in kinds:
        raise index_error(folder, manifest, "manifest.json", f"unknown index kind {manifest.kind!r}")
    for name in kinds[manifest.kind].required_files:
        if not (folder / name).exists():
            others = [
                other.name
                for other in kinds.values()
                if other.name != manifest.kind and all((folder / n).exists() for n in other.required_files)
            ]
            hint = f" (the folder holds the files of a {others[0]} index)" if others else ""
            raise index_error(
                folder,
                manifest,
                name,
                f"missing: the manifest says this is a {manifest.kind} index, which needs it{hint}",
            )


def check_sizes(folder: str | Path, manifest: Manifest) -> None:
    """Every file the manifest records exists with its recorded size (no checksums: cheap enough
    for every open); a manifest that records no files is refused."""
    folder = Path(folder)
    check_layout(folder, manifest)
    if not manifest.files:
        raise index_error(folder, manifest, "manifest.json", "records no files, so the index cannot be checked")
    for name, record in manifest.files.items():
        problem = not_a_file(folder / name)
        if problem is not None:
            raise index_error(folder, manifest, name, f"{problem} (the manifest records it)")
        path = folder / name
        size = path.stat().st_size
        if size != record["size"]:
            raise index_error(
                folder,
                manifest,
                name,
                f"{size:,} bytes, but {record['size']:,} when the index was built (truncated or replaced)",
            )


def check_count(folder: str | Path, manifest: Manifest, found: int, what: str) -> None:
    if found != manifest.count:
        raise index_error(
            folder, manifest, "manifest.json", f"the manifest says {manifest.count} documents, but {what} holds {found}"
        )


def check_checksums(folder: str | Path, manifest: Manifest, names: Iterable[str] | None = None) -> int:
    """Each file `names` (default: every file the manifest records) has the SHA-256 recorded at
    build time. Returns how many files were compared."""
    folder = Path(folder)
    names = list(manifest.files if names is None else names)
    for name in names:
        record = manifest.files.get(name)
        if record is None:
            raise index_error(folder, manifest, name, "not recorded in the manifest, so it cannot be checked")
        if sha256_file(folder / name) != record["sha256"]:
            raise index_error(
                folder,
                manifest,
                name,
                "its SHA-256 differs from the one recorded at build time (the file was changed or damaged)",
            )
    return len(names)


def row_chunks(vectors: np.ndarray, size: int = VECTOR_CHUNK) -> Iterable[np.ndarray]:
    """`vectors` a chunk of rows at a time."""
    return (vectors[start : start + size] for start in range(0, len(vectors), size))


def first_non_finite(vectors: np.ndarray) -> int | None:
    """The first row of `vectors` holding a NaN or an infinity, or None."""
    bad = ~np.isfinite(vectors).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def check_finite(folder: str | Path, manifest: Manifest, file: str, chunks: Iterable[np.ndarray]) -> None:
    """Every vector of an index file (given as consecutive chunks of rows) is finite: a NaN vector
    is never found by search, so its document would be silently lost."""
    start = 0
    for chunk in chunks:
        row = first_non_finite(chunk)
        if row is not None:
            row += start
            with open(Path(folder) / "docids.txt", encoding="utf-8", errors="replace") as ids:
                docid = next(itertools.islice(ids, row, None), "?").rstrip("\n")
            raise index_error(
                folder,
                manifest,
                file,
                f"vector {row} (document {docid!r}) is not finite (NaN or infinity), so search would never return it",
            )
        start += len(chunk)
