"""Sentiment classifiers behind one interface: P(positive) for texts, and a folder to save.

- `TfidfSentiment`: character n-gram TF-IDF and logistic regression (scikit-learn), seconds to fit.
- `TransformerSentiment`: a transformers sequence classifier (two labels, negative and positive)
  fine-tuned from an encoder checkpoint; its folder loads in transformers'
  AutoModelForSequenceClassification. Its `encode` gives normalised embeddings from the last
  hidden states, the space in which opposite-label neighbours are mined and the contrastive term
  acts: `pooling="cls"`, the first token's state, which the classification head reads (BERT's
  pooler, RoBERTa's and MPNet's heads all start from it), or `"mean"`, the mean over the tokens
  (the sentence-transformers embedding of the packaged models).

Every model folder holds sentiment.json: the kind, whether texts are normalised before they reach
the model (prediction repeats the training choice), and the label names.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from rankkit.data.files import atomic_write
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
from rankkit.encode.models import model_fingerprint, resolve_model_dir
from rankkit.encode.precision import PRECISIONS
from rankkit.encode.quality_gate import score_agreement
from rankkit.errors import RankkitError
from rankkit.options import TORCH_INFERENCE, Inference
from rankkit.sentiment.config import DEFAULT_MAX_LENGTH
from rankkit.sentiment.data import LABEL_NAMES
from rankkit.sentiment.normalize import normalize_all

META_FILE = "sentiment.json"
FORMAT = "rankkit-sentiment"
TFIDF_FILE = "tfidf.pkl"
POOLINGS = ("cls", "mean")


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token embeddings over the attention mask, by sentence-transformers' own Pooling."""
    from sentence_transformers.models import Pooling

    features = {"token_embeddings": token_embeddings, "attention_mask": attention_mask}
    return Pooling(token_embeddings.shape[-1], pooling_mode="mean")(features)["sentence_embedding"]


class SentimentModel(Protocol):
    normalize: bool

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def save(self, folder: Path) -> None: ...


def _write_meta(folder: Path, kind: str, normalize: bool, **extra: object) -> None:
    with atomic_write(folder / META_FILE) as out:
        json.dump(
            {"format": FORMAT, "kind": kind, "normalize": normalize, "labels": list(LABEL_NAMES), **extra},
            out,
            indent=2,
        )


CV_FOLDS = 5  # TfidfSentiment's cross-validation: fewer when a label has fewer reviews
MIN_PER_LABEL = 2  # the fewest reviews of each label that cross-validation can split


def cv_folds(labels: np.ndarray) -> int:
    """The folds of TfidfSentiment's stratified cross-validation: CV_FOLDS, or as many as the
    rarer label has reviews (each fold holds one of each); too few is one error saying how many
    are needed (scikit-learn's says n_splits)."""
    counts = np.bincount(labels, minlength=len(LABEL_NAMES))
    fewest = int(counts.min())
    if fewest < MIN_PER_LABEL:
        held = ", ".join(f"{int(n)} {name}" for n, name in zip(counts, LABEL_NAMES))
        raise RankkitError(
            f"--method tfidf chooses its regularisation by cross-validation, which needs at least "
            f"{MIN_PER_LABEL} training reviews of each label; these hold {held}. Fix: add reviews of "
            f"the rarer label (at least {CV_FOLDS} of each for the usual {CV_FOLDS}-fold choice)"
        )
    if fewest < CV_FOLDS:
        print(
            f"warning: the rarer label has {fewest} training reviews, so --method tfidf chooses its "
            f"regularisation by {fewest}-fold cross-validation instead of {CV_FOLDS}-fold; a model from "
            f"so few reviews is a rough one. Fix: add reviews (at least {CV_FOLDS} of each label)",
            file=sys.stderr,
        )
    return min(CV_FOLDS, fewest)


class TfidfSentiment:
    """Character n-grams within word boundaries (2-5 letters, sublinear TF, seen in at least two
    reviews) fed to logistic regression whose regularisation is chosen by 5-fold cross-validation
    on the training reviews alone (fewer folds when a label has fewer reviews: see cv_folds).
    Character n-grams match spelling variants of romanised Bangla ("valo", "bhalo", "valoo") by
    their shared pieces."""

    def __init__(self, normalize: bool = True, seed: int = 0):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV
        from sklearn.pipeline import make_pipeline

        self.normalize = normalize
        self.pipeline = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, lowercase=False),
            GridSearchCV(
                LogisticRegression(max_iter=2000, random_state=seed),
                {"C": list(np.logspace(-2, 3, 11))},
                cv=CV_FOLDS,
                scoring="neg_log_loss",
            ),
        )

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> "TfidfSentiment":
        targets = np.asarray(labels)
        self.pipeline.set_params(gridsearchcv__cv=cv_folds(targets))
        self.pipeline.fit(normalize_all(list(texts), self.normalize), targets)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return self.pipeline.predict_proba(normalize_all(list(texts), self.normalize))[:, 1]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / TFIDF_FILE, "wb") as out:
            pickle.dump(self.pipeline, out)
        _write_meta(folder, "tfidf", self.normalize)

    @classmethod
    def load(cls, folder: Path, meta: dict) -> "TfidfSentiment":
        model = cls.__new__(cls)
        model.normalize = bool(meta["normalize"])
        with open(folder / TFIDF_FILE, "rb") as handle:  # a folder this library wrote: trusted like any pickle
            model.pipeline = pickle.load(handle)
        return model


class TransformerSentiment:
    """A two-label transformers sequence classifier with the batching of rankkit's encoders.

    Args:
        model: 'default' (the packaged all-MiniLM-L6-v2), a folder or a hub id: an encoder
            checkpoint (a new classification head is initialised) or a saved classifier.
        device: 'auto', 'cpu' or 'cuda[:N]'.
        max_length: token limit (reviews are short; 128 keeps all but the longest whole).
        precision: 'fp32', or 'bf16' for prediction only.
        pooling: the embeddings `forward` and `encode` give: 'cls' or 'mean' (see the module).
    """

    def __init__(
        self,
        model: str | Path = "default",
        device: str | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        normalize: bool = True,
        precision: str = "fp32",
        max_tokens: int = 4096,
        max_batch_size: int = 64,
        pooling: str = "mean",
        inference: Inference = TORCH_INFERENCE,
    ):
        from transformers import AutoTokenizer

        if pooling not in POOLINGS:
            raise RankkitError(f"unknown pooling {pooling!r}. Fix: use one of {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.model_dir = resolve_model_dir(model)
        self.device = backend_device(inference, device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        labels = dict(enumerate(LABEL_NAMES))
        self.model, new_head = sequence_classifier(
            self.model_dir, num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()}
        )
        require_trained_head(
            new_head, self.model_dir, inference, "classification", "sentiment classifier", "rankkit sentiment train"
        )
        precision = backend_precision(inference, precision, self.device)
        self.model.to(self.device, torch.float32 if inference.exported else PRECISIONS[precision]).eval()
        limit = getattr(self.model.config, "max_position_embeddings", max_length)
        self.max_length = min(max_length, limit)
        self.normalize, self.max_tokens, self.max_batch_size = normalize, max_tokens, max_batch_size
        self.classifier: Runner | None = None  # predict_proba's exported forward pass, if any
        if inference.exported:
            texts = sample_texts()
            self.classifier = exported_runner(
                self.model,
                model_dir=self.model_dir,
                fingerprint=model_fingerprint(self.model_dir),
                task="sequence-classification",
                input_names=classifier_inputs(self.tokenizer),
                inference=inference,
                precision=precision,
                sample=texts,
                sample_inputs=lambda: padded_batches(
                    *self._tokenize(texts), self.max_tokens, self.max_batch_size, self._pad_id, self.device
                ),
                measure=lambda forward: score_agreement(
                    self._probabilities(texts, TorchForward(self.model, "logits")),
                    self._probabilities(texts, forward),
                    [range(len(texts))],
                ),
                what=f"sentiment model {self.model_dir} on {inference.backend}",
            )

    @property
    def _pad_id(self) -> int:
        return self.tokenizer.pad_token_id or 0

    @torch.inference_mode()
    def _probabilities(self, texts: Sequence[str], forward: Forward) -> np.ndarray:
        """P(positive) of `texts` through the classifier's forward pass `forward`."""
        encoded, lengths = self._tokenize(texts)
        out = np.zeros(len(texts), dtype=np.float32)
        for batch in length_sorted_batches(lengths, self.max_tokens, self.max_batch_size):
            logits = forward(right_padded(encoded, batch, self._pad_id, self.device)).float()
            out[batch] = torch.softmax(logits, -1)[:, 1].cpu().numpy()
        return out

    def _tokenize(self, texts: Sequence[str]) -> tuple[dict, list[int]]:
        encoded = self.tokenizer(
            normalize_all(list(texts), self.normalize),
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=False,
        )
        return dict(encoded), [len(ids) for ids in encoded["input_ids"]]

    def _run(self, encoded: dict, batch: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = right_padded(encoded, batch, self.tokenizer.pad_token_id or 0, self.device)
        output = self.model(**inputs, output_hidden_states=True)
        states = output.hidden_states[-1].float()
        embeddings = states[:, 0] if self.pooling == "cls" else mean_pool(states, inputs["attention_mask"])
        return output.logits.float(), torch.nn.functional.normalize(embeddings, dim=-1)

    def forward(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [n, 2] and normalised embeddings [n, hidden] of `texts`, with gradients, in input
        order (computed in length-sorted chunks, so short reviews are not padded to long ones)."""
        encoded, lengths = self._tokenize(texts)
        logits, embeddings, order = [], [], []
        for batch in length_sorted_batches(lengths, self.max_tokens, self.max_batch_size):
            chunk_logits, chunk_embeddings = self._run(encoded, batch)
            logits.append(chunk_logits)
            embeddings.append(chunk_embeddings)
            order.extend(batch)
        back = torch.tensor(inverse_order(order), device=self.device)
        return torch.cat(logits)[back], torch.cat(embeddings)[back]

    @torch.inference_mode()
    def _outputs(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        training = self.model.training
        self.model.eval()
        try:
            if not texts:
                return np.zeros(0), np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
            logits, embeddings = self.forward(texts)
            return torch.softmax(logits, -1)[:, 1].cpu().numpy(), embeddings.cpu().numpy().astype(np.float32)
        finally:
            self.model.train(training)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(positive) of each text (dropout off), on the model's backend."""
        if self.classifier is not None:
            return self._probabilities(texts, self.classifier.forward)
        return self._outputs(texts)[0]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised embeddings [n, hidden] by `pooling` (float32, dropout off)."""
        return self._outputs(texts)[1]

    def save(self, folder: Path, **extra: object) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        _write_meta(folder, "transformer", self.normalize, max_length=self.max_length, **extra)


def sentiment_model_folder(folder: str | Path) -> Path:
    """The folder holding sentiment.json: `folder` itself or its model/ (a training run's folder)."""
    folder = Path(folder)
    if not (folder / META_FILE).is_file() and (folder / "model" / META_FILE).is_file():
        folder = folder / "model"
    if not (folder / META_FILE).is_file():
        raise RankkitError(
            f"{folder}: no {META_FILE}, so not a sentiment model folder. "
            "Fix: pass the folder `rankkit sentiment train` wrote (or its model/ folder)"
        )
    return folder


def load_sentiment_model(
    folder: str | Path, device: str | None = None, precision: str = "fp32", inference: Inference = TORCH_INFERENCE
) -> SentimentModel:
    """The model a `rankkit sentiment train` folder holds (its model/ folder, or the run folder above it)."""
    folder = sentiment_model_folder(folder)
    meta = json.loads((folder / META_FILE).read_text())
    if meta.get("format") != FORMAT or meta.get("kind") not in ("tfidf", "transformer"):
        raise RankkitError(
            f"{folder / META_FILE}: not a rankkit sentiment model description. "
            "Fix: pass a folder written by `rankkit sentiment train`"
        )
    if meta["kind"] == "tfidf":
        return TfidfSentiment.load(folder, meta)
    return TransformerSentiment(
        folder,
        device=device,
        max_length=int(meta["max_length"]),
        normalize=bool(meta["normalize"]),
        precision=precision,
        inference=inference,
    )
