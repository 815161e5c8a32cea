"""A reranker from a GPT-2-style model, which has no padding token: it pads with its end-of-sequence
token (as transformers' docs advise for GPT2ForSequenceClassification), so pairs of different
lengths batch, train and save; a model with neither token is one error naming it and the fix.
The model is a tiny random GPT-2 with a byte-level BPE tokenizer trained on the sample
passages (conftest.make_tiny_gpt2; no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import GPT2_EOS as EOS
from conftest import make_tiny_gpt2
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.data.collection import SAMPLE_DIR
from rankkit.data.corpus import read_doc_texts
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.errors import RankkitError

PAIRS = [
    ("why is the sky blue", "Rayleigh scattering of sunlight by the molecules of the air."),
    ("sky", "blue"),
    ("what is bm25", "A ranking function that scores documents by term frequency, with saturation and length."),
]


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> Path:
    return make_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


def test_a_gpt2_reranker_scores_pairs_of_different_lengths_in_one_batch(gpt2):
    # regression: "Cannot handle batch sizes > 1 if no padding token is defined" (a traceback)
    reranker = CrossEncoder(gpt2, device="cpu")
    batched = reranker.score(PAIRS)
    alone = [reranker.score([pair])[0] for pair in PAIRS]
    assert batched.tolist() == pytest.approx(alone, abs=1e-5)  # padding does not change a score


def test_a_saved_gpt2_reranker_pads_the_same_in_transformers(gpt2, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    reranker = CrossEncoder(gpt2, device="cpu")
    reranker.save(tmp_path / "saved")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "saved")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved").eval()
    assert tokenizer.pad_token == EOS and model.config.pad_token_id == tokenizer.eos_token_id
    inputs = tokenizer([q for q, _ in PAIRS], [p for _, p in PAIRS], padding=True, return_tensors="pt")
    with torch.no_grad():
        scores = model(**inputs).logits.squeeze(-1)
    assert scores.tolist() == pytest.approx(reranker.score(PAIRS).tolist(), abs=1e-5)


def test_a_model_without_padding_or_end_token_is_one_error_naming_it(tmp_path):
    folder = make_tiny_gpt2(tmp_path / "no-eos", eos=None)
    with pytest.raises(RankkitError) as caught:
        CrossEncoder(folder, device="cpu")
    message = str(caught.value)
    assert message.startswith(str(folder)) and "no padding token" in message and "Fix:" in message, message


def test_train_reranker_from_a_gpt2_model(gpt2, tmp_path):
    from rankkit.data.qrels import read_qrels
    from rankkit.data.queries import read_queries
    from rankkit.data.runs import Hit
    from rankkit.mining import TopN, candidates_from_run, mine

    docs = read_doc_texts(SAMPLE_DIR / "collection.tsv")
    queries = read_queries(SAMPLE_DIR / "queries.tsv")
    run = {qid: [Hit(d, -i) for i, d in enumerate(sorted(docs))] for qid in queries}  # every document, fixed order
    mined = mine(
        queries, read_qrels(SAMPLE_DIR / "qrels.txt"), candidates_from_run(run, "all"), [TopN(4)], doc_texts=docs
    )
    mined.write(tmp_path / "mined.jsonl")
    args = ["train", "reranker", "--mined", tmp_path / "mined.jsonl", "--corpus", SAMPLE_DIR / "collection.tsv"]
    args += ["--model", gpt2, "-o", tmp_path / "out", "--max-steps", "2", "--batch-size", "2", "--negatives", "2"]
    result = CliRunner().invoke(app, [str(a) for a in args + ["--device", "cpu"]])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    trained = CrossEncoder(tmp_path / "out" / "model", device="cpu")
    assert trained.tokenizer.pad_token == EOS and trained.score(PAIRS).shape == (3,)
