"""Sentiment models: the supervised contrastive loss on hand-computed values, DBPM's
down-weighting, opposite-label mining through the core, training (a)-(d) on the tiny model, and
a saved classifier that round-trips through transformers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rankkit.errors import RankkitError
from rankkit.sentiment.dbpm import LossHistory
from rankkit.sentiment.mining import mine_opposite_label, negatives_by_review
from rankkit.sentiment.model import TransformerSentiment, load_sentiment_model
from rankkit.sentiment.normalize import normalize_all
from rankkit.sentiment.train import SentimentConfig, SentimentTask, train_sentiment
from rankkit.train.losses import supervised_contrastive_loss

TEXTS = [
    "valo product",
    "khub kharap",
    "bhalo laglo",
    "faltu jinis",
    "onek sundor",
    "ekdom baje",
    "darun jinis",
    "taka nosto",
    "perfect size",
    "bhanga chilo",
]
LABELS = [1, 0] * 5


# ---- the loss ------------------------------------------------------------------------------------


def test_supervised_contrastive_loss_by_hand():
    a1, a2, neighbour = [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]
    anchors = torch.tensor([a1, a2])
    pool = torch.tensor([a1, a2, neighbour])
    loss = supervised_contrastive_loss(
        anchors, torch.tensor([0, 1]), pool, torch.tensor([0, 1, 1]), torch.tensor([0, 1]), temperature=1.0
    )
    # a1 has no same-label item besides itself: left out. a2: positive `neighbour` (s = 0.8),
    # denominator over a1 (s = 0) and neighbour: -log(e^0.8 / (e^0 + e^0.8))
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-0.8)), rel=1e-6)


def test_pair_weights_scale_the_denominator_and_the_positives():
    anchors = torch.tensor([[0.0, 1.0]])
    pool = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
    labels = torch.tensor([1, 0, 1, 1])
    weights = torch.tensor([[1.0, 0.5, 1.0, 0.25]])
    loss = supervised_contrastive_loss(anchors, torch.tensor([1]), pool, labels, torch.tensor([0]), 0.5, weights)
    s = {"neg": 0.0 / 0.5, "p1": 0.8 / 0.5, "p2": 0.6 / 0.5}
    denominator = 0.5 * math.exp(s["neg"]) + math.exp(s["p1"]) + 0.25 * math.exp(s["p2"])
    expected = -(1.0 * (s["p1"] - math.log(denominator)) + 0.25 * (s["p2"] - math.log(denominator))) / 1.25
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_no_positive_anywhere_gives_zero_with_a_gradient():
    anchors = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = supervised_contrastive_loss(anchors, torch.tensor([1]), torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    loss.backward()
    assert loss.item() == 0.0 and anchors.grad is not None


def test_the_loss_falls_when_opposite_labels_move_apart():
    labels = torch.tensor([0, 0, 1])
    near = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [1.0, 0.0], [1.0, 0.2]]), dim=-1)
    far = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [1.0, 0.0], [-1.0, 0.2]]), dim=-1)
    own = torch.arange(3)
    assert supervised_contrastive_loss(far, labels, far, labels, own) < supervised_contrastive_loss(
        near, labels, near, labels, own
    )


# ---- DBPM ------------------------------------------------------------------------------------------


def test_dbpm_flags_examples_whose_mean_loss_is_an_outlier():
    history = LossHistory(10, k=2.0, weight=0.1, warmup=1)
    assert history.weights(0).tolist() == [1.0] * 10  # no history yet
    history.record(0, list(range(10)), [0.1] * 9 + [5.0])
    weights = history.weights(1)
    assert weights.tolist() == [1.0] * 9 + [0.1]
    # a loss that falls back in line with the others' clears the flag (the mean over epochs counts)
    history.record(1, list(range(10)), [0.1] * 9 + [0.1])
    history.record(2, list(range(10)), [0.1] * 9 + [0.1])
    history.record(3, list(range(10)), [0.1] * 9 + [0.1])
    assert history.weights(4)[9] == pytest.approx(0.1)  # mean 1.325 is still far above 0.1
    assert history.mean_losses(4)[9] == pytest.approx((5.0 + 0.3) / 4)


def test_dbpm_waits_for_warmup_and_ignores_unseen_examples():
    history = LossHistory(4, k=0.5, warmup=2)
    history.record(0, [0, 1, 2], [0.1, 0.1, 3.0])
    assert history.weights(1).tolist() == [1.0] * 4
    history.record(1, [0, 1, 2], [0.1, 0.1, 3.0])
    weights = history.weights(2)
    assert weights[2] < 1 and weights[3] == 1.0 and np.isnan(history.mean_losses(2)[3])


# ---- mining ----------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(4, 30), st.integers(1, 5), st.integers(0, 1000), st.booleans())
def test_mined_negatives_are_always_of_the_opposite_label(size, n, seed, repeat_texts):
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(size, 6)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    labels = rng.integers(0, 2, size).tolist()
    texts = [f"review {i % 3 if repeat_texts else i}" for i in range(size)]
    mined = mine_opposite_label(embeddings, labels, texts, n, depth=size)
    negatives = negatives_by_review(mined, size)
    for i, found in enumerate(negatives):
        assert all(labels[j] != labels[i] for j in found)
        # a review repeating the text of a same-label review is never a negative
        same_label_texts = {texts[j] for j in range(size) if labels[j] == labels[i]}
        assert all(texts[j] not in same_label_texts for j in found)
        assert len(found) <= n and len(set(found)) == len(found)
    if not repeat_texts:
        for i in range(size):  # with the full depth searched, each review gets min(n, opposite count)
            assert len(negatives[i]) == min(n, sum(1 for label in labels if label != labels[i]))


def test_mined_negatives_are_the_nearest_opposite_label_reviews():
    embeddings = np.array([[1, 0], [0.9, 0.436], [0.6, 0.8], [0, 1], [-1, 0]], dtype=np.float32)
    labels = [1, 0, 0, 1, 0]
    negatives = negatives_by_review(mine_opposite_label(embeddings, labels, [str(i) for i in range(5)], 2), 5)
    assert negatives[0] == [1, 2]
    assert negatives[3] == [2, 1]


# ---- training --------------------------------------------------------------------------------------


def config(tmp_path, method: str, **overrides) -> SentimentConfig:
    settings = {"epochs": 2, "batch_size": 4, "device": "cpu", **overrides}
    return SentimentConfig(output=str(tmp_path / method), method=method, **settings)


@pytest.mark.parametrize("method", ["tfidf", "transformer", "contrastive", "self-training"])
def test_every_method_trains_saves_and_reports(tmp_path, tiny_model, method):
    folder = train_sentiment(
        TEXTS * 2, LABELS * 2, config(tmp_path, method, model=str(tiny_model)), val=(TEXTS, LABELS), unlabeled=TEXTS
    )
    model = load_sentiment_model(folder)
    probability = model.predict_proba(TEXTS)
    assert probability.shape == (len(TEXTS),) and ((0 <= probability) & (probability <= 1)).all()
    saved = json.loads((tmp_path / method / "sentiment_config.json").read_text())
    assert saved["method"] == method and saved["train_cpu_s"] >= 0
    val = json.loads((tmp_path / method / "val_metrics.json").read_text())
    assert val["count"] == len(TEXTS) and 0 <= val["accuracy"] <= 1
    if method in ("contrastive", "self-training"):
        assert saved["embedding"] == "mean"  # the default: mean-pooled, the sentence-transformers embedding
        assert [e["mined_negatives"] for e in saved["epochs_log"]] == [len(TEXTS) * 2 * 4] * 2
    if method == "self-training":
        assert "pseudo_labelled" in saved["epochs_log"][1]


def test_tfidf_learns_the_sample(tmp_path):
    folder = train_sentiment(TEXTS * 3, LABELS * 3, config(tmp_path, "tfidf"))
    predicted = (load_sentiment_model(folder).predict_proba(TEXTS) >= 0.5).astype(int).tolist()
    assert predicted == LABELS


def test_saved_classifier_round_trips_through_transformers(tmp_path, tiny_model):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = train_sentiment(TEXTS, LABELS, config(tmp_path, "contrastive", model=str(tiny_model), epochs=1))
    ours = load_sentiment_model(folder).predict_proba(TEXTS)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    with torch.no_grad():
        inputs = tokenizer(normalize_all(TEXTS), padding=True, return_tensors="pt")
        theirs = torch.softmax(model(**inputs).logits, -1)[:, 1].numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_a_trained_model_keeps_its_normalisation_choice(tmp_path, tiny_model):
    folder = train_sentiment(
        TEXTS, LABELS, config(tmp_path, "transformer", model=str(tiny_model), epochs=1, normalize=False)
    )
    assert load_sentiment_model(folder).normalize is False
    assert json.loads((folder / "sentiment.json").read_text())["normalize"] is False


def test_embeddings_are_the_first_token_or_the_mean_of_the_last_hidden_states(tiny_model):
    texts = ["valo product", "khub kharap jinis ekdom", "ok"]
    first, mean = (TransformerSentiment(tiny_model, device="cpu", pooling=p) for p in ("cls", "mean"))
    inputs = first.tokenizer(normalize_all(texts), padding=True, return_tensors="pt")
    with torch.no_grad():
        states = first.model(**inputs, output_hidden_states=True).hidden_states[-1]
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    np.testing.assert_allclose(first.encode(texts), torch.nn.functional.normalize(states[:, 0], dim=-1), atol=1e-5)
    averaged = (states * mask).sum(1) / mask.sum(1)  # padding left out
    np.testing.assert_allclose(mean.encode(texts), torch.nn.functional.normalize(averaged, dim=-1), atol=1e-5)
    with pytest.raises(RankkitError, match="unknown pooling 'max'"):
        TransformerSentiment(tiny_model, device="cpu", pooling="max")


def test_pseudo_labels_are_confident_and_spread_over_the_batches(tiny_model):
    classifier = TransformerSentiment(tiny_model, device="cpu")
    task = SentimentTask(
        classifier,
        TEXTS,
        LABELS,
        SentimentConfig(output="unused", method="self-training", batch_size=4, confidence=0.0, self_training_from=0),
        unlabeled=TEXTS * 3,
    )
    batches = task.epoch_batches(0)
    pseudo = [item for batch in batches for item in batch if item.index is None]
    assert len(batches) == 3 and len(pseudo) == len(TEXTS) * 3
    assert max(len(b) for b in batches) - min(len(b) for b in batches) <= 2
    probability = classifier.predict_proba([item.text for item in pseudo])
    assert [item.label for item in pseudo] == (probability >= 0.5).astype(int).tolist()


def test_training_refuses_bad_settings(tmp_path, tiny_model):
    with pytest.raises(RankkitError, match="one class only"):
        train_sentiment(TEXTS[:3:2], [1, 1], config(tmp_path, "tfidf"))
    with pytest.raises(RankkitError, match="unknown sentiment model"):
        train_sentiment(TEXTS, LABELS, config(tmp_path, "svm"))
    with pytest.raises(RankkitError, match="--unlabeled"):
        train_sentiment(TEXTS, LABELS, config(tmp_path, "self-training", model=str(tiny_model)))
    train_sentiment(TEXTS, LABELS, config(tmp_path, "tfidf"))
    with pytest.raises(RankkitError, match="--overwrite"):
        train_sentiment(TEXTS, LABELS, config(tmp_path, "tfidf"))


def test_not_a_sentiment_folder(tmp_path):
    with pytest.raises(RankkitError, match="not a sentiment model folder"):
        load_sentiment_model(tmp_path)
