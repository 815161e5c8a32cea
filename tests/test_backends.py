"""Inference backends: ONNX Runtime and OpenVINO forward passes, the export cache, the quality gate,
and the --backend / --quantize options of the commands that run models."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.encode import export as export_module
from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.encode.quality_gate import Agreement, check_agreement, score_agreement, vector_agreement
from rankkit.encode.splade import SpladeEncoder
from rankkit.errors import RankkitError
from rankkit.options import Inference
from rankkit.sentiment.model import TransformerSentiment, load_sentiment_model

runner = CliRunner()
TEXTS = ["why is the sky blue", "Rayleigh scattering of sunlight makes the sky look blue.", "bread rises"]
FP32 = {"backend": "torch", "quantize": "none"}


@pytest.fixture(autouse=True)
def export_cache(tmp_path, monkeypatch) -> Path:
    """Each test exports into its own cache."""
    monkeypatch.setenv("RANKKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "exports"


def exported(backend: str, quantize: str = "none", **gate: float) -> Inference:
    return Inference(backend=backend, quantize=quantize, **gate)  # type: ignore[arg-type]


# --- the quality gate's numbers, on hand-computed cases ---------------------------------------


def test_vector_agreement_on_hand_computed_vectors():
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    candidate = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # the third turned by 45 degrees
    agreement = vector_agreement(reference, candidate)
    assert agreement.min_cosine == pytest.approx(np.cos(np.pi / 4))
    assert agreement.texts == 3
    # with 3 texts each one's top list holds the other 2, so every neighbour set agrees
    assert agreement.top10_overlap == 1.0


def test_score_agreement_correlation_and_top_overlap():
    reference = np.arange(24, dtype=float)  # one query, 12 candidates; then a second query
    candidate = reference.copy()
    candidate[12:] = reference[12:][::-1]  # the second query's order reversed
    agreement = score_agreement(reference, candidate, [range(0, 12), range(12, 24)])
    assert agreement.min_cosine == pytest.approx(-1.0)
    # reversed: of the top 10 of 12, 8 are still in the top 10
    assert agreement.top10_overlap == pytest.approx((1.0 + 0.8) / 2)


def test_check_agreement_refuses_with_the_numbers_and_the_fix():
    check_agreement(Agreement(0.99, 0.95, 80), 0.97, 0.85, "model")
    with pytest.raises(RankkitError, match=r"min cosine 0\.9000, top-10 overlap 0\.950 on 80 texts.*--gate-min-cosine"):
        check_agreement(Agreement(0.90, 0.95, 80), 0.97, 0.85, "model")
    with pytest.raises(RankkitError, match="top-10 overlap 0.500"):
        check_agreement(Agreement(0.99, 0.5, 80), 0.97, 0.85, "model")


# --- every encoder on every backend ------------------------------------------------------------


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_bi_encoder_backend_gives_torch_vectors(tiny_model, backend):
    reference = BiEncoder(tiny_model, precision="fp32")
    encoder = BiEncoder(tiny_model, precision="fp32", inference=exported(backend))
    for role in ("query", "passage"):
        np.testing.assert_allclose(encoder.encode(TEXTS, role=role), reference.encode(TEXTS, role=role), atol=1e-5)
    described = encoder.runner.describe()
    assert described["backend"] == backend and described["quantize"] == "none"
    assert described["agreement"]["min_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert described["agreement"]["top10_overlap"] == 1.0
    assert reference.runner.describe() == FP32


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_cross_encoder_backend_gives_torch_scores(tiny_model, tmp_path, backend):
    CrossEncoder(tiny_model).save(tmp_path / "ce")  # a trained head is saved with it
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[0], TEXTS[2]), (TEXTS[2], TEXTS[1])]
    reference = CrossEncoder(tmp_path / "ce", precision="fp32").score(pairs)
    scores = CrossEncoder(tmp_path / "ce", precision="fp32", inference=exported(backend)).score(pairs)
    np.testing.assert_allclose(scores, reference, atol=1e-5)


def test_cross_encoder_without_a_trained_head_is_not_exported(tiny_model):
    with pytest.raises(RankkitError, match="no trained scoring head.*--backend torch"):
        CrossEncoder(tiny_model, inference=exported("onnx"))


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_splade_backend_gives_torch_weights(tiny_splade, backend):
    reference = SpladeEncoder(tiny_splade, precision="fp32").encode(TEXTS)
    weights = SpladeEncoder(tiny_splade, precision="fp32", inference=exported(backend)).encode(TEXTS)
    for got, want in zip(weights, reference):
        assert set(got) == set(want)
        assert max(abs(got[t] - want[t]) for t in want) < 1e-4


def test_openvino_pads_each_call_to_its_length_step_and_returns_the_real_positions(tiny_model, monkeypatch):
    from rankkit.encode import backend

    encoder = BiEncoder(tiny_model, precision="fp32", inference=exported("openvino"))
    forward, engine = encoder.runner.forward, encoder.runner.forward._engines[encoder.runner.forward.threads]
    inputs = dict(encoder.tokenizer(TEXTS[1:2], return_tensors="np"))  # 2 + a dozen tokens: not a multiple of 16
    length = inputs["input_ids"].shape[1]
    assert length % backend.OPENVINO_LENGTH_STEP
    shapes = []
    request = engine.create_infer_request()

    class Recording:  # the engine's request, noting the shape it is given
        def infer(self, feeds):
            shapes.append(feeds["input_ids"].shape)
            return request.infer(feeds)

    forward._requests.by_engine = {id(engine): Recording()}
    feeds = {name: inputs[name] for name in forward.input_names}
    padded = forward.run(engine, feeds)
    assert shapes == [(1, -(-length // backend.OPENVINO_LENGTH_STEP) * backend.OPENVINO_LENGTH_STEP)]
    monkeypatch.setattr(backend, "OPENVINO_LENGTH_STEP", 1)
    unpadded = forward.run(engine, feeds)
    assert shapes[-1] == (1, length) and padded.shape == unpadded.shape == (1, length, padded.shape[-1])
    np.testing.assert_allclose(padded, unpadded, atol=1e-5)


def test_splade_hashes_its_weights_once(tiny_splade, monkeypatch):
    from rankkit.encode import splade as splade_module

    reads = []
    real = splade_module.model_fingerprint
    monkeypatch.setattr(splade_module, "model_fingerprint", lambda folder: reads.append(folder) or real(folder))
    encoder = SpladeEncoder(tiny_splade, precision="fp32", inference=exported("onnx"))
    assert encoder.fingerprint and encoder.files_fingerprint == real(tiny_splade)
    assert len(reads) == 1  # the export's key and the index's fingerprint share one read


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_sentiment_backend_gives_torch_probabilities(tiny_model, tmp_path, backend):
    TransformerSentiment(tiny_model, device="cpu").save(tmp_path / "sentiment")  # its trained head saved with it
    reviews = ["valo product", "khub kharap jinis ekdom, taka nosto", "ok", "darun, abar kinbo"]
    reference = load_sentiment_model(tmp_path / "sentiment").predict_proba(reviews)
    model = load_sentiment_model(tmp_path / "sentiment", inference=exported(backend))
    np.testing.assert_allclose(model.predict_proba(reviews), reference, atol=1e-5)
    assert model.classifier is not None and model.classifier.describe()["backend"] == backend


def test_sentiment_classifier_without_a_trained_head_is_not_exported(tiny_model):
    with pytest.raises(RankkitError, match="no trained classification head.*--backend torch"):
        TransformerSentiment(tiny_model, inference=exported("onnx"))


def test_a_server_runs_single_queries_on_one_engine_thread(tiny_model):
    from rankkit.encode.backend import OnnxForward
    from rankkit.serve.config import ServeConfig

    assert ServeConfig().small_calls_on_one_thread and not Inference().small_calls_on_one_thread
    encoder = BiEncoder(tiny_model, inference=exported("onnx"))
    path = encoder.runner.export_folder / "onnx" / "model.onnx"
    forward = OnnxForward(path, threads=2, small_call_tokens=32)
    query = {"input_ids": torch.tensor([[101, 2054, 102]]), "attention_mask": torch.ones(1, 3, dtype=torch.long)}
    batch = {"input_ids": torch.full((4, 20), 2054), "attention_mask": torch.ones(4, 20, dtype=torch.long)}
    single = forward(query)
    assert set(forward._engines) == {1, 2}  # the query ran on a one-thread engine
    np.testing.assert_allclose(single, OnnxForward(path, threads=2)(query), atol=1e-6)
    assert forward(batch).shape == (4, 20, 32)


def test_backend_option_errors(tiny_model):
    with pytest.raises(RankkitError, match="--quantize int8 needs an exported model. Fix: add --backend onnx"):
        BiEncoder(tiny_model, inference=exported("torch", "int8"))
    with pytest.raises(RankkitError, match="runs on the CPU, not on cuda.*--device cpu"):
        BiEncoder(tiny_model, device="cuda", inference=exported("onnx"))
    with pytest.raises(RankkitError, match="--precision bf16 does not apply to --backend onnx"):
        BiEncoder(tiny_model, precision="bf16", inference=exported("onnx"))


# --- the export cache ----------------------------------------------------------------------------


def test_export_is_reused_and_loads_without_exporting(tiny_model, export_cache, monkeypatch):
    first = BiEncoder(tiny_model, inference=exported("onnx"))
    folders = list(export_cache.iterdir())
    assert [f.name for f in folders] == [first.runner.export_folder.name]
    record = json.loads((folders[0] / "export.json").read_text())
    assert record["key"]["backend"] == "onnx" and record["file"] == "onnx/model.onnx"
    assert set(record["files"]) >= {"onnx/model.onnx", "config.json", "tokenizer.json", "modules.json"}
    assert not list(folders[0].glob("*.safetensors"))  # the PyTorch weights are not copied

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(export_module, "torch", None)  # any use of the exporter would fail
    monkeypatch.setattr("rankkit.encode.backend.export_onnx", no_export)
    again = BiEncoder(tiny_model, inference=exported("onnx"))
    np.testing.assert_array_equal(again.encode(TEXTS), first.encode(TEXTS))


def test_interrupted_export_leaves_nothing(tiny_model, export_cache, monkeypatch):
    def interrupted(source, target):
        Path(target).write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr("rankkit.encode.backend.quantize_onnx", interrupted)
    with pytest.raises(KeyboardInterrupt):
        BiEncoder(tiny_model, inference=exported("onnx", "int8"))
    assert list(export_cache.iterdir()) == []  # no export, no temporary folder


def test_damaged_export_is_exported_again(tiny_model, export_cache, capsys):
    BiEncoder(tiny_model, inference=exported("onnx"))
    [folder] = export_cache.iterdir()
    model_file = folder / "onnx" / "model.onnx"
    model_file.write_bytes(model_file.read_bytes()[:-100])
    encoder = BiEncoder(tiny_model, inference=exported("onnx"))
    assert "does not match its checksum; exporting again" in capsys.readouterr().err
    np.testing.assert_allclose(encoder.encode(TEXTS), BiEncoder(tiny_model).encode(TEXTS), atol=1e-5)
    (folder / "export.json").write_text("{ not json")  # an unreadable record: the folder is made again
    again = BiEncoder(tiny_model, inference=exported("onnx"))
    assert json.loads((folder / "export.json").read_text())["file"] == "onnx/model.onnx"
    np.testing.assert_allclose(again.encode(TEXTS), encoder.encode(TEXTS), atol=1e-6)


def test_gate_refuses_a_corrupted_quantisation(tiny_model, export_cache, monkeypatch):
    """An 'int8' export whose weights were scrambled is refused by the gate with its numbers; the
    measurement is kept in the cache, and a lowered gate lets it through."""
    import onnx
    from onnx import numpy_helper

    def corrupted(source, target):
        model = onnx.load(str(source))
        generator = np.random.default_rng(0)
        for tensor in model.graph.initializer:
            weights = numpy_helper.to_array(tensor)
            if weights.ndim == 2 and weights.dtype == np.float32:
                tensor.CopyFrom(numpy_helper.from_array(generator.permutation(weights), tensor.name))
        onnx.save(model, str(target))

    monkeypatch.setattr("rankkit.encode.backend.quantize_onnx", corrupted)
    with pytest.raises(
        RankkitError, match=r"fails the quality gate: min cosine -?\d\.\d+, top-10 overlap \d\.\d+ on 80 texts"
    ):
        BiEncoder(tiny_model, inference=exported("onnx", "int8"))
    [folder] = export_cache.iterdir()
    [(measured, agreement)] = json.loads((folder / "export.json").read_text())["agreement"].items()
    assert measured.startswith("fp32-") and agreement["min_cosine"] < 0.97
    BiEncoder(tiny_model, inference=exported("onnx", "int8", gate_min_cosine=-1.0, gate_min_overlap=0.0))


# --- the commands --------------------------------------------------------------------------------


def test_index_build_and_search_with_backends(tiny_model, sample_dir, tmp_path):
    index = tmp_path / "dense-onnx"
    built = runner.invoke(
        app,
        ["index", "build", str(sample_dir / "collection.tsv"), "--kind", "dense", "--model",
         str(tiny_model), "--backend", "onnx", "-o", str(index)],
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    settings = json.loads((index / "manifest.json").read_text())["settings"]
    assert settings["backend"] == "onnx" and settings["quantize"] == "none"
    assert settings["agreement"]["texts"] == 80  # the gate ran on the corpus's passages
    query = ["search", "-i", str(index), "--query", "why is the sky blue", "-k", "3"]
    same = runner.invoke(app, [*query, "--backend", "onnx"])
    other = runner.invoke(app, [*query, "--backend", "torch", "--precision", "fp32"])
    assert same.exit_code == 0 and other.exit_code == 0, same.output + other.output
    assert "passages were encoded with backend onnx" not in same.output
    assert "passages were encoded with backend onnx (quantize none); its export agreed with PyTorch fp32" in (
        other.output
    )
    ranked = re.findall(r"\bs\d{3}\b", same.stdout)
    assert len(ranked) == 3 and ranked == re.findall(r"\bs\d{3}\b", other.stdout)


def test_openvino_int8_is_calibrated_on_the_index_corpus_and_searched_with_that_export(
    tiny_model, sample_dir, tmp_path, export_cache
):
    """Static int8 depends on its calibration texts: the export is keyed by them; a search on the
    same backend calibrates on the index's corpus too, so it finds the build's export."""
    index = tmp_path / "dense-ov8"
    backend = ["--backend", "openvino", "--quantize", "int8", "--gate-min-cosine", "-1", "--gate-min-overlap", "0"]
    built = runner.invoke(
        app,
        ["index", "build", str(sample_dir / "collection.tsv"), "--model", str(tiny_model), "-o", str(index), *backend],
    )
    assert built.exit_code == 0, built.output
    exports = sorted(export_cache.iterdir())
    searched = runner.invoke(app, ["search", "-i", str(index), "--query", "why is the sky blue", *backend])
    assert searched.exit_code == 0, searched.output
    assert sorted(export_cache.iterdir()) == exports and len(exports) == 1
    gate = {"gate_min_cosine": -1.0, "gate_min_overlap": 0.0}
    other = BiEncoder(tiny_model, sample=TEXTS, inference=exported("openvino", "int8", **gate))
    assert other.runner.export_folder not in exports  # other calibration texts: another export
    assert len(list(export_cache.iterdir())) == 2


def test_every_model_command_takes_the_backend_options():
    commands = [
        ["index", "build"], ["search"], ["mine"], ["rerank"], ["serve"], ["distill"], ["quickstart"],
        ["sentiment", "predict"], ["sentiment", "eval"],
    ]  # fmt: skip
    for command in commands:
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
        assert result.exit_code == 0, command
        for flag in ("--backend", "--quantize", "--gate-min-cosine", "--gate-min-overlap"):
            assert flag in result.output, (command, flag)
    training = runner.invoke(app, ["train", "biencoder", "--help"], env={"COLUMNS": "200"})
    assert "--backend" not in training.output  # a model being trained runs in PyTorch


# --- sentence-transformers loads the same files (its optimum backends need the bench environment) ---

ST_PYTHON = Path(__file__).resolve().parents[1] / ".venv-st" / "bin" / "python"
ST_ENCODE = """
import json, sys
import numpy as np
from sentence_transformers import SentenceTransformer
folder, backend, file_name, out = sys.argv[1:5]
kwargs = {"file_name": file_name}
if backend == "openvino":
    kwargs["ov_config"] = {"INFERENCE_PRECISION_HINT": "f32"}
model = SentenceTransformer(folder, backend=backend, model_kwargs=kwargs, device="cpu")
# one text per call: dynamic int8 quantises each call's activations together, so batches must match
np.save(out, np.stack([model.encode([text], normalize_embeddings=False)[0] for text in json.loads(sys.argv[5])]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend,quantize", [("onnx", "none"), ("onnx", "int8"), ("openvino", "none")])
def test_sentence_transformers_loads_the_exported_files(backend, quantize, tmp_path):
    assert ST_PYTHON.is_file(), f"{ST_PYTHON} missing. Fix: `make setup-bench`"
    gate = {"gate_min_cosine": -1.0, "gate_min_overlap": 0.0}  # the gate is not what this test is about
    encoder = BiEncoder("default", precision="fp32", inference=exported(backend, quantize, **gate))
    folder = encoder.runner.export_folder
    record = json.loads((folder / "export.json").read_text())
    out = tmp_path / "vectors.npy"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [str(ST_PYTHON), "-c", ST_ENCODE, str(folder), backend, record["file"], str(out), json.dumps(TEXTS)],
        check=True,
        env=env,
        stdout=sys.stderr,
    )
    ours = np.stack([encoder.encode([text])[0] for text in TEXTS])
    np.testing.assert_allclose(np.load(out), ours, atol=1e-5)
