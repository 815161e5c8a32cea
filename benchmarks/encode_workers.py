"""Encoder worker processes for `bench_encode.py --backends`: one process per system, which loads
its model once, then encodes on request.

    python benchmarks/encode_workers.py --system rk-onnx-int8 --threads 2 --model default \\
        --st-folder work/bench-encode/st-models/... --calibration work/bench-encode/calibration.json \\
        --calibration-tag dl19-1000-1300

The rankkit systems run under rankkit's environment (.venv), the sentence-transformers systems under
.venv-st (sentence-transformers with optimum, which rankkit's transformers cannot run): this module
imports only the standard library and numpy at the top, so it loads in both.

Protocol: JSON lines. Once loaded, the worker writes one line, {"ready": true, "describe": ...,
"versions": ...} or {"ready": false, "error": ...}, then answers each request line
{"texts": [...], "role": "passage"|"query", "out": path or null} with {"wall": s, "cpu": s, "n": k}:
wall seconds (time.perf_counter) and process CPU seconds (time.process_time, all threads) of the
encode call alone; the vectors (float32 [k, dim]) go to `out` as .npy after the clock stops. An empty
line or EOF ends the worker. Everything the libraries print goes to stderr, so stdout carries only the
protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

ST_BATCH_SIZE = 32
# OpenVINO in f32 on both sides: a CPU with AVX512-BF16/AMX would otherwise run OpenVINO in bf16 by default
OPENVINO_PRECISION = "f32"
OV_INT8_SUFFIX = "qint8_quantized"
VERSION_PACKAGES = (
    "rankkit",
    "torch",
    "transformers",
    "sentence-transformers",
    "tokenizers",
    "onnxruntime",
    "openvino",
    "optimum",
    "optimum-onnx",
    "optimum-intel",
    "nncf",
    "numpy",
)


@dataclass(frozen=True)
class System:
    key: str
    label: str
    side: str  # "rankkit" or "st"
    backend: str  # torch | onnx | openvino
    variant: str  # rankkit: none | int8; st: none | O3 | O4 | int8


SYSTEMS = {
    s.key: s
    for s in (
        System("rk-torch", "rankkit torch fp32", "rankkit", "torch", "none"),
        System("rk-onnx", "rankkit onnx", "rankkit", "onnx", "none"),
        System("rk-onnx-int8", "rankkit onnx int8", "rankkit", "onnx", "int8"),
        System("rk-openvino", "rankkit openvino", "rankkit", "openvino", "none"),
        System("rk-openvino-int8", "rankkit openvino int8", "rankkit", "openvino", "int8"),
        System("st-torch", "ST torch", "st", "torch", "none"),
        System("st-onnx", "ST onnx", "st", "onnx", "none"),
        System("st-onnx-O3", "ST onnx O3", "st", "onnx", "O3"),
        System("st-onnx-O4", "ST onnx O4", "st", "onnx", "O4"),
        System("st-onnx-int8", "ST onnx int8", "st", "onnx", "int8"),
        System("st-openvino", "ST openvino", "st", "openvino", "none"),
        System("st-openvino-int8", "ST openvino int8", "st", "openvino", "int8"),
    )
}
REFERENCE = "rk-torch"

Encode = Callable[[list[str], str], np.ndarray]


def env_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in VERSION_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def cpu_flags() -> set[str]:
    try:
        return set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return set()


def onnx_int8_config() -> str:
    """sentence-transformers' dynamic int8 configuration for this CPU."""
    return "avx512_vnni" if "avx512_vnni" in cpu_flags() else "avx2"


def openvino_config(threads: int) -> dict[str, Any]:
    return {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION}


def openvino_facts(compiled) -> dict[str, Any]:
    """What the compiled OpenVINO model actually runs with."""
    facts = {}
    for name in ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS", "PERFORMANCE_HINT", "NUM_STREAMS"):
        value = compiled.get_property(name)
        facts[name] = value.to_string() if hasattr(value, "to_string") else str(value)  # Type f32, not <Type: ...>
    return facts


def rankkit_encoder(system: System, args: argparse.Namespace, calibration: list[str]) -> tuple[Encode, dict]:
    """rankkit's BiEncoder on the system's backend, fp32; exports go to $RANKKIT_CACHE (set by the driver)."""
    import torch

    torch.set_num_threads(args.threads)
    from rankkit.encode.biencoder import BiEncoder
    from rankkit.options import Inference

    encoder = BiEncoder(
        args.model,
        device="cpu",
        precision="fp32",
        # every system is measured; the benchmark applies the quality gate itself, to all systems alike
        inference=Inference(
            backend=system.backend, quantize=system.variant, gate_min_cosine=-1.0, gate_min_overlap=0.0
        ),
        sample=calibration,
    )
    described: dict[str, Any] = {
        **encoder.runner.describe(),
        "max_tokens": encoder.max_tokens,
        "max_batch_size": encoder.max_batch_size,
        "torch_threads": torch.get_num_threads(),
    }
    forward = encoder.runner.forward
    try:  # what the runtime reports; a record only, so a renamed attribute does not cost the row
        engine = forward._engines[forward.threads]
        if system.backend == "openvino":
            described["openvino"] = openvino_facts(engine)
        elif system.backend == "onnx":
            described["ort_intra_op_threads"] = engine.get_session_options().intra_op_num_threads
    except AttributeError as error:
        described["runtime"] = f"not read: {error}"
    return (lambda texts, role: encoder.encode(texts, role=role)), described


def st_encoder(system: System, args: argparse.Namespace, calibration: list[str]) -> tuple[Encode, dict]:
    """SentenceTransformer on the system's backend, from the benchmark's copy of the model folder,
    exported there (the way sentence-transformers' docs show) when the file is missing."""
    import torch

    torch.set_num_threads(args.threads)
    from sentence_transformers import SentenceTransformer

    folder = Path(args.st_folder)
    described: dict[str, Any] = {"folder": str(folder), "torch_threads": torch.get_num_threads()}
    if system.backend == "torch":
        model = SentenceTransformer(str(folder), device="cpu")
    elif system.backend == "onnx":
        import onnxruntime

        def kwargs(file_name: str | None) -> dict[str, Any]:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            found = {"provider": "CPUExecutionProvider", "session_options": options}
            # no file_name to export: a file_name in a subfolder would make the export look for onnx/config.json
            return {**found, "file_name": file_name} if file_name else found

        file_name = prepare_st_onnx(system, folder, kwargs)
        model = SentenceTransformer(str(folder), device="cpu", backend="onnx", model_kwargs=kwargs(file_name))
        session = model.transformers_model.session
        described.update(file=file_name, ort_intra_op_threads=session.get_session_options().intra_op_num_threads)
    else:
        config = openvino_config(args.threads)
        file_name = prepare_st_openvino(system, folder, config, calibration, args.calibration_tag)
        model = SentenceTransformer(
            str(folder), device="cpu", backend="openvino", model_kwargs={"ov_config": config, "file_name": file_name}
        )
        described.update(file=file_name, openvino=openvino_facts(model.transformers_model.request))
    described["max_seq_length"] = model.max_seq_length

    def encode(texts: list[str], role: str) -> np.ndarray:
        call = model.encode_query if role == "query" else model.encode_document
        return call(
            texts,
            batch_size=ST_BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    return encode, described


def prepare_st_onnx(system: System, folder: Path, kwargs: Callable[[str | None], dict]) -> str:
    """The ONNX file of `system` in `folder`, exported first when missing: onnx/model.onnx by loading
    with backend="onnx" and save_pretrained; O3/O4 with export_optimized_onnx_model; int8 with
    export_dynamic_quantized_onnx_model."""
    from sentence_transformers import (
        SentenceTransformer,
        export_dynamic_quantized_onnx_model,
        export_optimized_onnx_model,
    )

    base = "onnx/model.onnx"
    if system.variant == "none":
        target = base
    elif system.variant == "int8":
        target = f"onnx/model_qint8_{onnx_int8_config()}.onnx"
    else:
        target = f"onnx/model_{system.variant}.onnx"
    if (folder / target).exists():
        return target
    if not (folder / base).exists():
        print(f"exporting {folder} to ONNX", file=sys.stderr)
        model = SentenceTransformer(str(folder), device="cpu", backend="onnx", model_kwargs=kwargs(None))
        model.save_pretrained(str(folder))
    if target != base:
        model = SentenceTransformer(str(folder), device="cpu", backend="onnx", model_kwargs=kwargs(base))
        if system.variant == "int8":
            export_dynamic_quantized_onnx_model(model, onnx_int8_config(), str(folder))
        else:
            export_optimized_onnx_model(model, system.variant, str(folder))
    if not (folder / target).exists():
        raise RuntimeError(f"the export wrote no {target} in {folder}")
    return target


def prepare_st_openvino(system: System, folder: Path, config: dict[str, Any], calibration: list[str], tag: str) -> str:
    """The OpenVINO IR of `system` in `folder`, exported first when missing. int8 follows
    export_static_quantized_openvino_model (OVQuantizer, OVQuantizationConfig, texts tokenized with
    padding to 384 tokens, the file saved as openvino/openvino_model_<suffix>.xml), except that the
    calibration texts are the benchmark's DL19 passages instead of GLUE SST-2 from the Hub."""
    from sentence_transformers import SentenceTransformer

    base = "openvino/openvino_model.xml"
    suffix = f"{OV_INT8_SUFFIX}_{tag}"
    target = base if system.variant == "none" else f"openvino/openvino_model_{suffix}.xml"
    if (folder / target).exists():
        return target
    if not (folder / base).exists():
        print(f"exporting {folder} to OpenVINO", file=sys.stderr)
        model = SentenceTransformer(str(folder), device="cpu", backend="openvino", model_kwargs={"ov_config": config})
        model.save_pretrained(str(folder))
    if target != base:
        from optimum.intel.openvino import OVConfig, OVQuantizationConfig, OVQuantizer
        from sentence_transformers.backend.utils import save_or_push_to_hub_model

        # quantises the loaded model in place: this object is thrown away, the timed one loads the file
        model = SentenceTransformer(
            str(folder), device="cpu", backend="openvino", model_kwargs={"ov_config": config, "file_name": base}
        )
        quantization = OVQuantizationConfig(num_samples=len(calibration))
        quantizer = OVQuantizer.from_pretrained(model.transformers_model)
        # what sentence-transformers' preprocess_function makes of each text; the list takes the same
        # path through OVQuantizer as a datasets.Dataset of these rows (datasets is not installed)
        dataset = [dict(model.tokenizer(t, padding="max_length", max_length=384, truncation=True)) for t in calibration]
        print(f"quantizing {folder} for OpenVINO int8 on {len(dataset)} calibration passages", file=sys.stderr)
        save_or_push_to_hub_model(
            export_function=lambda save_dir: quantizer.quantize(
                dataset, save_directory=save_dir, ov_config=OVConfig(quantization_config=quantization)
            ),
            export_function_name="export_static_quantized_openvino_model",
            config=quantization,
            model_name_or_path=str(folder),
            file_suffix=suffix,
            backend="openvino",
            model=model,
        )
    if not (folder / target).exists():
        raise RuntimeError(f"the export wrote no {target} in {folder}")
    return target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", required=True, choices=sorted(SYSTEMS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="default", help="rankkit model name (rankkit systems)")
    parser.add_argument("--st-folder", help="the benchmark's copy of the model folder (sentence-transformers systems)")
    parser.add_argument("--calibration", required=True, help="JSON list of calibration passages")
    parser.add_argument("--calibration-tag", default="dl19", help="names the int8 calibration in ST's file name")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # the protocol owns the real stdout; anything else written to fd 1 goes to stderr
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    system = SYSTEMS[args.system]
    calibration = json.loads(Path(args.calibration).read_text())
    started = time.perf_counter()
    try:
        build = rankkit_encoder if system.side == "rankkit" else st_encoder
        encode, described = build(system, args, calibration)
    except Exception as error:  # reported as the system's row, not a crash of the benchmark
        traceback.print_exc()
        send({"ready": False, "error": f"{type(error).__name__}: {error}".strip()[:2000]})
        return
    send(
        {
            "ready": True,
            "describe": described,
            "versions": env_versions(),
            "python": sys.executable,
            "load_s": round(time.perf_counter() - started, 2),
        }
    )
    for line in sys.stdin:
        if not line.strip():
            break
        request = json.loads(line)
        texts = request["texts"]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        vectors = encode(texts, request.get("role", "passage"))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if request.get("out"):
            np.save(request["out"], np.asarray(vectors, dtype=np.float32))
        send({"wall": wall, "cpu": cpu, "n": len(texts)})


if __name__ == "__main__":
    main()
