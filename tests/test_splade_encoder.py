"""The SPLADE encoder: weights equal to sentence-transformers' SparseEncoder on tiny random
masked-language models (a transformers folder and SparseEncoder folders), pyserini's quantization,
refusal of models that are not SPLADE models, and the real splade-tiny (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rankkit.encode.packaged import cache_root
from rankkit.encode.splade import SpladeEncoder, is_splade_model, quantize
from rankkit.errors import RankkitError
from tests.conftest import make_tiny_model

WORDS = (
    "the sky is blue why a sun light scatter air red long short passage query about of and in to it "
    "##s ##ing ##ed ##ly rain cloud water green"
)
TEXTS = [
    "why is the sky blue",
    "sky",
    "the sun light scatters in the air and the sky is blue or red about " * 8,  # past the 64-token limit
    "rain clouds hold water",
    "a green passage about the short query",
]


def make_mlm(folder: Path, seed: int = 0, padded_ids: int = 0) -> Path:
    """A 2-layer BERT masked-language model with random weights and a 34-token WordPiece
    vocabulary (and `padded_ids` more rows of logits the tokenizer has no token for), 64 tokens at most."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS.split()]
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab) + padded_ids,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.2,  # logits of about 1, so weights are not all near 0
    )
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, model_max_length=64)
    tokenizer.save_pretrained(folder)
    return folder


def sentence_transformers_weights(folder: Path, texts: list[str], role: str) -> list[dict[str, float]]:
    """SparseEncoder's encode_query / encode_document as {token: weight}."""
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(folder), device="cpu")
    encode = model.encode_query if role == "query" else model.encode_document
    rows = encode(texts, convert_to_sparse_tensor=True)
    out = []
    for row in rows:
        row = row.coalesce()
        tokens = model.tokenizer.convert_ids_to_tokens(row.indices()[0].tolist())
        out.append(dict(zip(tokens, row.values().tolist())))
    return out


def assert_same_weights(ours: list[dict[str, float]], theirs: list[dict[str, float]]) -> None:
    assert len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs):
        assert mine.keys() == expected.keys()
        assert max(abs(mine[token] - expected[token]) for token in expected) < 1e-5


@pytest.fixture(scope="module")
def mlm_folder(tmp_path_factory) -> Path:
    return make_mlm(tmp_path_factory.mktemp("mlm"))


@pytest.mark.parametrize("role", ["query", "passage"])
def test_masked_lm_folder_matches_sparse_encoder(mlm_folder, role):
    encoder = SpladeEncoder(mlm_folder, device="cpu", max_tokens=80)  # several batches
    ours = encoder.encode(TEXTS, role)
    assert_same_weights(ours, sentence_transformers_weights(mlm_folder, TEXTS, role))
    assert (encoder.pooling, encoder.activation, encoder.max_length) == ("max", "relu", 64)
    assert all(weight > 0 for weights in ours for weight in weights.values())


@pytest.mark.parametrize(
    ("transformer", "pooling", "activation", "max_active_dims"),
    [("MLMTransformer", "sum", "relu", None), ("Transformer", "max", "log1p_relu", 3)],
)
def test_sparse_encoder_folder_matches_sparse_encoder(
    mlm_folder, tmp_path, transformer, pooling, activation, max_active_dims
):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    first = (
        MLMTransformer(str(mlm_folder))
        if transformer == "MLMTransformer"
        else Transformer(str(mlm_folder), transformer_task="fill-mask")
    )
    model = SparseEncoder(
        modules=[first, SpladePooling(pooling, activation)],
        device="cpu",
        prompts={"query": "why "},
        max_active_dims=max_active_dims,
    )
    model.save(str(tmp_path / "sparse"))
    encoder = SpladeEncoder(tmp_path / "sparse", device="cpu", max_tokens=80)
    assert is_splade_model(tmp_path / "sparse")
    assert (encoder.pooling, encoder.activation, encoder.max_active_dims) == (pooling, activation, max_active_dims)
    for role in ("query", "passage"):
        assert_same_weights(
            encoder.encode(TEXTS, role), sentence_transformers_weights(tmp_path / "sparse", TEXTS, role)
        )
    assert encoder.fingerprint != SpladeEncoder(mlm_folder, device="cpu").fingerprint


def test_encode_in_batches_keeps_input_order_and_reports_batches(mlm_folder):
    encoder = SpladeEncoder(mlm_folder, device="cpu", max_tokens=16, max_batch_size=2)
    seen: list[int] = []
    weights = encoder.encode(TEXTS, "passage", on_batch=seen.extend)
    assert sorted(seen) == list(range(len(TEXTS)))
    assert_same_weights(weights, [encoder.encode([text])[0] for text in TEXTS])
    assert encoder.encode([]) == []


def test_ids_past_the_tokenizer_vocabulary_get_names(tmp_path):
    encoder = SpladeEncoder(make_mlm(tmp_path / "padded", padded_ids=6), device="cpu")
    assert encoder.vocabulary[33:] == ["green", "[id:34]", "[id:35]", "[id:36]", "[id:37]", "[id:38]", "[id:39]"]
    assert None not in encoder.encode(TEXTS)[0]


def test_bf16_is_close_to_fp32(mlm_folder, native_bf16):
    fp32 = SpladeEncoder(mlm_folder, device="cpu").encode(TEXTS)
    bf16 = SpladeEncoder(mlm_folder, device="cpu", precision="bf16").encode(TEXTS)
    for exact, rounded in zip(fp32, bf16):
        assert max(abs(exact.get(t, 0.0) - rounded.get(t, 0.0)) for t in exact.keys() | rounded.keys()) < 0.05


def test_quantize_as_pyserini():
    weights = {
        "zero": 0.0,
        "tiny": 0.009,  # 0.46 -> 0, dropped
        "half": 0.009765625,  # exactly 0.5 -> 0 (halves round to even), dropped
        "small": 0.01,  # 0.512 -> 1
        "two_and_a_half": 0.048828125,  # exactly 2.5 -> 2
        "three_and_a_half": 0.068359375,  # exactly 3.5 -> 4
        "one": 1.0,  # 51.2 -> 51
        "five": 5.0,  # 256
        "more": 6.0,  # 307.2 -> 307: not clipped
    }
    assert quantize(weights) == {
        "small": 1,
        "two_and_a_half": 2,
        "three_and_a_half": 4,
        "one": 51,
        "five": 256,
        "more": 307,
    }
    assert quantize({}) == {}


def test_models_that_are_not_splade_models_are_refused(tmp_path):
    from transformers import BertConfig, BertModel

    sentence_model = make_tiny_model(tmp_path / "bi-encoder")
    with pytest.raises(RankkitError, match=r"not a SPLADE model \(its modules.json stack is Transformer \+ Pooling"):
        SpladeEncoder(sentence_model, device="cpu")
    BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)).save_pretrained(
        tmp_path / "plain"
    )
    with pytest.raises(RankkitError, match=r"architectures are \['BertModel'\], not a \*ForMaskedLM model.*Fix: "):
        SpladeEncoder(tmp_path / "plain", device="cpu")
    assert not is_splade_model(sentence_model) and not is_splade_model(tmp_path / "plain")


@pytest.mark.slow
def test_real_splade_tiny_finds_the_query_terms():
    if not (cache_root() / "models" / "splade-tiny" / "config.json").is_file():
        pytest.skip("splade-tiny is not fetched (rankkit models fetch splade-tiny)")
    weights = SpladeEncoder("splade-tiny", device="cpu").encode(["why is the sky blue"], "query")[0]
    top = sorted(weights, key=weights.get, reverse=True)[:3]
    assert {"sky", "blue"} <= set(top)
