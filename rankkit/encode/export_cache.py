"""The cache of exported models: one folder per (model fingerprint, task, backend, quantisation,
and calibration texts where they shape the export) under $RANKKIT_CACHE/exports, written once
and reused.

A folder is built under a temporary name and renamed into place only when complete, so an
interrupted export leaves nothing a later run would take for an export. Its export.json records
what was exported and the SHA-256 of every file; a folder whose files no longer match is exported
again. Besides the exported graph, the folder holds the model folder's configuration and tokenizer
files (not its PyTorch weights): it is a model folder that sentence-transformers loads with
`backend="onnx"` or `backend="openvino"`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rankkit.encode.packaged import cache_root

RECORD = "export.json"
_TORCH_WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "onnx", "openvino")


@dataclass(frozen=True)
class ExportKey:
    """What identifies an export: the same model (by fingerprint), task, backend and quantisation,
    and for a calibrated export (OpenVINO int8) the calibration texts (by their hash)."""

    fingerprint: str
    task: str
    backend: str
    quantize: str
    calibration: str = ""

    @property
    def folder_name(self) -> str:
        name = f"{self.fingerprint}-{self.task}-{self.backend}-{self.quantize}"
        return f"{name}-{self.calibration}" if self.calibration else name


def exports_root() -> Path:
    return cache_root() / "exports"


def cached_export(key: ExportKey, model_dir: Path, write: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict]:
    """The cache folder of `key` and its record: reused when present and intact, else made by
    `write(folder)` (which writes the exported files into `folder` and returns what to record) in a
    temporary folder renamed into place."""
    final = exports_root() / key.folder_name
    record = read_record(final)
    if record is not None:
        damaged = _damaged_file(final, record)
        if damaged is None:
            return final, record
        print(f"export cache: {final / damaged} does not match its checksum; exporting again", file=sys.stderr)
    if final.exists():  # damaged, or its record unreadable: derived data, made again
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{key.folder_name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        shutil.copytree(model_dir, staging, ignore=shutil.ignore_patterns(*_TORCH_WEIGHTS))
        record = {**write(staging), "key": key.__dict__, "agreement": {}}
        record["files"] = {
            str(path.relative_to(staging)): _sha256(path)
            for path in sorted(staging.rglob("*"))
            if path.is_file() and path.name != RECORD
        }
        _write_json(staging / RECORD, record)
        try:
            staging.rename(final)
        except OSError:  # another process finished the same export first: keep its folder
            if read_record(final) is None:
                raise
            record = read_record(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final, record


def record_agreement(folder: Path, measured: str, agreement: dict[str, Any]) -> None:
    """Add the quality gate's measurement (`measured`: at which precision, on which texts) to an
    export's record (atomically)."""
    record = read_record(folder) or {}
    record.setdefault("agreement", {})[measured] = agreement
    _write_json(folder / RECORD, record)


def read_record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None


def _damaged_file(folder: Path, record: dict) -> str | None:
    """The first recorded file that is missing or differs from its checksum, else None."""
    for name, digest in record.get("files", {}).items():
        path = folder / name
        if not path.is_file() or _sha256(path) != digest:
            return name
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, content: dict) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_text(json.dumps(content, indent=2) + "\n")
    temporary.replace(path)
