"""Transformer encoders: the bi-encoder (pooling from the model's own config) and device choice."""

from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.device import choose_device
from rankkit.encode.models import DEFAULT_MODEL, model_fingerprint, resolve_model_dir

__all__ = ["BiEncoder", "DEFAULT_MODEL", "choose_device", "model_fingerprint", "resolve_model_dir"]
