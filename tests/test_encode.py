"""BiEncoder on a tiny random model: shapes, normalisation, input order, agreement with
sentence-transformers; model folder resolution errors and fingerprints."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from rankkit.encode import BiEncoder, model_fingerprint, resolve_model_dir
from rankkit.errors import RankkitError

TEXTS = [
    "short",
    "a considerably longer sentence about stars forming inside cold molecular clouds of hydrogen gas",
    "medium length text about bread",
    "",
    "the moon has phases because we see different parts of its sunlit half as it orbits the earth",
    "why",
    "yeast ferments sugars and releases carbon dioxide which makes dough rise",
]


@pytest.fixture(scope="module")
def encoder(tiny_model) -> BiEncoder:
    # a small token budget forces several length-sorted batches, so order restoration is exercised
    return BiEncoder(tiny_model, device="cpu", max_tokens=64, max_batch_size=3)


def test_shape_and_dtype(encoder):
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 32)
    assert vectors.dtype == np.float32
    assert encoder.dimension == 32
    assert np.isfinite(vectors).all()


def test_vectors_have_unit_norm(encoder):
    norms = np.linalg.norm(encoder.encode(TEXTS), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_input_order_is_preserved_despite_length_sorting(encoder):
    together = encoder.encode(TEXTS)
    for row, text in enumerate(TEXTS):
        alone = encoder.encode([text])[0]
        np.testing.assert_allclose(together[row], alone, atol=1e-5, err_msg=f"row {row} ({text!r})")
    # the texts are really different, so a permutation would have been caught
    assert not np.allclose(together[0], together[1], atol=1e-3)


def test_reversed_input_gives_reversed_output(encoder):
    forward = encoder.encode(TEXTS)
    backward = encoder.encode(TEXTS[::-1])
    np.testing.assert_allclose(forward[::-1], backward, atol=1e-5)


def test_embed_matches_encode_across_length_sorted_chunks_and_keeps_gradients(encoder):
    # the fixture's budget splits TEXTS into several chunks; rows must come back in input order
    vectors = encoder.embed(TEXTS)
    np.testing.assert_allclose(vectors.detach().numpy(), encoder.encode(TEXTS), atol=1e-5)
    vectors[3].sum().backward()  # the empty text's row: its gradient reaches the weights
    grads = [p.grad for p in encoder.model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    encoder.model.zero_grad(set_to_none=True)
    assert encoder.embed([]).shape == (0, 32)


def test_empty_list(encoder):
    vectors = encoder.encode([])
    assert vectors.shape == (0, 32)
    assert vectors.dtype == np.float32


def test_agrees_with_sentence_transformers(encoder, tiny_model):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(tiny_model), device="cpu").encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(encoder.encode(TEXTS), reference, atol=1e-5)


def test_truncates_to_model_max_length(encoder):
    assert encoder.max_length == 64  # sentence_bert_config.json's max_seq_length
    long_text = " ".join(["word"] * 500)
    longer_text = long_text + " " + " ".join(["other"] * 200)
    a, b = encoder.encode([long_text, longer_text])
    np.testing.assert_allclose(a, b, atol=1e-5)  # differences beyond 64 tokens are cut off


def test_resolve_model_dir_missing_folder(tmp_path):
    with pytest.raises(RankkitError, match="Fix:") as info:
        resolve_model_dir(tmp_path / "no-such-model")
    assert "no-such-model" in str(info.value)


def test_resolve_model_dir_folder_without_config(tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0")
    with pytest.raises(RankkitError, match="Fix:") as info:
        resolve_model_dir(folder)
    assert "config.json" in str(info.value)


def test_biencoder_on_bad_folder_is_a_rankkit_error(tmp_path):
    with pytest.raises(RankkitError, match="Fix:"):
        BiEncoder(tmp_path / "missing", device="cpu")


def test_resolve_model_dir_accepts_a_model_folder(tiny_model):
    assert resolve_model_dir(tiny_model) == tiny_model
    assert resolve_model_dir(str(tiny_model)) == tiny_model


def test_fingerprint_equal_for_a_copy_elsewhere(tiny_model, tmp_path):
    copy = tmp_path / "somewhere" / "else"
    shutil.copytree(tiny_model, copy)
    assert model_fingerprint(copy) == model_fingerprint(tiny_model)
    assert BiEncoder(copy, device="cpu").fingerprint == model_fingerprint(tiny_model)


def test_fingerprint_differs_for_another_model(tiny_model, other_tiny_model):
    assert model_fingerprint(tiny_model) != model_fingerprint(other_tiny_model)


def test_fingerprint_changes_when_weights_change(tiny_model, tmp_path):
    copy = tmp_path / "changed"
    shutil.copytree(tiny_model, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert model_fingerprint(copy) != model_fingerprint(tiny_model)


@pytest.mark.slow
def test_default_model_agrees_with_sentence_transformers():
    """The packaged all-MiniLM-L6-v2, as rankkit and as sentence-transformers load it."""
    from sentence_transformers import SentenceTransformer

    from rankkit.encode import DEFAULT_MODEL

    encoder = BiEncoder("default", device="cpu")
    assert encoder.name == DEFAULT_MODEL
    assert encoder.dimension == 384
    assert encoder.max_length == 256
    assert (encoder.pooling_mode, encoder.normalized) == ("mean", True)
    reference = SentenceTransformer(str(resolve_model_dir("default")), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(encoder.encode(TEXTS), reference, atol=1e-5)
    stars, bread = encoder.encode(["how do stars form", "how does yeast make bread rise"])
    passage = encoder.encode(["Stellar birth begins inside cold, dense clouds of molecular hydrogen and dust."])[0]
    assert float(stars @ passage) > float(bread @ passage)  # a trained model, unlike the tiny ones


def test_cross_encoder_logits_in_chunks_match_one_padded_batch(tiny_model):
    from rankkit.encode.crossencoder import CrossEncoder

    queries = ["why is the sky blue"] * len(TEXTS)
    chunked = CrossEncoder(tiny_model, device="cpu", max_tokens=64, max_batch_size=3)
    whole = chunked.tokenizer(
        queries, TEXTS, truncation="longest_first", max_length=chunked.max_length, padding=True, return_tensors="pt"
    )
    expected = chunked.model(**whole).logits.squeeze(-1)
    logits = chunked.logits(queries, TEXTS)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    logits.sum().backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in chunked.model.parameters())
    assert chunked.logits([], []).shape == (0,)


def test_cross_encoder_scores_a_query_longer_than_its_max_length(tiny_model):
    # regression: cutting only the passage failed ("Sequence to truncate too short") when the query
    # alone filled max_length, as some CISI queries do at 128 tokens
    from rankkit.encode.crossencoder import CrossEncoder

    model = CrossEncoder(tiny_model, device="cpu", max_length=16)
    long_query = " ".join(["information retrieval of library catalogues"] * 10)
    encoded = model._tokenize([long_query, "why is the sky blue"], TEXTS[:2])
    assert [len(ids) for ids in encoded["input_ids"]] == [16, 16]
    ids = encoded["input_ids"][0]
    passage_start = ids.index(model.tokenizer.sep_token_id) + 1
    assert ids[passage_start] == model.tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"][0]  # both kept
    scores = model.score([(long_query, TEXTS[0]), ("why is the sky blue", TEXTS[1])])
    assert np.isfinite(scores).all()
    assert model.logits([long_query], [TEXTS[0]]).shape == (1,)
