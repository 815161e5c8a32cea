"""Bi-encoder: a transformers model that turns texts into one (normalised) vector each."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from rankkit.encode.batching import length_sorted_batches
from rankkit.encode.device import choose_device
from rankkit.encode.models import model_display_name, model_fingerprint, resolve_model_dir
from rankkit.encode.pooling import pool, read_pooling_config

DEFAULT_MAX_LENGTH = 512


def load_transformer(model_dir: Path) -> torch.nn.Module:
    """AutoModel without BERT's unused pooler head where the architecture allows dropping it
    (transformers' load report about the skipped pooler weights is silenced: it is expected)."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoModel.from_pretrained(model_dir, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_pretrained(model_dir)
    finally:
        hf_logging.set_verbosity(verbosity)


class BiEncoder:
    """Encode queries and passages with one transformer, pooled as the model's own config says.

    Args:
        model: 'default' (the packaged all-MiniLM-L6-v2), a model folder or a hub id.
        device: 'auto' (cuda when present), 'cpu' or 'cuda[:N]'.
        max_length: token limit; defaults to the model's max_seq_length.
        max_tokens: token budget of one batch (rows x padded length).
    """

    def __init__(self, model: str | Path = "default", device: str | None = None,
                 max_length: int | None = None, max_tokens: int = 2048, max_batch_size: int = 64):
        self.name = model_display_name(model)
        self.model_dir = resolve_model_dir(model)
        self.device = choose_device(device)
        self.pooling = read_pooling_config(self.model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = load_transformer(self.model_dir).to(self.device).eval()
        limit = max_length or self.pooling.max_length or DEFAULT_MAX_LENGTH
        self.max_length = min(limit, getattr(self.model.config, "max_position_embeddings", limit))
        self.max_tokens = max_tokens
        self.max_batch_size = max_batch_size
        self._fingerprint: str | None = None

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model_dir)
        return self._fingerprint

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], show_progress: bool = False, desc: str = "encoding") -> np.ndarray:
        """Embeddings of `texts` as a float32 array [len(texts), dimension], in input order."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        token_ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length,
                                   return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        lengths = [len(ids) for ids in token_ids]
        pad_id = self.tokenizer.pad_token_id or 0
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not show_progress) as progress:
            for batch in length_sorted_batches(lengths, self.max_tokens, self.max_batch_size):
                width = lengths[batch[0]]
                ids = np.full((len(batch), width), pad_id, dtype=np.int64)
                mask = np.zeros((len(batch), width), dtype=np.int64)
                for row, index in enumerate(batch):
                    ids[row, : lengths[index]] = token_ids[index]
                    mask[row, : lengths[index]] = 1
                ids_t = torch.from_numpy(ids).to(self.device)
                mask_t = torch.from_numpy(mask).to(self.device)
                hidden = self.model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
                vectors = pool(hidden, mask_t, self.pooling.mode).float()
                if self.pooling.normalize:
                    vectors = torch.nn.functional.normalize(vectors, dim=-1)
                out[batch] = vectors.cpu().numpy()
                progress.update(len(batch))
        return out
