"""manifest.json: what built an index (model, dimension, metric, type, corpus and its checksum)
and the size and SHA-256 of every file of the index (see integrity.py)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rankkit import __version__
from rankkit.data.files import atomic_write, not_a_file, sha256_file
from rankkit.errors import RankkitError

MANIFEST = "manifest.json"
SHARD_KIND = "dense-shard"  # the kind of one shard of a dense index's embeddings (see shards.py)


@dataclass(frozen=True)
class CorpusInfo:
    path: str
    format: str
    sha256: str
    size_bytes: int

    def sample(self) -> list[str] | None:
        """The passages an index build showed an exported model (its quality gate and OpenVINO's
        int8 calibration), while the corpus is still where it was: a query encoder on the same
        backend then finds the build's export in the cache."""
        from rankkit.encode.backend import sample_texts

        return sample_texts(self.path, self.format) if Path(self.path).exists() else None

    @classmethod
    def of(cls, path: str | Path, fmt: str) -> "CorpusInfo":
        if str(path).startswith("irds:"):
            return cls(str(path), fmt, sha256="", size_bytes=0)
        path = Path(path).resolve()
        if path.is_dir():  # a folder of text files: one checksum over its files' paths and contents
            from rankkit.data.folder import folder_digest

            return cls(str(path), fmt, *folder_digest(path))
        if not path.is_file():
            raise RankkitError(f"{path}: no such corpus file. Fix: check the path, or pass irds:<dataset id>")
        return cls(str(path), fmt, sha256_file(path), path.stat().st_size)


@dataclass(frozen=True)
class Manifest:
    kind: str  # "dense" or "bm25"
    count: int
    corpus: CorpusInfo
    index_type: str  # FAISS factory string, or "lucene"
    model: str | None = None
    model_fingerprint: str | None = None
    dimension: int | None = None
    metric: str | None = None
    pooling: str | None = None
    normalized: bool | None = None
    max_length: int | None = None
    query_model: str | None = None  # a two-tower model's query encoder (passages were encoded by `model`)
    query_model_fingerprint: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    # relative path -> {"size": bytes, "sha256": hex}; filled in by write()
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    rankkit_version: str = __version__
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def write(self, folder: Path) -> "Manifest":
        """Write manifest.json into the finished index folder, recording the size and checksum of
        every other file in it; returns the manifest as written."""
        written = replace(self, files=file_records(folder))
        with atomic_write(folder / MANIFEST) as out:
            json.dump(asdict(written), out, indent=2)
            out.write("\n")
        return written

    @classmethod
    def read(cls, folder: str | Path) -> "Manifest":
        path = Path(folder) / MANIFEST
        problem = not_a_file(path)
        if problem == "missing":
            raise RankkitError(
                f"{folder}: not a rankkit index (no {MANIFEST}). "
                "Fix: build one with `rankkit index build`, or check the path"
            )
        if problem is not None:  # never read: a FIFO would block
            raise RankkitError(f"{path}: {problem}. Fix: rebuild the index")
        try:
            data = json.loads(path.read_text())
            data["corpus"] = CorpusInfo(**data["corpus"])
            return cls(**data)
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise RankkitError(f"{path}: unreadable manifest ({exc}). Fix: rebuild the index") from None


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`, as a shard's manifest records it (see shards.py)."""

    index: int
    count: int

    def rows(self, documents: int) -> range:
        """Positions of this shard's documents among `documents`: contiguous, sizes within one of each other."""
        return range(self.index * documents // self.count, (self.index + 1) * documents // self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_name(name: str, shard: Shard) -> str:
    """The folder name of a shard of the index NAME: every rank of a launch gets its own."""
    return f"{name}-shard-{shard.index}-of-{shard.count}"


def shard_of(manifest: Manifest) -> Shard:
    """The shard a shard folder's manifest records."""
    return Shard(**manifest.settings["shard"])


def file_records(folder: str | Path) -> dict[str, dict[str, Any]]:
    """{relative path: {"size", "sha256"}} of every file under `folder` except the manifest."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": sha256_file(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != MANIFEST
    }


def is_index_folder(folder: Path) -> bool:
    """Whether `folder` is an index rankkit built (a readable manifest.json): what --overwrite may replace."""
    try:
        Manifest.read(folder)
    except RankkitError:
        return False
    return True
