"""manifest.json: what built an index (model, dimension, metric, type, corpus and its checksum)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rankkit import __version__
from rankkit.data.files import atomic_write, sha256_file
from rankkit.errors import RankkitError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class CorpusInfo:
    path: str
    format: str
    sha256: str
    size_bytes: int

    @classmethod
    def of(cls, path: str | Path, fmt: str) -> "CorpusInfo":
        if str(path).startswith("irds:"):
            return cls(str(path), fmt, sha256="", size_bytes=0)
        path = Path(path).resolve()
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
    rankkit_version: str = __version__
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def write(self, folder: Path) -> None:
        with atomic_write(folder / MANIFEST) as out:
            json.dump(asdict(self), out, indent=2)
            out.write("\n")

    @classmethod
    def read(cls, folder: str | Path) -> "Manifest":
        path = Path(folder) / MANIFEST
        if not path.is_file():
            raise RankkitError(f"{folder}: not a rankkit index (no {MANIFEST}). "
                               "Fix: build one with `rankkit index build`, or check the path")
        try:
            data = json.loads(path.read_text())
            data["corpus"] = CorpusInfo(**data["corpus"])
            return cls(**data)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RankkitError(f"{path}: unreadable manifest ({exc}). Fix: rebuild the index") from None
