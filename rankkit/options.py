"""Options declared once: a config field carries its own command-line facts.

A library config is a dataclass. Each field that a user can set from the command line is made
with `option(...)`, which records its help, its allowed range and its flags beside its default.
`rankkit.cli.groups` reads these fields to give a Typer command its parameters, so the library
config, the command's options and their help can never disagree.

An *option group* is a small dataclass of options that several commands share (the model
runtime, dense search, fusion, training schedule, output). A config takes a group's options by
inheriting from it (its fields then stay flat: `config.device`) or by holding it as a field
(`config.fusion`), and the command line shows each group in its own help panel.

This module imports nothing heavy: the CLI reads it before any command runs.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import MISSING, Field, dataclass
from typing import Any, ClassVar, Literal

from rankkit.errors import RankkitError

OPTION = "rankkit.option"  # the key of a field's metadata that holds its OptionSpec


@dataclass(frozen=True)
class OptionSpec:
    """How a config field appears on the command line."""

    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    flags: tuple[str, ...] = ()  # e.g. ("--index", "-i"); default: --field-name
    hidden_default: bool = False  # a default that says nothing on its own (e.g. None for 'from the manifest')
    argument: bool = False  # a positional argument instead of an option

    def range_text(self) -> str:
        """'>= 1 and < 2' for the help and the error of a value out of range; '' without bounds."""
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(bounds)

    def out_of_range(self, value: Any) -> bool:
        """Whether a number lies outside the bounds (nan and inf always do)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value):
            return True
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return below or above


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    factory: Any = MISSING,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    flags: tuple[str, ...] = (),
    hidden_default: bool = False,
    argument: bool = False,
) -> Any:
    """A dataclass field that is also a command-line option (no default: a required option), or
    with `argument` a positional argument."""
    spec = OptionSpec(help, low, high, low_open, high_open, tuple(flags), hidden_default, argument)
    return dataclasses.field(default=default, default_factory=factory, metadata={OPTION: spec})


def same_option(group: type, name: str, default: Any = MISSING, help: str | None = None) -> Any:
    """The option `name` of `group` with another default (or help) in a config built on it:
    sentiment training shares the training schedule's --lr, at its own default learning rate."""
    declared = {f.name: f for f in dataclasses.fields(group)}[name]
    spec = declared.metadata[OPTION]
    if help is not None:
        spec = dataclasses.replace(spec, help=help)
    if default is MISSING:
        default = declared.default
    return dataclasses.field(
        default=default,
        default_factory=declared.default_factory if default is MISSING else MISSING,
        metadata={OPTION: spec},
    )


def option_spec(field: Field) -> OptionSpec | None:
    """The command-line facts of a field, or None for a field the command line does not set."""
    return field.metadata.get(OPTION)


def check_options(config: Any) -> None:
    """Refuse option values outside their declared range or choices (nested groups included),
    as the command line does at parse time, so a Python caller meets the same rules."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            check_options(value)
        spec = option_spec(field)
        if spec is None or value is None:
            continue
        choices = [
            typing.get_args(t)
            for t in (hints[field.name], *typing.get_args(hints[field.name]))
            if typing.get_origin(t) is Literal
        ]
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if spec.out_of_range(item):
                raise RankkitError(f"{field.name}={item!r} is out of range. Fix: pass a value {spec.range_text()}")
            if choices and isinstance(item, str) and item not in choices[0]:
                raise RankkitError(f"unknown {field.name} {item!r}. Fix: use one of {', '.join(choices[0])}")


Precision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """Where and in which number format a model runs: every command that runs a model."""

    panel: ClassVar[str] = "Model runtime"

    device: str | None = option(
        None, "auto (default): cuda when present, else cpu; or cpu, cuda, cuda:N.", hidden_default=True
    )
    precision: Precision = option(
        "auto",
        "Number format the model computes in: auto (bf16 where the device runs it natively, else fp32; "
        "the choice is printed once), fp32, or bf16. Inference casts the weights; training keeps fp32 "
        "weights and runs the forward pass under bf16 autocast.",
    )


Backend = Literal["torch", "onnx", "openvino"]
Quantize = Literal["none", "int8"]
# the quality gate's defaults, set from measurement (benchmarks/results/backend_quality.md): of the
# exports measured on DL19 and SciFact dev, they pass those whose nDCG@10 stayed within 0.005 of
# PyTorch fp32 (the fp32 exports, OpenVINO int8 on DL19) and refuse the others (the other int8 ones)
GATE_MIN_COSINE = 0.99
GATE_MIN_OVERLAP = 0.95


@dataclass(frozen=True, kw_only=True)
class Inference(Runtime):
    """Which engine runs a model for inference, and the quality an exported model must keep: every
    command that runs a bi-encoder, cross-encoder or SPLADE model without training it."""

    panel: ClassVar[str] = "Model runtime"

    backend: Backend = option(
        "torch",
        "Engine that runs the model: torch, onnx (ONNX Runtime) or openvino, on the CPU. The model is "
        "exported once into rankkit's cache ($RANKKIT_CACHE/exports) and reused.",
    )
    quantize: Quantize = option(
        "none",
        "none, or int8: onnx quantises the weights (dynamic int8), openvino calibrates on a sample of the "
        "texts (static int8). Needs --backend onnx or openvino.",
    )
    gate_min_cosine: float = option(
        GATE_MIN_COSINE,
        "Quality gate of an exported model: the lowest cosine to PyTorch fp32's vectors (cross-encoders: "
        "the lowest score correlation per query) on a sample of the texts; an export below it is refused.",
        low=-1,
        high=1,
    )
    gate_min_overlap: float = option(
        GATE_MIN_OVERLAP,
        "Quality gate of an exported model: the mean overlap of its top 10 with PyTorch fp32's top 10 "
        "on the sample; an export below it is refused.",
        low=0,
        high=1,
    )

    # not an option: a server answers one query at a time on cores it shares, where one thread per
    # small call wins (rankkit.encode.backend.EngineForward); batch jobs use every thread
    small_calls_on_one_thread: bool = False

    @property
    def exported(self) -> bool:
        """Whether the model runs as an export (any backend but torch, or quantised)."""
        return self.backend != "torch" or self.quantize != "none"

    def inference_options(self) -> dict[str, Any]:
        """This group's values (device and precision included), to give another config the same."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(Inference)}


TORCH_INFERENCE = Inference()  # PyTorch without quantisation: what a model runs on when no backend is named


@dataclass(frozen=True, kw_only=True)
class Output:
    """What a command writes and whether it may replace an earlier output."""

    panel: ClassVar[str] = "Output"

    output: str = option(help="Where the command writes its output.", flags=("--output", "-o"))
    overwrite: bool = option(
        False, "Replace an existing output (only one rankkit wrote), once the new one is complete."
    )
