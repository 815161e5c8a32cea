"""Bi-encoder: a sentence-transformers module stack that turns texts into one vector each,
computed in rankkit's length-sorted token-budget batches (see rankkit.encode.stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from rankkit.encode.backend import (
    Forward,
    Runner,
    TorchForward,
    backend_device,
    backend_precision,
    exported_runner,
    sample_texts,
)
from rankkit.encode.batching import BATCH_COST, inverse_order, length_sorted_batches, padded_batches, right_padded
from rankkit.encode.models import model_display_name, model_fingerprint, resolve_model_dir
from rankkit.encode.precision import PRECISIONS
from rankkit.encode.quality_gate import vector_agreement
from rankkit.encode.stack import describe_pooling, load_stack, prompt_length, resolve_prompt
from rankkit.options import TORCH_INFERENCE, Inference

Role = Literal["query", "passage"]
UNBOUNDED_LENGTH = 100_000  # tokenizers without a limit report about 1e30


class BiEncoder:
    """Encode queries and passages as sentence-transformers would (`encode_query` and
    `encode_document`: the model's modules.json stack, max length and prompts), only faster.

    Args:
        model: 'default' (the packaged all-MiniLM-L6-v2), a model folder or a hub id.
        device: 'auto' (cuda when present), 'cpu' or 'cuda[:N]'.
        max_length: token limit; defaults to the model's max_seq_length as sentence-transformers reads it.
        max_tokens: token budget of one batch (rows x padded length).
        precision: 'fp32', or 'bf16' for encoding only (see rankkit.encode.precision); an encoder
            that will be trained stays fp32.
        query_prompt, passage_prompt: prepended to queries / passages instead of the prompts in the
            model's config_sentence_transformers.json ('' for none).
        inference: the backend that runs the transformer (rankkit.encode.backend) and its quality gate.
        sample: texts the quality gate (and OpenVINO's int8 calibration) of an export uses; default:
            rankkit's sample passages. An index build passes passages of its corpus.
    """

    def __init__(
        self,
        model: str | Path = "default",
        device: str | None = None,
        max_length: int | None = None,
        max_tokens: int = 2048,
        max_batch_size: int = 64,
        precision: str = "fp32",
        query_prompt: str | None = None,
        passage_prompt: str | None = None,
        inference: Inference = TORCH_INFERENCE,
        sample: Sequence[str] | None = None,
    ):
        self.name = model_display_name(model)
        self.model_dir = resolve_model_dir(model)
        self.device = backend_device(inference, device)
        self.precision = backend_precision(inference, precision, self.device)  # recorded in manifests: never auto
        dtype = torch.float32 if inference.exported else PRECISIONS[self.precision]  # an export starts from fp32
        self.stack = load_stack(self.model_dir, self.device)
        self.tokenizer = self.stack.tokenizer
        self.model = self.stack[0].auto_model.to(self.device, dtype)  # the head modules stay float32
        self.stack.eval()
        self.head = list(self.stack)[1:]  # the modules after the transformer, run on its token embeddings
        if max_length is not None:
            self.stack.max_seq_length = max_length
        limit = self.stack.max_seq_length or UNBOUNDED_LENGTH
        self.max_length = min(limit, getattr(self.model.config, "max_position_embeddings", limit))
        self.prompts = {
            role: resolve_prompt(self.stack.prompts, self.stack.default_prompt_name, role, override)
            for role, override in (("query", query_prompt), ("passage", passage_prompt))
        }
        self.pooling_mode, self.normalized = describe_pooling(self.stack)
        self.dimension = int(self.stack.get_embedding_dimension())
        self.max_tokens = max_tokens
        self.max_batch_size = max_batch_size
        self.batch_cost = BATCH_COST
        self._fingerprint: str | None = None
        self.runner = Runner(TorchForward(self.model, "last_hidden_state"), precision=self.precision)
        if inference.exported:
            texts = list(sample) if sample else sample_texts()
            self.runner = exported_runner(
                self.model,
                model_dir=self.model_dir,
                fingerprint=self.fingerprint,
                task="feature-extraction",
                input_names=("input_ids", "attention_mask"),
                inference=inference,
                precision=self.precision,
                sample=texts,
                sample_inputs=lambda: self._sample_batches(texts),
                measure=lambda forward: vector_agreement(
                    self._vectors(texts, TorchForward(self.model, "last_hidden_state")), self._vectors(texts, forward)
                ),
                what=f"{self.name} on {inference.backend}",
            )

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model_dir)
        return self._fingerprint

    def embed(self, texts: Sequence[str], role: Role = "passage") -> torch.Tensor:
        """Embeddings of `texts` with gradients, for training; computed as in encode and in the same
        length-sorted chunks, so a short text is never padded to the longest of a training batch."""
        if not texts:
            return torch.zeros((0, self.dimension), device=self.device)
        chunks, order = [], []
        for batch, vectors in self._batches(texts, role, self.runner.forward):
            chunks.append(vectors)
            order.extend(batch)
        return torch.cat(chunks)[torch.tensor(inverse_order(order), device=self.device)]

    def save(self, folder: str | Path) -> None:
        """Save with `SentenceTransformer.save`: weights, tokenizer, modules.json and every module's
        config, config_sentence_transformers.json (prompts) and the max length."""
        self.stack.save(str(folder), create_model_card=False)

    @torch.inference_mode()
    def encode(
        self,
        texts: Sequence[str],
        show_progress: bool = False,
        desc: str = "encoding",
        role: Role = "passage",
        on_batch: Callable[[list[int]], None] | None = None,
    ) -> np.ndarray:
        """Embeddings of `texts` (queries or passages, which may get different prompts) as a
        float32 array [len(texts), dimension], in input order. `on_batch` is called with the
        indices of each batch once it is encoded (for a caller's progress bar)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not show_progress) as progress:
            for batch, vectors in self._batches(texts, role, self.runner.forward):
                out[batch] = vectors.cpu().numpy()
                progress.update(len(batch))
                if on_batch is not None:
                    on_batch(batch)
        return out

    def _vectors(self, texts: Sequence[str], forward: Forward) -> np.ndarray:
        """Passage vectors of `texts` through another forward pass (the quality gate's comparison)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with torch.inference_mode():
            for batch, vectors in self._batches(texts, "passage", forward):
                out[batch] = vectors.cpu().numpy()
        return out

    def _batches(self, texts: Sequence[str], role: Role, forward: Forward) -> Iterator[tuple[list[int], torch.Tensor]]:
        """(indices, vectors) of `texts` in length-sorted token-budget batches."""
        if not texts:
            return
        encoded, lengths, skip = self._tokenize(texts, role)
        for batch in length_sorted_batches(lengths, self.max_tokens, self.max_batch_size, self.batch_cost):
            yield batch, self._forward(encoded, batch, skip, forward)

    def _sample_batches(self, texts: Sequence[str]) -> list[dict[str, torch.Tensor]]:
        """Padded model inputs of passages `texts` as encode batches them (OpenVINO's int8 calibration)."""
        encoded, lengths, _ = self._tokenize(texts, "passage")
        pad = self.tokenizer.pad_token_id or 0
        return padded_batches(encoded, lengths, self.max_tokens, self.max_batch_size, pad, self.device)

    def token_lengths(self, texts: Sequence[str], role: Role = "passage") -> list[int]:
        """Token counts of `texts` as encode computes them (prompt included, truncated to max_length)."""
        return self._tokenize(texts, role)[1]

    def _tokenize(self, texts: Sequence[str], role: Role) -> tuple[dict[str, list[list[int]]], list[int], int]:
        """Unpadded token ids of the prompted `texts`, their lengths, and the prompt's length in
        tokens (pooling skips it when the model's Pooling sets include_prompt false)."""
        prompt = self.prompts[role]
        encoded = self.tokenizer(
            [prompt + text for text in texts] if prompt else list(texts),
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        skip = prompt_length(self.tokenizer, prompt) if prompt else 0
        return dict(encoded), [len(ids) for ids in encoded["input_ids"]], skip

    def _forward(
        self, encoded: dict[str, list[list[int]]], batch: list[int], skip: int, forward: Forward
    ) -> torch.Tensor:
        """Float32 vectors of the texts `batch` indexes: the transformer through `forward`, then the
        model's modules after it."""
        features = right_padded(encoded, batch, self.tokenizer.pad_token_id or 0, self.device)
        features["token_embeddings"] = forward(features).float()
        if skip:
            features["prompt_length"] = skip
        for module in self.head:
            features = module(features)
        return features["sentence_embedding"]
