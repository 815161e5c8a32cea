"""SPLADE encoder: a masked-language model's logits turned into sparse term weights, one
{vocabulary token: weight} per text, for an impact index (pyserini's integer impacts: `quantize`).

Two folder layouts are SPLADE models, the ones sentence-transformers' `SparseEncoder` loads as a
masked-language model followed by `SpladePooling`: a transformers *ForMaskedLM folder without
modules.json (SparseEncoder then pools with max and relu), and a SparseEncoder folder whose
modules.json lists that transformer (MLMTransformer, or Transformer with the fill-mask task) and a
SpladePooling module, whose config.json names the pooling (max or sum) and activation (relu or
log1p_relu). The stack is loaded by sentence-transformers itself, so max length, prompts and
max_active_dims are read where it reads them; rankkit then runs the model in its length-sorted
token-budget batches and pools the logits as SpladePooling does. Weights equal
`SparseEncoder(folder).encode_query / encode_document` within float rounding.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

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
from rankkit.encode.batching import inverse_order, length_sorted_batches, padded_batches, right_padded
from rankkit.encode.biencoder import UNBOUNDED_LENGTH, Role
from rankkit.encode.models import model_display_name, model_fingerprint, read_json, resolve_model_dir
from rankkit.encode.precision import PRECISIONS
from rankkit.encode.quality_gate import vector_agreement
from rankkit.encode.stack import resolve_prompt
from rankkit.errors import RankkitError
from rankkit.options import TORCH_INFERENCE, Inference

MLM_ARCHITECTURE_SUFFIX = "ForMaskedLM"
SPLADE_POOLING = "SpladePooling"
# pyserini's impacts: weights taken to span [0, 5] and spread over 256 integer levels
IMPACT_WEIGHT_RANGE = 5
IMPACT_LEVELS = 256


def _module_class_name(entry: dict) -> str:
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


def _is_mlm_module(folder: Path, entry: dict) -> bool:
    """Whether a modules.json entry is a transformer that outputs masked-language-model logits."""
    name = _module_class_name(entry)
    if name == "MLMTransformer":
        return True
    config = read_json(folder / entry.get("path", "") / "sentence_bert_config.json") or {}
    return name == "Transformer" and config.get("transformer_task") == "fill-mask"


def splade_problem(folder: Path) -> str | None:
    """Why `folder` is not a SPLADE model rankkit can run, or None when it is one."""
    modules = read_json(folder / "modules.json")
    if modules is not None:
        names = [_module_class_name(entry) for entry in modules]
        if len(modules) == 2 and _is_mlm_module(folder, modules[0]) and names[1] == SPLADE_POOLING:
            return None
        return f"its modules.json stack is {' + '.join(names) or 'empty'}, not a masked-language model + SpladePooling"
    architectures = (read_json(folder / "config.json") or {}).get("architectures") or []
    if any(str(name).endswith(MLM_ARCHITECTURE_SUFFIX) for name in architectures):
        return None
    return f"config.json's architectures are {architectures}, not a *{MLM_ARCHITECTURE_SUFFIX} model"


def is_splade_model(folder: str | Path) -> bool:
    """Whether `folder` holds a SPLADE model (see the module docstring for the two layouts)."""
    return splade_problem(Path(folder)) is None


def quantize(weights: dict[str, float]) -> dict[str, int]:
    """pyserini's integer impacts for term weights (pyserini.encode._splade, 1.6.0): round(weight /
    5 * 256), rounding halves to even as Python does; terms that round to 0 are dropped, since an
    impact index has nothing to store for them."""
    impacts = {token: round(weight / IMPACT_WEIGHT_RANGE * IMPACT_LEVELS) for token, weight in weights.items()}
    return {token: impact for token, impact in impacts.items() if impact != 0}


def splade_pool(logits: torch.Tensor, attention_mask: torch.Tensor, pooling: str, activation: str) -> torch.Tensor:
    """SpladePooling's float32 [batch, vocab] weights from MLM logits [batch, tokens, vocab]:
    log(1 + relu(x)) (applied twice for log1p_relu) of every token's logits, max- or sum-pooled.

    Padding counts as a logit of 0, which the activation maps to 0, as in SpladePooling. The
    activation is non-decreasing, so max pooling takes the max of the raw logits first: the same
    weights, at one activation per text instead of one per token. `logits` is overwritten."""
    logits.masked_fill_(attention_mask.unsqueeze(-1) == 0, 0)
    if pooling == "max":
        return _activate(logits.amax(dim=1).float(), activation)
    return _activate(logits.float(), activation).sum(dim=1)


def _activate(values: torch.Tensor, activation: str) -> torch.Tensor:
    values = values.relu_().log1p_()
    return values.log1p_() if activation == "log1p_relu" else values


class SpladeEncoder:
    """Encode queries and passages into sparse term weights as sentence-transformers' SparseEncoder
    would (`encode_query` and `encode_document`), in rankkit's length-sorted token-budget batches.

    Args:
        model: 'splade-tiny' (once fetched with `rankkit models fetch splade-tiny`), a model folder
            or a hub id.
        device: 'auto' (cuda when present), 'cpu' or 'cuda[:N]'.
        max_length: token limit; defaults to the model's, as sentence-transformers reads it.
        max_tokens: token budget of one batch (rows x padded length); the logits of a batch take
            max_tokens x vocabulary size floats.
        precision: 'fp32', or 'bf16' (see rankkit.encode.precision); weights are pooled in float32.
        inference: the backend that runs the model (rankkit.encode.backend) and its quality gate,
            measured on `sample` texts (default: rankkit's sample passages).
    """

    def __init__(
        self,
        model: str | Path,
        device: str | None = None,
        max_length: int | None = None,
        max_tokens: int = 2048,
        max_batch_size: int = 64,
        precision: str = "fp32",
        inference: Inference = TORCH_INFERENCE,
        sample: Sequence[str] | None = None,
    ):
        self.name = model_display_name(model)
        self.model_dir = resolve_model_dir(model)
        problem = splade_problem(self.model_dir)
        if problem is not None:
            raise RankkitError(
                f"{self.model_dir}: not a SPLADE model ({problem}). Fix: pass a masked-language model "
                "folder (a *ForMaskedLM architecture, e.g. splade-tiny) or a sentence-transformers "
                "SparseEncoder folder with a SpladePooling module"
            )
        self.device = backend_device(inference, device)
        self.precision = backend_precision(inference, precision, self.device)  # recorded: never auto
        dtype = torch.float32 if inference.exported else PRECISIONS[self.precision]
        stack = _load_sparse_encoder(self.model_dir, self.device)
        transformer, head = stack[0], stack[1]
        self.model = transformer.auto_model.to(self.device, dtype).eval()
        self.tokenizer = transformer.tokenizer
        self.pooling: str = head.pooling_strategy
        self.activation: str = head.activation_function
        self.max_active_dims: int | None = stack.max_active_dims
        if max_length is not None:
            stack.max_seq_length = max_length
        limit = stack.max_seq_length or UNBOUNDED_LENGTH
        self.max_length = min(limit, getattr(self.model.config, "max_position_embeddings", limit))
        self.prompts = {
            role: resolve_prompt(stack.prompts, stack.default_prompt_name, role, None) for role in ("query", "passage")
        }
        self.vocabulary = _vocabulary(self.tokenizer, self.model.config.vocab_size)
        self.max_tokens = max_tokens
        self.max_batch_size = max_batch_size
        self.runner = Runner(TorchForward(self.model, "logits"), precision=self.precision)
        if inference.exported:
            texts = list(sample) if sample else sample_texts()
            torch_forward = TorchForward(self.model, "logits")
            self.runner = exported_runner(
                self.model,
                model_dir=self.model_dir,
                fingerprint=self.files_fingerprint,
                task="fill-mask",
                input_names=("input_ids", "attention_mask"),
                inference=inference,
                precision=self.precision,
                sample=texts,
                sample_inputs=lambda: self._sample_batches(texts),
                measure=lambda forward: vector_agreement(
                    self._pooled(texts, torch_forward), self._pooled(texts, forward)
                ),
                what=f"SPLADE model {self.name} on {inference.backend}",
            )

    @functools.cached_property
    def files_fingerprint(self) -> str:
        """The model files' fingerprint (model_fingerprint), read once: it hashes every weight."""
        return model_fingerprint(self.model_dir)

    @functools.cached_property
    def fingerprint(self) -> str:
        """The model files' fingerprint joined with the pooling settings, which live in a module
        folder that model_fingerprint does not read (a sum-pooled copy must not match)."""
        digest = hashlib.sha256(self.files_fingerprint.encode())
        digest.update(json.dumps([self.pooling, self.activation, self.max_active_dims]).encode())
        return digest.hexdigest()[:16]

    @torch.inference_mode()
    def encode(
        self,
        texts: Sequence[str],
        role: Role = "passage",
        *,
        show_progress: bool = False,
        desc: str = "encoding",
        on_batch: Callable[[list[int]], None] | None = None,
    ) -> list[dict[str, float]]:
        """{token: weight} of each text's non-zero vocabulary entries, in input order. `on_batch` is
        called with the indices of each batch once it is encoded (for a caller's progress bar)."""
        if not texts:
            return []
        encoded, lengths = self._tokenize(texts, role)
        rows: list[dict[str, float]] = []
        order: list[int] = []
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not show_progress) as progress:
            for batch in length_sorted_batches(lengths, self.max_tokens, self.max_batch_size):
                rows.extend(self._weights(self._forward(encoded, batch, self.runner.forward)))
                order.extend(batch)
                progress.update(len(batch))
                if on_batch is not None:
                    on_batch(batch)
        return [rows[row] for row in inverse_order(order)]

    def _tokenize(self, texts: Sequence[str], role: Role) -> tuple[dict[str, list[list[int]]], list[int]]:
        """Unpadded token ids of the prompted `texts` and their lengths."""
        prompt = self.prompts[role]
        encoded = dict(
            self.tokenizer(
                [prompt + text for text in texts] if prompt else list(texts),
                truncation=True,
                max_length=self.max_length,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
        )
        return encoded, [len(ids) for ids in encoded["input_ids"]]

    def _forward(self, encoded: dict[str, list[list[int]]], batch: list[int], forward: Forward) -> torch.Tensor:
        """Pooled float32 weights [len(batch), vocab] of the texts `batch` indexes."""
        features = right_padded(encoded, batch, self.tokenizer.pad_token_id or 0, self.device)
        pooled = splade_pool(forward(features).float(), features["attention_mask"], self.pooling, self.activation)
        if self.max_active_dims is not None and self.max_active_dims < pooled.shape[1]:
            top = pooled.topk(self.max_active_dims, dim=1)  # as SparseEncoder keeps its top max_active_dims
            pooled = torch.zeros_like(pooled).scatter_(1, top.indices, top.values)
        return pooled.cpu()

    @torch.inference_mode()
    def _pooled(self, texts: Sequence[str], forward: Forward) -> np.ndarray:
        """Dense pooled weights of passages `texts` through `forward` (the quality gate's comparison)."""
        encoded, lengths = self._tokenize(texts, "passage")
        out = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float32)
        for batch in length_sorted_batches(lengths, self.max_tokens, self.max_batch_size):
            out[batch] = self._forward(encoded, batch, forward).numpy()
        return out

    def _sample_batches(self, texts: Sequence[str]) -> list[dict[str, torch.Tensor]]:
        """Padded model inputs of passages `texts` as encode batches them (OpenVINO's int8 calibration)."""
        encoded, lengths = self._tokenize(texts, "passage")
        pad = self.tokenizer.pad_token_id or 0
        return padded_batches(encoded, lengths, self.max_tokens, self.max_batch_size, pad, self.device)

    def _weights(self, pooled: torch.Tensor) -> list[dict[str, float]]:
        out = []
        for row in pooled:
            ids = row.nonzero().flatten()
            out.append(dict(zip((self.vocabulary[i] for i in ids.tolist()), row[ids].tolist())))
        return out


def _vocabulary(tokenizer, size: int) -> list[str]:
    """The token string of each of the model's `size` vocabulary ids; ids past the tokenizer's own
    vocabulary (models whose embedding matrix is padded to a round size) are named "[id:N]"."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
    return [token if token is not None else f"[id:{i}]" for i, token in enumerate(tokens)]


def _load_sparse_encoder(model_dir: Path, device: torch.device):
    from sentence_transformers import SparseEncoder

    return SparseEncoder(str(model_dir), device=str(device), local_files_only=True)
