"""Inference backends: who runs a transformer's forward pass for rankkit's encoders.

Every encoder (bi-encoder, cross-encoder, SPLADE) batches, pads and post-processes its texts
itself and hands each padded batch to a *forward pass*: a callable from model inputs (torch
tensors: input_ids, attention_mask[, token_type_ids]) to the one output it reads
(last_hidden_state or logits). PyTorch, ONNX Runtime and OpenVINO each provide one, so rankkit's
length-sorted token-budget batching and the model's sentence-transformers modules run unchanged
on every backend (ONNX Runtime and OpenVINO take dynamic shapes).

An exported forward pass comes from the export cache (rankkit.encode.export_cache) and must pass
the quality gate (rankkit.encode.quality_gate) against PyTorch fp32 on sample texts; its
agreement is recorded in the cache and in what `describe()` returns for manifests.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from rankkit.encode.device import choose_device
from rankkit.encode.export import ONNX_FILE, OPENVINO_FILE, OPSET, convert_openvino, export_onnx, quantize_onnx
from rankkit.encode.export_cache import ExportKey, cached_export, record_agreement
from rankkit.encode.precision import resolve_precision
from rankkit.encode.quality_gate import Agreement, check_agreement
from rankkit.errors import RankkitError
from rankkit.options import Inference

Inputs = dict[str, torch.Tensor]
Forward = Callable[[Inputs], torch.Tensor]
SMALL_CALL_TOKENS = 32  # a server's calls of up to this many padded tokens (a query) run on one thread
# ONNX Runtime's threads spin while they wait for work (its default): 20% faster on large calls on
# an idle machine, 20% slower beside other work, faster on small calls in both
ORT_SPINNING = True
# OpenVINO prepares its kernels again whenever the input shape changes: a call of up to
# OPENVINO_PAD_ROWS texts (one query) is padded up to a multiple of OPENVINO_LENGTH_STEP tokens, so that
# queries share a few shapes: 1.2x faster single queries in int8, while padding batches costs more
# than it saves (benchmarks/results/openvino_shapes.md, openvino_shapes-every-call.md)
OPENVINO_LENGTH_STEP = 16
OPENVINO_PAD_ROWS = 1
TASK_OUTPUT = {"feature-extraction": "last_hidden_state", "sequence-classification": "logits", "fill-mask": "logits"}


class TorchForward:
    """The PyTorch model itself (any device, fp32 or bf16 weights)."""

    def __init__(self, model: torch.nn.Module, output: str):
        self.model, self.output = model, output

    def __call__(self, inputs: Inputs) -> torch.Tensor:
        return getattr(self.model(**inputs), self.output)


class EngineForward:
    """An exported model run by an engine on the CPU with `threads` threads; with
    `small_call_tokens`, calls of at most that many padded tokens (one query) run on a one-thread
    instance of the engine: beside other work on two cores, two threads that split a tiny matrix
    product cost more than they save (benchmarks/results/backend_threads-loaded.md)."""

    def __init__(self, threads: int, small_call_tokens: int = 0):
        self.threads, self.small_call_tokens = threads, small_call_tokens
        self._engines: dict[int, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, inputs: Inputs) -> torch.Tensor:
        threads = 1 if inputs["input_ids"].numel() <= self.small_call_tokens else self.threads
        engine = self._engines.get(threads)
        if engine is None:
            with self._lock:
                engine = self._engines.get(threads) or self._engines.setdefault(threads, self.open(threads))
        feeds = {name: inputs[name].cpu().numpy() for name in self.input_names}
        return torch.from_numpy(self.run(engine, feeds))

    def open(self, threads: int) -> Any:
        raise NotImplementedError

    def run(self, engine: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError


class OnnxForward(EngineForward):
    """An ONNX file run by ONNX Runtime."""

    def __init__(self, path: Path, threads: int, small_call_tokens: int = 0):
        super().__init__(threads, small_call_tokens)
        self.path = path
        self._engines[threads] = self.open(threads)
        self.input_names = [node.name for node in self._engines[threads].get_inputs()]

    def open(self, threads: int) -> Any:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if ORT_SPINNING else "0")
        return onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def run(self, engine: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return engine.run(None, feeds)[0]


class OpenVinoForward(EngineForward):
    """An OpenVINO IR compiled for the CPU, in fp32 (or bf16 where `precision` says so); one infer
    request per calling thread."""

    def __init__(self, path: Path, threads: int, precision: str, small_call_tokens: int = 0):
        super().__init__(threads, small_call_tokens)
        self.path, self.precision = path, precision
        self._engines[threads] = self.open(threads)
        self.input_names = [port.get_any_name() for port in self._engines[threads].inputs]
        self._requests = threading.local()

    def open(self, threads: int) -> Any:
        import openvino

        config = {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        return openvino.Core().compile_model(str(self.path), "CPU", config)

    def run(self, engine: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
        requests = self._requests.__dict__.setdefault("by_engine", {})
        request = requests.get(id(engine)) or requests.setdefault(id(engine), engine.create_infer_request())
        rows, length = feeds["input_ids"].shape
        extra = -length % OPENVINO_LENGTH_STEP  # masked positions: the real tokens' outputs do not change
        if rows <= OPENVINO_PAD_ROWS and extra:
            feeds = {name: np.pad(array, ((0, 0), (0, extra))) for name, array in feeds.items()}
        output = request.infer(feeds)[engine.output(0)]
        return np.array(output[:, :length] if output.ndim == 3 else output)


@dataclass
class Runner:
    """A model's forward pass on its backend, and what a manifest records about it."""

    forward: Forward
    backend: str = "torch"
    quantize: str = "none"
    precision: str = "fp32"
    export_folder: Path | None = None
    agreement: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """backend, quantize and (for an export) the quality gate's agreement, for manifests."""
        described: dict[str, Any] = {"backend": self.backend, "quantize": self.quantize}
        if self.export_folder is not None:
            described["agreement"] = self.agreement
        return described


def backend_device(inference: Inference, device: str | None) -> torch.device:
    """The device a model runs on: an exported model runs on the CPU (auto means cpu there)."""
    if not inference.exported:
        return choose_device(device)
    if device not in (None, "auto", "cpu"):
        raise RankkitError(
            f"--backend {inference.backend} runs on the CPU, not on {device}. "
            "Fix: pass --device cpu, or --backend torch to run on a GPU"
        )
    return torch.device("cpu")


def backend_precision(inference: Inference, precision: str, device: torch.device) -> str:
    """The precision a backend computes in: torch and openvino as --precision says (auto: bf16
    where native), onnx in fp32 (its int8 is --quantize)."""
    if inference.quantize != "none" and inference.backend == "torch":
        raise RankkitError("--quantize int8 needs an exported model. Fix: add --backend onnx or --backend openvino")
    if inference.backend == "onnx" or inference.quantize == "int8":
        if precision == "bf16":
            raise RankkitError(
                f"--precision bf16 does not apply to --backend {inference.backend}"
                f"{' --quantize int8' if inference.quantize == 'int8' else ''}. Fix: use --precision auto or fp32"
            )
        return "fp32"
    return resolve_precision(precision, device)


def exported_runner(
    model: torch.nn.Module,
    *,
    model_dir: Path,
    fingerprint: str,
    task: str,
    input_names: Sequence[str],
    inference: Inference,
    precision: str,
    sample: Sequence[str],
    sample_inputs: Callable[[], list[Inputs]],
    measure: Callable[[Forward], Agreement],
    what: str,
) -> Runner:
    """The forward pass of `model` (fp32, on the CPU) exported for `inference`'s backend: taken from
    the export cache or exported into it, and checked by the quality gate. `sample` are the gate's
    texts, `sample_inputs()` their padded batches (OpenVINO's int8 calibration), and
    `measure(forward)` compares the encoder's outputs on them through `forward` with PyTorch fp32's."""
    output = TASK_OUTPUT[task]
    texts = hashlib.sha256("\n".join(sample).encode()).hexdigest()[:12]
    calibrated = inference.backend == "openvino" and inference.quantize == "int8"
    key = ExportKey(fingerprint, task, inference.backend, inference.quantize, texts if calibrated else "")

    def write(folder: Path) -> dict[str, Any]:
        print(f"exporting {what} (quantize {inference.quantize}) once, into {folder.parent} ...", file=sys.stderr)
        onnx_path = folder / ONNX_FILE["none"]
        export_onnx(model, output, input_names, onnx_path)
        calibration = None
        if inference.backend == "onnx" and inference.quantize == "int8":
            quantize_onnx(onnx_path, folder / ONNX_FILE["int8"])
            onnx_path.unlink()
        elif inference.backend == "openvino":
            if inference.quantize == "int8":
                calibration = [{name: batch[name].numpy() for name in input_names} for batch in sample_inputs()]
            convert_openvino(onnx_path, folder / OPENVINO_FILE[inference.quantize], calibration)
            onnx_path.unlink()
            onnx_path.parent.rmdir()
        return {
            "file": _model_file(inference),
            "task": task,
            "opset": OPSET,
            "calibration_batches": len(calibration) if calibration is not None else None,
        }

    folder, record = cached_export(key, model_dir, write)
    forward = open_forward(folder / record["file"], inference, precision)
    measured = f"{precision}-{texts}"  # the gate's numbers depend on the precision and the sample
    agreement = record.get("agreement", {}).get(measured)
    if agreement is None:
        agreement = measure(forward).as_record()
        record_agreement(folder, measured, agreement)
    check_agreement(Agreement(**agreement), inference.gate_min_cosine, inference.gate_min_overlap, what)
    return Runner(forward, inference.backend, inference.quantize, precision, folder, agreement)


def classifier_inputs(tokenizer) -> tuple[str, ...]:
    """The inputs a sequence classifier's export takes: token_type_ids too where its tokenizer
    makes them (BERT's pairs), as rankkit's tokenising then feeds them."""
    segments = ("token_type_ids",) if "token_type_ids" in tokenizer.model_input_names else ()
    return ("input_ids", "attention_mask", *segments)


def sequence_classifier(model_dir: Path, **config: Any) -> tuple[torch.nn.Module, bool]:
    """A transformers sequence classifier from `model_dir`, and whether its head is new: random,
    because the folder lacks weights beyond a pooler some encoders omit (an encoder checkpoint).
    Such a head differs each load, so its export could not be reused: exporting it is refused."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialised head" is expected from an encoder checkpoint
    try:
        model, loading = AutoModelForSequenceClassification.from_pretrained(
            model_dir, output_loading_info=True, **config
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, any("pooler" not in key for key in loading["missing_keys"])


def require_trained_head(
    new_head: bool, model_dir: Path, inference: Inference, head: str, what: str, train: str
) -> None:
    """Refuse to export a sequence classifier whose `head` is new (see sequence_classifier):
    `what` names the model, `train` the command that trains its head."""
    if inference.exported and new_head:
        raise RankkitError(
            f"{model_dir}: no trained {head} head (a new, random one was made), so there is no "
            f"{what} to export for --backend {inference.backend}. Fix: train it first "
            f"({train}) and pass the trained folder, or use --backend torch"
        )


def open_forward(path: Path, inference: Inference, precision: str) -> Forward:
    """The ONNX Runtime or OpenVINO forward pass of an exported file, on torch's thread count."""
    threads = torch.get_num_threads()
    small_call_tokens = SMALL_CALL_TOKENS if inference.small_calls_on_one_thread else 0
    if inference.backend == "onnx":
        return OnnxForward(path, threads, small_call_tokens)
    return OpenVinoForward(path, threads, precision, small_call_tokens)


def _model_file(inference: Inference) -> str:
    files = ONNX_FILE if inference.backend == "onnx" else OPENVINO_FILE
    return files[inference.quantize]


def sample_texts(corpus: str | Path | None = None, fmt: str | None = None, limit: int = 256) -> list[str]:
    """The quality gate's texts: the first `limit` passages of `corpus` (an index build's), else
    rankkit's bundled sample passages."""
    from itertools import islice

    from rankkit.data.collection import SAMPLE_DIR
    from rankkit.data.corpus import read_corpus

    source = corpus if corpus is not None else SAMPLE_DIR / "collection.tsv"
    return [doc.contents for doc in islice(read_corpus(source, fmt), limit)]


def backend_note(settings: dict[str, Any], runner: Runner, what: str) -> str | None:
    """A line for a user who searches an index with another backend or quantisation than it was
    built with (allowed): both, and the agreement with PyTorch fp32 the build recorded."""
    built = (settings.get("backend", "torch"), settings.get("quantize", "none"))
    if built == (runner.backend, runner.quantize):
        return None
    agreement = settings.get("agreement")
    recorded = (
        f"; its export agreed with PyTorch fp32 at min cosine {agreement['min_cosine']}, "
        f"top-10 overlap {agreement['top10_overlap']}"
        if agreement
        else ""
    )
    return (
        f"{what}: passages were encoded with backend {built[0]} (quantize {built[1]}){recorded}; "
        f"queries are encoded with {runner.backend} (quantize {runner.quantize})"
    )
