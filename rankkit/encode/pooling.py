"""Pooling token embeddings into one vector, configured from a sentence-transformers folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rankkit.encode.models import read_json
from rankkit.errors import RankkitError

POOLING_MODES = ("mean", "cls", "max", "lasttoken")


@dataclass(frozen=True)
class PoolingConfig:
    mode: str = "mean"
    normalize: bool = True
    max_length: int | None = None


def read_pooling_config(model_dir: Path) -> PoolingConfig:
    """Read pooling mode, normalisation and max length from modules.json, the Pooling module's
    config.json and sentence_bert_config.json; plain transformers folders get mean pooling."""
    modules = read_json(model_dir / "modules.json") or []
    pooling_path = next((m["path"] for m in modules if m.get("type", "").endswith("Pooling")), "1_Pooling")
    pooling = read_json(model_dir / pooling_path / "config.json") or {}
    flags = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token",
             "max": "pooling_mode_max_tokens", "lasttoken": "pooling_mode_lasttoken",
             # sentence-transformers modes rankkit does not implement: named so they are refused, not ignored
             "weightedmean": "pooling_mode_weightedmean_tokens", "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens"}
    chosen = [mode for mode, key in flags.items() if pooling.get(key)]
    if pooling.get("pooling_mode"):
        chosen = [pooling["pooling_mode"]]
    if len(chosen) > 1:
        raise RankkitError(f"{model_dir}: pooling config combines {chosen}, which rankkit does not support. "
                           "Fix: keep a single pooling mode in its Pooling config.json")
    mode = chosen[0] if chosen else "mean"
    if mode not in POOLING_MODES:
        raise RankkitError(f"{model_dir}: pooling mode {mode!r} unsupported. Fix: use one of {POOLING_MODES}")
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules) if modules else True
    sbert = read_json(model_dir / "sentence_bert_config.json") or {}
    return PoolingConfig(mode=mode, normalize=normalize, max_length=sbert.get("max_seq_length"))


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool [batch, tokens, dim] hidden states over the tokens the attention mask keeps.

    Batches are right-padded, so 'lasttoken' takes the last kept position of each row."""
    if mode == "cls":
        return hidden[:, 0]
    keep = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * keep).sum(1) / keep.sum(1).clamp(min=1e-9)
    if mode == "max":
        return hidden.masked_fill(keep == 0, torch.finfo(hidden.dtype).min).max(1).values
    if mode == "lasttoken":
        last = mask.sum(1) - 1
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    raise ValueError(f"unknown pooling mode {mode!r}")
