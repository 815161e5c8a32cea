"""Task-adaptive pretraining (after Gururangan et al., "Don't Stop Pretraining", ACL 2020): continue
an encoder's masked-language-model training on the task's own unlabelled text before fine-tuning.

The packaged encoders learnt English WordPiece in English contexts; romanised Bangla reaches them
as subword fragments they never saw together. A few epochs of masked-token prediction over the
reviews (normalised as the classifier will see them) adapt the encoder to those fragments. The
result is a transformers folder (encoder, masked-LM head and tokenizer) that `rankkit sentiment
train --model` fine-tunes like any checkpoint. It runs through rankkit's training loop, so it
has the same checkpoints, resume, log and precision options as the other trainers.

A sentence-transformers checkpoint such as all-MiniLM-L6-v2 ships without a masked-LM head: a new
one is initialised (its first epoch's loss is high while it learns), and its decoder shares the
word embeddings as usual.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rankkit.encode.batching import length_sorted_batches
from rankkit.encode.device import choose_device
from rankkit.encode.models import resolve_model_dir
from rankkit.errors import RankkitError
from rankkit.sentiment.config import AdaptConfig
from rankkit.sentiment.normalize import normalize_all
from rankkit.train.config import TrainConfig, schedule_of
from rankkit.train.loop import fit


def _masked_lm_head(model: torch.nn.Module) -> torch.nn.Module:
    """The module that maps hidden states to vocabulary logits: a masked-LM model's one child
    besides its encoder (BERT's `cls`, RoBERTa's and MPNet's `lm_head`)."""
    heads = [module for name, module in model.named_children() if name != model.base_model_prefix]
    if len(heads) != 1:
        raise RankkitError(
            f"{type(model).__name__}: no single masked-LM head beside the encoder. "
            "Fix: pass a BERT-, RoBERTa- or MPNet-style encoder as --model"
        )
    return heads[0]


class MaskedLMTask:
    """The training loop's task: masked-token prediction loss over a batch of tokenised texts."""

    def __init__(self, config: AdaptConfig):
        from transformers import AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling

        folder = resolve_model_dir(config.model)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        if self.tokenizer.mask_token is None:
            raise RankkitError(
                f"{config.model}: its tokenizer has no mask token, so it cannot be trained as a masked "
                "language model. Fix: pass a BERT-style encoder as --model"
            )
        torch.manual_seed(config.seed)  # a new masked-LM head's initial weights (the loop seeds only later)
        self.model = AutoModelForMaskedLM.from_pretrained(folder)
        self.head = _masked_lm_head(self.model)
        self.device = choose_device(config.device)
        self.model.to(self.device)
        self.collator = DataCollatorForLanguageModeling(self.tokenizer, mlm_probability=config.mask_probability)
        self.parts: dict[str, torch.nn.Module] = {"encoder": self.model}
        self.learning_rates = {"encoder": config.lr}

    def loss(self, batch: list[list[int]]) -> dict[str, torch.Tensor]:
        features = {k: v.to(self.device) for k, v in self.collator([{"input_ids": ids} for ids in batch]).items()}
        labels = features.pop("labels")
        masked = labels != -100
        hidden = self.model.base_model(**features).last_hidden_state
        if not masked.any():  # no token of this batch drawn for masking
            return {"encoder": hidden.sum() * 0.0}
        # the head predicts the masked positions only: its vocabulary-sized product over the other
        # ~85% of positions would be thrown away, and the loss is the same as the model's own
        logits = self.head(hidden[masked])
        return {"encoder": torch.nn.functional.cross_entropy(logits.float(), labels[masked])}

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)


def adapt_encoder(texts: Sequence[str], config: AdaptConfig) -> Path:
    """Continue masked-LM training of config.model on `texts`; returns the adapted model folder."""
    texts = [t for t in normalize_all(list(texts), config.normalize) if t.strip()]
    if not texts:
        raise RankkitError("no text to adapt the encoder on. Fix: pass files with non-empty reviews to --reviews")
    task = MaskedLMTask(config)
    token_ids = task.tokenizer(texts, truncation=True, max_length=config.max_length, return_attention_mask=False)[
        "input_ids"
    ]
    # texts of similar length share a batch (little padding); the batches' order is shuffled per epoch
    fixed = list(
        length_sorted_batches([len(ids) for ids in token_ids], config.batch_size * config.max_length, config.batch_size)
    )

    def epoch_batches(epoch: int) -> list[list[list[int]]]:
        order = np.random.default_rng([config.seed, epoch]).permutation(len(fixed))
        return [[token_ids[i] for i in fixed[b]] for b in order]

    loop_config = TrainConfig(
        output=config.output,
        model=config.model,
        epochs=config.epochs,
        **schedule_of(config),
        device=config.device,
        precision=config.precision,
        max_length=config.max_length,
        overwrite=config.overwrite,
    )
    return fit(task, epoch_batches, loop_config)  # type: ignore[arg-type]


__all__ = ["AdaptConfig", "MaskedLMTask", "adapt_encoder"]
