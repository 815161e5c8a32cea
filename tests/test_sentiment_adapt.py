"""Task-adaptive masked-LM training (`rankkit sentiment adapt`) on a tiny random encoder: the loss
falls on a repetitive corpus, the adapted folder fine-tunes and round-trips through transformers,
a batch with nothing masked is a zero loss, and bad input is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.errors import RankkitError
from rankkit.sentiment import SentimentConfig, load_sentiment_model, train_sentiment
from rankkit.sentiment.adapt import AdaptConfig, MaskedLMTask, adapt_encoder

SAMPLE = Path(__file__).resolve().parents[1] / "rankkit" / "sentiment" / "sample" / "reviews.csv"
REVIEWS = [
    "product ta khub valo, delivery fast",
    "jinis ta baje, taka noshto",
    "valo packaging, thanks daraz",
    "size mile nai, return korbo",
    "darun quality!! recommend korbo",
    "faltu product, kinben na",
]


def _losses(output: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (output / "train_log.jsonl").read_text().splitlines()]


def test_adapting_lowers_the_masked_lm_loss_and_changes_the_encoder(tmp_path, tiny_model):
    from transformers import AutoModel

    config = AdaptConfig(
        output=str(tmp_path / "adapted"),
        model=str(tiny_model),
        epochs=5,
        batch_size=3,
        lr=3e-3,
        mask_probability=0.3,
        device="cpu",
    )
    folder = adapt_encoder(REVIEWS * 2, config)
    losses = _losses(tmp_path / "adapted")
    assert len(losses) == 5 * 4  # 12 reviews in batches of 3, 5 epochs
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 1.0  # the last epoch predicts masked tokens better
    before, after = AutoModel.from_pretrained(tiny_model), AutoModel.from_pretrained(folder)
    assert not torch.allclose(before.embeddings.word_embeddings.weight, after.embeddings.word_embeddings.weight)


def test_adapting_twice_with_one_seed_gives_the_same_encoder(tmp_path, tiny_model):
    """Regression: the new masked-LM head was initialised before the seed was set, so two runs of
    one command adapted different encoders (unseeded random head weights)."""
    from transformers import AutoModelForMaskedLM

    torch.manual_seed(1)  # a different global random state before each run must not matter
    weights = []
    for run in range(2):
        torch.rand(run + 1)
        config = AdaptConfig(
            output=str(tmp_path / f"adapted-{run}"), model=str(tiny_model), epochs=1, batch_size=3, device="cpu", seed=7
        )
        weights.append(AutoModelForMaskedLM.from_pretrained(adapt_encoder(REVIEWS, config)).state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_the_adapted_encoder_fine_tunes_and_round_trips(tmp_path, tiny_model):
    folder = adapt_encoder(
        REVIEWS,
        AdaptConfig(output=str(tmp_path / "adapted"), model=str(tiny_model), epochs=1, batch_size=2, device="cpu"),
    )
    config = SentimentConfig(
        output=str(tmp_path / "classifier"),
        method="contrastive",
        model=str(folder),
        epochs=1,
        batch_size=2,
        device="cpu",
    )
    classifier = train_sentiment(REVIEWS, [1, 0, 1, 0, 1, 0], config)
    probability = load_sentiment_model(classifier).predict_proba(REVIEWS)
    assert probability.shape == (6,) and np.isfinite(probability).all()


def test_a_batch_with_nothing_masked_is_a_zero_loss_with_gradients(tiny_model):
    task = MaskedLMTask(AdaptConfig(output="unused", model=str(tiny_model), mask_probability=1e-12, device="cpu"))
    batch = task.tokenizer(REVIEWS[:2])["input_ids"]
    loss = task.loss(batch)["encoder"]
    assert float(loss) == 0.0 and loss.requires_grad
    loss.backward()  # the loop may step on it


def test_no_text_is_a_clear_error(tmp_path, tiny_model):
    with pytest.raises(RankkitError, match="no text to adapt the encoder on. Fix"):
        adapt_encoder(["", "   "], AdaptConfig(output=str(tmp_path / "out"), model=str(tiny_model)))


def test_cli_adapts_then_trains_from_the_adapted_folder(tmp_path, tiny_model):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "sentiment",
            "adapt",
            "--reviews",
            str(SAMPLE),
            "--reviews",
            str(SAMPLE),
            "-o",
            str(tmp_path / "adapted"),
            "--model",
            str(tiny_model),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "32 usable rows; 1 row left out (line 33: empty text)" in result.output  # reported per file
    assert "sentiment train --model" in result.output
    assert len(_losses(tmp_path / "adapted")) == 8  # 2 x 32 usable reviews in batches of 8
    result = runner.invoke(
        app,
        [
            "sentiment",
            "train",
            "--reviews",
            str(SAMPLE),
            "--rating-column",
            "rating",
            "--method",
            "transformer",
            "--model",
            str(tmp_path / "adapted" / "model"),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "-o",
            str(tmp_path / "classifier"),
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    result = runner.invoke(
        app, ["sentiment", "adapt", "--reviews", str(SAMPLE), "-o", str(tmp_path / "bad"), "--mask-probability", "1"]
    )
    assert result.exit_code == 2 and "--mask-probability" in result.output


def test_the_loss_over_masked_positions_equals_the_models_own(tiny_model):
    task = MaskedLMTask(AdaptConfig(output="unused", model=str(tiny_model), mask_probability=0.3, device="cpu"))
    task.model.eval()  # no dropout: both passes see the same network
    torch.manual_seed(0)
    features = task.collator([{"input_ids": ids} for ids in task.tokenizer(REVIEWS)["input_ids"]])
    task.collator = lambda rows: {k: v.clone() for k, v in features.items()}  # type: ignore[method-assign]
    ours = task.loss([[0]])["encoder"]  # the batch's ids come from the fixed collator above
    assert float(ours) == pytest.approx(float(task.model(**features).loss), rel=1e-5)
