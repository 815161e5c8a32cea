"""The bi-encoder runs a sentence-transformers folder as sentence-transformers does: its modules.json
stack (Dense, Normalize, ...), the max length where ST 6 stores it, and its prompts; compared with
`SentenceTransformer.encode_query` / `encode_document` on tiny models saved by sentence-transformers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from rankkit.encode import BiEncoder
from rankkit.encode.stack import resolve_prompt
from rankkit.errors import RankkitError

LONG = " ".join(f"word{i}" for i in range(200))
TEXTS = [
    "short",
    "a longer sentence about stars forming inside cold molecular clouds",
    "",
    "why",
    LONG,
    LONG + " and then some more words",
]


def st_model(
    folder: Path,
    *,
    dense: int | None = None,
    max_seq_length: int | None = None,
    prompts: dict[str, str] | None = None,
    default_prompt_name: str | None = None,
    include_prompt: bool = True,
) -> Path:
    """A tiny model built with sentence-transformers' own modules and saved by `SentenceTransformer.save`."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    base = make_tiny_model(folder.with_name(folder.name + "-base"), normalize=False)
    torch.manual_seed(1)
    transformer = Transformer(str(base))
    modules = [transformer, Pooling(32, pooling_mode="mean", include_prompt=include_prompt)]
    if dense:
        modules.append(Dense(32, dense, activation_function=torch.nn.Tanh()))
    modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu", prompts=prompts, default_prompt_name=default_prompt_name)
    if max_seq_length:
        model.max_seq_length = max_seq_length
    model.save(str(folder), create_model_card=False)
    return folder


def assert_like_sentence_transformers(folder: Path, **kwargs) -> BiEncoder:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(folder), device="cpu")
    encoder = BiEncoder(folder, device="cpu", max_tokens=256, max_batch_size=3, **kwargs)
    np.testing.assert_allclose(encoder.encode(TEXTS), reference.encode_document(TEXTS), atol=1e-6, rtol=0)
    np.testing.assert_allclose(encoder.encode(TEXTS, role="query"), reference.encode_query(TEXTS), atol=1e-6, rtol=0)
    return encoder


def test_dense_layer_is_applied(tmp_path):
    # regression: the Dense module was ignored, so vectors had the transformer's 32 dimensions, not 16
    encoder = assert_like_sentence_transformers(st_model(tmp_path / "m", dense=16))
    assert encoder.dimension == 16
    assert encoder.encode(["x"]).shape == (1, 16)


def test_max_length_stored_only_in_tokenizer_config(tmp_path):
    # regression: ST 6 keeps max_seq_length in tokenizer_config.json; rankkit read 64 from the
    # template's sentence_bert_config.json or the 512 default, and encoded long texts differently
    folder = st_model(tmp_path / "m", max_seq_length=20)
    assert "max_seq_length" not in json.loads((folder / "sentence_bert_config.json").read_text())
    encoder = assert_like_sentence_transformers(folder)
    assert encoder.max_length == 20


def test_prompts_for_queries_and_passages(tmp_path):
    # regression: prompts in config_sentence_transformers.json were ignored
    folder = st_model(tmp_path / "m", prompts={"query": "query: ", "document": "passage: "})
    encoder = assert_like_sentence_transformers(folder)
    assert encoder.prompts == {"query": "query: ", "passage": "passage: "}
    assert not np.allclose(encoder.encode(["why"]), encoder.encode(["why"], role="query"))


def test_prompt_excluded_from_pooling_and_default_prompt_name(tmp_path):
    # sentence-transformers saves empty 'query' and 'document' prompts, which win over the default
    # prompt name in encode_query / encode_document; rankkit follows it
    folder = st_model(
        tmp_path / "m",
        prompts={"query": "Represent this question: ", "instruct": "Represent: "},
        default_prompt_name="instruct",
        include_prompt=False,
    )
    encoder = assert_like_sentence_transformers(folder)
    assert encoder.prompts == {"query": "Represent this question: ", "passage": ""}


def test_prompt_overrides(tmp_path):
    from sentence_transformers import SentenceTransformer

    folder = st_model(tmp_path / "m", prompts={"query": "query: ", "document": "passage: "})
    reference = SentenceTransformer(str(folder), device="cpu")
    encoder = BiEncoder(folder, device="cpu", query_prompt="question: ", passage_prompt="")
    np.testing.assert_allclose(
        encoder.encode(TEXTS, role="query"), reference.encode(TEXTS, prompt="question: "), atol=1e-6, rtol=0
    )
    np.testing.assert_allclose(encoder.encode(TEXTS), reference.encode(TEXTS, prompt=""), atol=1e-6, rtol=0)


def test_embed_trains_the_dense_layer_too(tmp_path):
    encoder = BiEncoder(st_model(tmp_path / "m", dense=16), device="cpu")
    encoder.embed(["some text"], role="query").sum().backward()
    dense = list(encoder.stack)[2]
    assert dense.linear.weight.grad is not None and float(dense.linear.weight.grad.abs().sum()) > 0


def test_saved_folder_round_trips_dense_and_prompts(tmp_path):
    encoder = BiEncoder(st_model(tmp_path / "m", dense=16, prompts={"query": "q: "}, max_seq_length=24), device="cpu")
    encoder.save(tmp_path / "saved")
    again = assert_like_sentence_transformers(tmp_path / "saved")
    assert (again.dimension, again.max_length, again.prompts["query"]) == (16, 24, "q: ")


@pytest.mark.parametrize("module_type", ["sentence_transformers.models.WordWeights", "my_package.MyPooling"])
def test_a_module_rankkit_cannot_run_is_refused_by_name(tiny_model, tmp_path, module_type):
    import shutil

    folder = tmp_path / "custom"
    shutil.copytree(tiny_model, folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(1, {"idx": 1, "name": "extra", "path": "extra", "type": module_type})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(RankkitError) as excinfo:
        BiEncoder(folder, device="cpu")
    assert module_type in str(excinfo.value) and "Fix:" in str(excinfo.value)


def test_plain_transformers_folder_is_mean_pooled_and_normalised(tiny_model, tmp_path):
    import shutil

    folder = tmp_path / "plain"
    shutil.copytree(tiny_model, folder)
    for name in ("modules.json", "sentence_bert_config.json"):
        (folder / name).unlink()
    shutil.rmtree(folder / "1_Pooling")
    encoder = BiEncoder(folder, device="cpu")
    assert (encoder.pooling_mode, encoder.normalized) == ("mean", True)
    np.testing.assert_allclose(
        encoder.encode(TEXTS), BiEncoder(tiny_model, device="cpu", max_length=128).encode(TEXTS), atol=1e-6
    )


def test_resolve_prompt_follows_encode_query_and_encode_document():
    prompts = {"query": "q: ", "corpus": "c: ", "x": "x: "}
    assert resolve_prompt(prompts, "x", "query", None) == "q: "
    assert resolve_prompt(prompts, "x", "passage", None) == "c: "
    assert resolve_prompt({"x": "x: "}, "x", "passage", None) == "x: "
    assert resolve_prompt({}, None, "query", None) == ""
    assert resolve_prompt(prompts, None, "query", "override: ") == "override: "


def test_cli_prompts_reach_the_manifest_and_the_query_encoder(tiny_model, sample_dir, tmp_path):
    from typer.testing import CliRunner

    from rankkit.cli.app import app
    from rankkit.retrieve import open_retriever
    from rankkit.retrieve.options import DenseQuery

    result = CliRunner().invoke(
        app,
        [
            "index",
            "build",
            str(sample_dir / "collection.tsv"),
            "-o",
            str(tmp_path / "p"),
            "--model",
            str(tiny_model),
            "--passage-prompt",
            "passage: ",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["settings"]["passage_prompt"] == "passage: "
    retriever = open_retriever([tmp_path / "p"], DenseQuery(device="cpu", query_prompt="query: "))
    assert retriever.encoder.prompts["query"] == "query: "
    prompted = BiEncoder(tiny_model, device="cpu", query_prompt="query: ").encode(["stars"], role="query")
    assert retriever.search("stars", 3) == retriever.index.search(prompted, 3)[0]
