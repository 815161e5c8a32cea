"""Bi-encoder: a transformers model that turns texts into one (normalised) vector each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer

from rankkit.encode.batching import inverse_order, length_sorted_batches, right_padded
from rankkit.encode.device import choose_device
from rankkit.encode.models import model_display_name, model_fingerprint, resolve_model_dir
from rankkit.encode.pooling import pool, read_pooling_config
from rankkit.encode.precision import inference_dtype

DEFAULT_MAX_LENGTH = 512


def save_sentence_transformers_folder(encoder: "BiEncoder", folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    encoder.model.save_pretrained(folder)
    encoder.tokenizer.save_pretrained(folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if encoder.pooling.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    flags = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token",
             "max": "pooling_mode_max_tokens", "lasttoken": "pooling_mode_lasttoken"}
    pooling = {"word_embedding_dimension": encoder.dimension, **{key: mode == encoder.pooling.mode
                                                                 for mode, key in flags.items()}}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": encoder.max_length,
                                                                  "do_lower_case": False}))


class BiEncoder:
    """Encode queries and passages with one transformer, pooled as the model's own config says.

    Args:
        model: 'default' (the packaged all-MiniLM-L6-v2), a model folder or a hub id.
        device: 'auto' (cuda when present), 'cpu' or 'cuda[:N]'.
        max_length: token limit; defaults to the model's max_seq_length.
        max_tokens: token budget of one batch (rows x padded length).
        precision: 'fp32', or 'bf16' for encoding only (see rankkit.encode.precision); an encoder
            that will be trained stays fp32.
    """

    def __init__(self, model: str | Path = "default", device: str | None = None,
                 max_length: int | None = None, max_tokens: int = 2048, max_batch_size: int = 64,
                 precision: str = "fp32"):
        self.name = model_display_name(model)
        self.model_dir = resolve_model_dir(model)
        self.device = choose_device(device)
        self.pooling = read_pooling_config(self.model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.precision = precision
        dtype = inference_dtype(precision, self.device)
        self.model = AutoModel.from_pretrained(self.model_dir).to(self.device, dtype).eval()
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

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings of `texts` with gradients, for training; pooled and normalised as in encode,
        and computed in the same length-sorted chunks, so a short text is never padded to the
        longest of a training batch."""
        if not texts:
            return torch.zeros((0, self.dimension), device=self.device)
        encoded, lengths = self._tokenize(texts)
        chunks, order = [], []
        for batch in length_sorted_batches(lengths, self.max_tokens, self.max_batch_size):
            chunks.append(self._forward(encoded, batch))
            order.extend(batch)
        return torch.cat(chunks)[torch.tensor(inverse_order(order), device=self.device)]

    def save(self, folder: str | Path) -> None:
        """Save as a sentence-transformers folder (also a transformers one): weights, tokenizer,
        modules.json, pooling config and max length."""
        save_sentence_transformers_folder(self, Path(folder))

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], show_progress: bool = False, desc: str = "encoding") -> np.ndarray:
        """Embeddings of `texts` as a float32 array [len(texts), dimension], in input order."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encoded, lengths = self._tokenize(texts)
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not show_progress) as progress:
            for batch in length_sorted_batches(lengths, self.max_tokens, self.max_batch_size):
                out[batch] = self._forward(encoded, batch).cpu().numpy()
                progress.update(len(batch))
        return out

    def _tokenize(self, texts: Sequence[str]) -> tuple[dict[str, list[list[int]]], list[int]]:
        """Unpadded token ids of `texts`, and their lengths."""
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length,
                                 return_attention_mask=False, return_token_type_ids=False)
        return dict(encoded), [len(ids) for ids in encoded["input_ids"]]

    def _forward(self, encoded: dict[str, list[list[int]]], batch: list[int]) -> torch.Tensor:
        """Pooled (and normalised) float32 vectors of the texts `batch` indexes."""
        inputs = right_padded(encoded, batch, self.tokenizer.pad_token_id or 0, self.device)
        hidden = self.model(**inputs).last_hidden_state.float()
        vectors = pool(hidden, inputs["attention_mask"], self.pooling.mode)
        return torch.nn.functional.normalize(vectors, dim=-1) if self.pooling.normalize else vectors
