"""Cross-encoder: scores (query, passage) pairs with one transformer and a scalar head.

Starts from any transformers checkpoint: a folder without a classification head (a bi-encoder,
a plain BERT) gets a new, randomly initialised scoring head. Saved folders load in
sentence-transformers' CrossEncoder and transformers' AutoModelForSequenceClassification.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rankkit.encode.backend import (
    Forward,
    Runner,
    TorchForward,
    backend_device,
    backend_precision,
    classifier_inputs,
    exported_runner,
    require_trained_head,
    sample_texts,
    sequence_classifier,
)
from rankkit.encode.batching import inverse_order, length_sorted_batches, padded_batches, right_padded
from rankkit.encode.models import model_display_name, model_fingerprint, read_json, resolve_model_dir
from rankkit.encode.precision import PRECISIONS
from rankkit.encode.quality_gate import score_agreement
from rankkit.errors import RankkitError
from rankkit.options import TORCH_INFERENCE, Inference

DEFAULT_MAX_LENGTH = 256
IDENTITY_ACTIVATION = "torch.nn.modules.linear.Identity"


def pad_with_eos(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, model_dir: Path) -> None:
    """GPT-2-style models have no padding token, and their sequence-classification head finds
    each pair's last token through it ("Cannot handle batch sizes > 1 if no padding token is
    defined"): they pad with their end-of-sequence token, as transformers' docs advise, and save
    it so that the trained folder pads the same elsewhere. A model with neither is refused."""
    if tokenizer.pad_token is not None:
        return
    if tokenizer.eos_token is None or tokenizer.eos_token_id is None:
        raise RankkitError(
            f"{model_dir}: the tokenizer has no padding token and no end-of-sequence token to pad "
            "with, so pairs of different lengths cannot be scored together. Fix: give its tokenizer a "
            "pad_token (tokenizer_config.json), or use another model"
        )
    tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id


GATE_QUERIES, GATE_PASSAGES, GATE_QUERY_WORDS = 8, 32, 8  # the quality gate's pairs, from sample texts


class CrossEncoder:
    """`precision` 'bf16' is for scoring only (see rankkit.encode.precision); a cross-encoder that
    will be trained stays 'fp32'. `inference` picks the backend that scores (rankkit.encode.backend);
    the quality gate of an export scores pairs made from `sample` texts (default: rankkit's sample
    passages): the first words of a few of them as queries, against the others."""

    def __init__(
        self,
        model: str | Path = "default",
        device: str | None = None,
        max_length: int | None = None,
        max_tokens: int = 4096,
        max_batch_size: int = 64,
        precision: str = "fp32",
        inference: Inference = TORCH_INFERENCE,
        sample: Sequence[str] | None = None,
    ):
        self.name = model_display_name(model)
        self.model_dir = resolve_model_dir(model)
        self.device = backend_device(inference, device)
        self.precision = backend_precision(inference, precision, self.device)  # recorded: never auto
        dtype = torch.float32 if inference.exported else PRECISIONS[self.precision]
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model, self.new_head = sequence_classifier(self.model_dir, num_labels=1)
        pad_with_eos(self.tokenizer, self.model, self.model_dir)
        self.model.to(self.device, dtype).eval()
        saved = self.tokenizer.model_max_length if self.tokenizer.model_max_length < 100_000 else None
        configured = (read_json(self.model_dir / "sentence_bert_config.json") or {}).get("max_seq_length")
        limit = max_length or configured or saved or DEFAULT_MAX_LENGTH
        self.max_length = min(limit, getattr(self.model.config, "max_position_embeddings", limit))
        self.max_tokens, self.max_batch_size = max_tokens, max_batch_size
        self.runner = Runner(TorchForward(self.model, "logits"), precision=self.precision)
        require_trained_head(
            self.new_head, self.model_dir, inference, "scoring", "cross-encoder", "rankkit train reranker"
        )
        if inference.exported:
            self.runner = self._exported_runner(inference, list(sample) if sample else sample_texts())

    def _exported_runner(self, inference: Inference, texts: list[str]) -> Runner:
        queries = [" ".join(text.split()[:GATE_QUERY_WORDS]) for text in texts[:GATE_QUERIES]]
        passages = texts[:GATE_PASSAGES]
        pairs = [(query, passage) for query in queries for passage in passages]
        groups = [range(i * len(passages), (i + 1) * len(passages)) for i in range(len(queries))]
        torch_forward = TorchForward(self.model, "logits")

        def sample_inputs() -> list[dict[str, torch.Tensor]]:
            encoded = self._tokenize([q for q, _ in pairs], [p for _, p in pairs])
            lengths = [len(ids) for ids in encoded["input_ids"]]
            pad = self.tokenizer.pad_token_id or 0
            return padded_batches(encoded, lengths, self.max_tokens, self.max_batch_size, pad, self.device)

        return exported_runner(
            self.model,
            model_dir=self.model_dir,
            fingerprint=model_fingerprint(self.model_dir),
            task="sequence-classification",
            input_names=classifier_inputs(self.tokenizer),
            inference=inference,
            precision=self.precision,
            sample=texts,
            sample_inputs=sample_inputs,
            measure=lambda forward: score_agreement(
                self.score(pairs, forward=torch_forward), self.score(pairs, forward=forward), groups
            ),
            what=f"cross-encoder {self.name} on {inference.backend}",
        )

    def _tokenize(self, queries: Sequence[str], passages: Sequence[str]) -> dict[str, list[list[int]]]:
        """Unpadded token ids of the pairs cut to max_length, as sentence-transformers cuts them: the
        longer text loses tokens first, so the passage is cut unless the query is long too (a query
        longer than max_length is cut with it, where cutting only the passage would fail)."""
        return dict(
            self.tokenizer(
                list(queries),
                list(passages),
                truncation="longest_first",
                max_length=self.max_length,
                return_attention_mask=False,
            )
        )

    def logits(self, queries: Sequence[str], passages: Sequence[str], forward: Forward | None = None) -> torch.Tensor:
        """Scores of pairs with gradients, for training: shape [len(queries)]. Computed in
        length-sorted chunks within the token budget, so a short pair is never padded to the
        longest pair of a training batch. `forward`: another forward pass than the encoder's."""
        if not queries:
            return torch.zeros(0, device=self.device)
        encoded = self._tokenize(queries, passages)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        chunks, order = [], []
        for batch in length_sorted_batches(lengths, self.max_tokens, self.max_batch_size):
            inputs = right_padded(encoded, batch, self.tokenizer.pad_token_id or 0, self.device)
            chunks.append((forward or self.runner.forward)(inputs).squeeze(-1))
            order.extend(batch)
        return torch.cat(chunks)[torch.tensor(inverse_order(order), device=self.device)]

    @torch.inference_mode()
    def score(
        self, pairs: Sequence[tuple[str, str]], show_progress: bool = False, forward: Forward | None = None
    ) -> np.ndarray:
        """Scores (logits) of (query, passage) pairs, batched by similar length, in input order."""
        out = np.zeros(len(pairs), dtype=np.float32)
        if not pairs:
            return out
        lengths = [len(q) + len(p) for q, p in pairs]  # characters: a cheap proxy to sort by
        budget = self.max_tokens * 4  # about 4 characters per token
        with tqdm(total=len(pairs), desc="scoring pairs", disable=not show_progress) as progress:
            for batch in length_sorted_batches(lengths, budget, self.max_batch_size):
                scores = self.logits([pairs[i][0] for i in batch], [pairs[i][1] for i in batch], forward)
                out[batch] = scores.float().cpu().numpy()
                progress.update(len(batch))
        return out

    def save(self, folder: str | Path) -> None:
        """Save as a transformers folder that sentence-transformers' CrossEncoder loads with an
        identity activation, so its predict() returns these scores (raw logits), not their sigmoid."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.config.sentence_transformers = {"activation_fn": IDENTITY_ACTIVATION}  # read by ST >= 4
        self.model.config.sbert_ce_default_activation_function = IDENTITY_ACTIVATION  # read by ST < 4
        self.model.save_pretrained(folder)
        # the max length it was trained with, read back by rankkit, sentence-transformers and transformers
        self.tokenizer.model_max_length = self.max_length
        self.tokenizer.save_pretrained(folder)
