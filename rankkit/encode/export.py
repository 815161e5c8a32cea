"""Exporting a transformer for ONNX Runtime and OpenVINO, without optimum (whose releases cap
transformers below rankkit's): torch.onnx's exporter writes the ONNX graph, onnxruntime's
quantize_dynamic makes its int8 form, and OpenVINO converts the ONNX graph (NNCF calibrates its
static int8 form on sample inputs).

The graph takes the inputs rankkit feeds (input_ids, attention_mask, and token_type_ids for a
cross-encoder's pairs) with dynamic batch and sequence axes, and returns the one output rankkit
reads (last_hidden_state or logits), under the names optimum uses, so sentence-transformers'
`backend="onnx"` / `backend="openvino"` loads the same files.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rankkit.errors import RankkitError

OPSET = 18
ONNX_FILE = {"none": "onnx/model.onnx", "int8": "onnx/model_qint8.onnx"}
OPENVINO_FILE = {"none": "openvino/openvino_model.xml", "int8": "openvino/openvino_model_qint8_quantized.xml"}


class _OneOutput(torch.nn.Module):
    """The model with positional inputs and one tensor out, as the exporter wants it."""

    def __init__(self, model: torch.nn.Module, output: str):
        super().__init__()
        self.model, self.output = model, output

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return getattr(self.model(**inputs), self.output)


def export_onnx(model: torch.nn.Module, output: str, input_names: Sequence[str], path: Path) -> None:
    """Write `model` (a transformers model in fp32 on the CPU) as one self-contained ONNX file."""
    example = torch.tensor([[101, 2023, 2003, 1037, 102], [101, 2023, 102, 0, 0]])
    inputs = {
        "input_ids": example,
        "attention_mask": (example != 0).long(),
        "token_type_ids": torch.zeros_like(example),
    }
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    wrapper = _OneOutput(model, output).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet():
        torch.onnx.export(
            wrapper,
            (),
            str(path),
            kwargs={name: inputs[name] for name in input_names},
            input_names=list(input_names),
            output_names=[output],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in input_names},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
        )


def quantize_onnx(source: Path, target: Path) -> None:
    """Dynamic int8: int8 weights per output channel, activations quantised per call (no calibration).
    reduce_range keeps u8 x s8 products from saturating on CPUs without VNNI."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            source, target, weight_type=QuantType.QInt8, per_channel=True, reduce_range=not _cpu_has_vnni()
        )


def convert_openvino(source: Path, target: Path, calibration: Sequence[dict[str, np.ndarray]] | None) -> None:
    """The ONNX graph `source` as an OpenVINO IR (xml + bin) at `target`, fp32 weights; with
    `calibration` inputs, statically quantised to int8 by NNCF (transformer preset)."""
    import openvino

    with _quiet():
        model = openvino.convert_model(str(source))
        if calibration is not None:
            import nncf

            model = nncf.quantize(
                model,
                nncf.Dataset(list(calibration)),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(calibration),
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        openvino.save_model(model, str(target), compress_to_fp16=False)


def _cpu_has_vnni() -> bool:
    """Whether the CPU has AVX512-VNNI or AVX-VNNI (int8 dot products without saturation)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


@contextlib.contextmanager
def _quiet():
    """The exporters' progress lines, warnings and info logs are not the user's business; their
    errors are, and are raised as a RankkitError naming the export."""
    quiet_loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "nncf")]
    levels = [logger.level for logger in quiet_loggers]
    try:
        for logger in quiet_loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    except RankkitError:
        raise
    except Exception as exc:  # an exporter's failure, whatever its type: one clear error
        raise RankkitError(
            f"exporting the model failed ({type(exc).__name__}: {str(exc)[:300]}). "
            "Fix: run it with --backend torch, or report the model to rankkit"
        ) from exc
    finally:
        for logger, level in zip(quiet_loggers, levels):
            logger.setLevel(level)
