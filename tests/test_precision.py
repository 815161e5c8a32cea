"""Inference precision (fp32 / bf16): dtype choice and its errors, bf16 bi- and cross-encoders
against fp32 on a tiny model, the index manifest's record, and the CLI options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.data.collection import SAMPLE_DIR
from rankkit.encode import BiEncoder
from rankkit.encode import precision as precision_module
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.encode.precision import inference_dtype
from rankkit.errors import RankkitError
from rankkit.index.dense import build_dense_index
from rankkit.retrieve.dense import DenseRetriever

CPU = torch.device("cpu")
needs_bf16 = pytest.mark.usefixtures("native_bf16")
TEXTS = ["why is the sky blue", "how do stars form inside cold molecular clouds of hydrogen gas", "bread", ""]


def test_fp32_is_float32():
    assert inference_dtype("fp32", CPU) is torch.float32


def test_unknown_precision_names_the_choices():
    with pytest.raises(RankkitError, match=r"unknown precision 'fp16'. Fix: use one of auto, fp32, bf16"):
        inference_dtype("fp16", CPU)


def test_bf16_refused_where_it_would_be_emulated(monkeypatch):
    monkeypatch.setattr(precision_module, "bf16_supported", lambda device: False)
    with pytest.raises(RankkitError, match=r"no native bfloat16.*Fix: use --precision auto or fp32"):
        inference_dtype("bf16", CPU)


@pytest.mark.parametrize("native, chosen", [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_only_where_native_and_says_so_once(monkeypatch, capsys, native, chosen):
    monkeypatch.setattr(precision_module, "bf16_supported", lambda device: native)
    monkeypatch.setattr(precision_module, "_announced", set())
    assert precision_module.resolve_precision("auto", CPU) == chosen
    assert precision_module.resolve_precision("auto", CPU) == chosen
    assert (
        capsys.readouterr().err == f"precision auto: {chosen} on cpu ({'native' if native else 'no native'} bfloat16)\n"
    )
    assert inference_dtype("auto", CPU) is precision_module.PRECISIONS[chosen]


def test_native_bf16_can_be_turned_off(monkeypatch):
    # RANKKIT_NATIVE_BF16=0 makes any CPU one without bf16, as an AMD Zen 3 is: auto picks fp32 there
    monkeypatch.setattr(precision_module, "hardware_bf16", lambda device: True)
    monkeypatch.setenv("RANKKIT_NATIVE_BF16", "0")
    assert not precision_module.bf16_supported(CPU)
    monkeypatch.delenv("RANKKIT_NATIVE_BF16")
    assert precision_module.bf16_supported(CPU)


@needs_bf16
def test_bf16_biencoder_vectors_are_float32_and_close_to_fp32(tiny_model):
    fp32 = BiEncoder(tiny_model, device="cpu").encode(TEXTS)
    bf16_encoder = BiEncoder(tiny_model, device="cpu", precision="bf16")
    bf16 = bf16_encoder.encode(TEXTS)
    assert next(bf16_encoder.model.parameters()).dtype is torch.bfloat16
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    np.testing.assert_allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)  # normalised in float32
    assert (fp32 * bf16).sum(1).min() > 0.99
    assert not np.array_equal(fp32, bf16)  # it really ran in bfloat16


@needs_bf16
def test_bf16_cross_encoder_scores_close_to_fp32(tiny_model):
    pairs = [(TEXTS[0], text) for text in TEXTS]
    fp32 = CrossEncoder(tiny_model, device="cpu").score(pairs)
    bf16 = CrossEncoder(tiny_model, device="cpu", precision="bf16").score(pairs)
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(bf16, fp32, atol=0.05)


@needs_bf16
def test_bf16_index_records_its_precision_and_serves_fp32_queries(tiny_model, tmp_path):
    folder = tmp_path / "bf16-index"
    manifest = build_dense_index(
        SAMPLE_DIR / "collection.tsv", folder, BiEncoder(tiny_model, device="cpu", precision="bf16")
    )
    assert manifest.settings["precision"] == "bf16"
    fp32 = DenseRetriever.from_folder(folder, device="cpu").search("why is the sky blue", 5)
    bf16 = DenseRetriever.from_folder(folder, device="cpu", precision="bf16").search("why is the sky blue", 5)
    assert len(fp32) == len(bf16) == 5
    assert bf16[0].score == pytest.approx(fp32[0].score, abs=0.02)


@pytest.mark.parametrize(
    "command",
    [
        "index build corpus.tsv",
        "search --index ix --query sky",
        "mine --queries q --qrels r --corpus c -o out",
        "rerank --run r --queries q --corpus c --model m -o out",
        "serve --index ix",
    ],
)
def test_cli_refuses_an_unknown_precision_before_reading_anything(command):
    result = CliRunner().invoke(app, [*command.split(), "--precision", "fp16"], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "'fp16' is not one of 'auto', 'fp32', 'bf16'" in result.output and "Traceback" not in result.output


def test_serve_refuses_bf16_where_emulated_before_binding_the_port(monkeypatch, tiny_model, tmp_path):
    build_dense_index(SAMPLE_DIR / "collection.tsv", tmp_path / "ix", BiEncoder(tiny_model, device="cpu"))
    monkeypatch.setattr(precision_module, "bf16_supported", lambda device: False)
    result = CliRunner().invoke(
        app, ["serve", "--index", str(tmp_path / "ix"), "--precision", "bf16", "--device", "cpu"]
    )
    assert result.exit_code == 2, result.output
    assert "no native bfloat16" in result.output and "--precision auto or fp32" in result.output
