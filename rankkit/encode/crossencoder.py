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
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from rankkit.encode.batching import inverse_order, length_sorted_batches, right_padded
from rankkit.encode.device import choose_device
from rankkit.encode.models import model_display_name, read_json, resolve_model_dir
from rankkit.encode.precision import PRECISIONS, resolve_precision
from rankkit.errors import RankkitError

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


class CrossEncoder:
    """`precision` 'bf16' is for scoring only (see rankkit.encode.precision); a cross-encoder that
    will be trained stays 'fp32'."""

    def __init__(
        self,
        model: str | Path = "default",
        device: str | None = None,
        max_length: int | None = None,
        max_tokens: int = 4096,
        max_batch_size: int = 64,
        precision: str = "fp32",
    ):
        self.name = model_display_name(model)
        self.model_dir = resolve_model_dir(model)
        self.device = choose_device(device)
        self.precision = resolve_precision(precision, self.device)  # what a manifest records: never 'auto'
        dtype = PRECISIONS[self.precision]
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "newly initialised head" is expected from an encoder checkpoint
        try:
            self.model, loading = AutoModelForSequenceClassification.from_pretrained(
                self.model_dir, num_labels=1, output_loading_info=True
            )
        finally:
            hf_logging.set_verbosity(verbosity)
        # weights the folder lacks, beyond a pooler some encoders omit: the scoring head is new and random
        self.new_head = any("pooler" not in key for key in loading["missing_keys"])
        pad_with_eos(self.tokenizer, self.model, self.model_dir)
        self.model.to(self.device, dtype).eval()
        saved = self.tokenizer.model_max_length if self.tokenizer.model_max_length < 100_000 else None
        configured = (read_json(self.model_dir / "sentence_bert_config.json") or {}).get("max_seq_length")
        limit = max_length or configured or saved or DEFAULT_MAX_LENGTH
        self.max_length = min(limit, getattr(self.model.config, "max_position_embeddings", limit))
        self.max_tokens, self.max_batch_size = max_tokens, max_batch_size

    def logits(self, queries: Sequence[str], passages: Sequence[str]) -> torch.Tensor:
        """Scores of pairs with gradients, for training: shape [len(queries)]. Computed in
        length-sorted chunks within the token budget, so a short pair is never padded to the
        longest pair of a training batch."""
        if not queries:
            return torch.zeros(0, device=self.device)
        encoded = self.tokenizer(
            list(queries),
            list(passages),
            truncation="only_second",
            max_length=self.max_length,
            return_attention_mask=False,
        )
        lengths = [len(ids) for ids in encoded["input_ids"]]
        chunks, order = [], []
        for batch in length_sorted_batches(lengths, self.max_tokens, self.max_batch_size):
            inputs = right_padded(encoded, batch, self.tokenizer.pad_token_id or 0, self.device)
            chunks.append(self.model(**inputs).logits.squeeze(-1))
            order.extend(batch)
        return torch.cat(chunks)[torch.tensor(inverse_order(order), device=self.device)]

    @torch.inference_mode()
    def score(self, pairs: Sequence[tuple[str, str]], show_progress: bool = False) -> np.ndarray:
        """Scores (logits) of (query, passage) pairs, batched by similar length, in input order."""
        out = np.zeros(len(pairs), dtype=np.float32)
        if not pairs:
            return out
        lengths = [len(q) + len(p) for q, p in pairs]  # characters: a cheap proxy to sort by
        budget = self.max_tokens * 4  # about 4 characters per token
        with tqdm(total=len(pairs), desc="scoring pairs", disable=not show_progress) as progress:
            for batch in length_sorted_batches(lengths, budget, self.max_batch_size):
                scores = self.logits([pairs[i][0] for i in batch], [pairs[i][1] for i in batch])
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
