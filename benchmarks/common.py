"""Helpers shared by the benchmark scripts: machine facts, timing statistics, synthetic embeddings,
and saving a result as benchmarks/results/<name>.json (rows + metadata) and <name>.md (a Markdown
table), atomically; $RANKKIT_RESULTS names another results folder (tests write to a temporary one)."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from rankkit.data.collection import shared_data_root
from rankkit.data.files import atomic_write

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_ENV = "RANKKIT_RESULTS"
REPO_ROOT = BENCH_DIR.parent
PACKAGES = ("rankkit", "torch", "transformers", "sentence-transformers", "tokenizers", "faiss-cpu", "numpy", "pyserini")


def dl19_dir() -> Path:
    """The dl19 collection folder ($RANKKIT_DATA/dl19, else ../shared/data/dl19)."""
    return shared_data_root() / "dl19"


def results_dir() -> Path:
    """$RANKKIT_RESULTS when set, else benchmarks/results."""
    return Path(os.environ[RESULTS_ENV]) if os.environ.get(RESULTS_ENV) else RESULTS_DIR


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine_facts() -> dict[str, Any]:
    """CPU count, threads, load, library versions: what a reader needs to judge the numbers."""
    facts: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "versions": versions(),
        "env": {
            k: os.environ.get(k)
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM", "RANKKIT_DATA")
        },
    }
    try:
        facts["cpu_model"] = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        facts["cpu_model"] = platform.processor() or None
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
        facts["native_bf16"] = "avx512_bf16" in flags or "amx_bf16" in flags
    except (OSError, StopIteration):
        facts["native_bf16"] = None
    if "torch" in sys.modules:
        import torch

        facts["torch_threads"] = torch.get_num_threads()
        facts["torch_interop_threads"] = torch.get_num_interop_threads()
    if "faiss" in sys.modules:
        import faiss

        facts["faiss_omp_threads"] = faiss.omp_get_max_threads()
    return facts


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # nan
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.3f}"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as a Markdown table; columns default to the keys in first-seen order."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|",
    ]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def save_result(
    name: str,
    rows: Sequence[dict[str, Any]],
    *,
    title: str | None = None,
    columns: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
    extra_tables: dict[str, Sequence[dict[str, Any]]] | None = None,
    started: float | None = None,
) -> Path:
    """Write benchmarks/results/<name>.json and <name>.md (temp file, then rename) and print the table.

    `extra_tables` are further titled tables (e.g. a parameter sweep) kept in both files."""
    meta = {
        "name": name,
        "command": command_line(),
        "cwd": os.getcwd(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": round(time.time() - started, 1) if started is not None else None,
        "params": params or {},
        "machine": machine_facts(),
        "notes": list(notes),
    }
    payload = {"meta": meta, "rows": list(rows), "extra_tables": {k: list(v) for k, v in (extra_tables or {}).items()}}
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{name}.json"
    with atomic_write(json_path) as handle:
        json.dump(payload, handle, indent=2, default=str)
        handle.write("\n")

    table = markdown_table(rows, columns)
    machine = meta["machine"]
    parts = [
        f"# {title or name}",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}" + (f" (took {meta['duration_s']} s)" if meta["duration_s"] is not None else ""),
        f"- machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs"
        + {True: ", native bf16 (AVX512-BF16/AMX)", False: ", no native bf16"}.get(machine.get("native_bf16"), "")
        + (f", torch threads {machine['torch_threads']}" if "torch_threads" in machine else "")
        + (f", faiss threads {machine['faiss_omp_threads']}" if "faiss_omp_threads" in machine else "")
        + f", load average at the end {machine['load_average']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v),
    ]
    if params:
        parts.append("- parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    parts += ["", table]
    for extra_title, extra_rows in (extra_tables or {}).items():
        parts += ["", f"## {extra_title}", "", markdown_table(extra_rows)]
    if notes:
        parts += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    text = "\n".join(parts) + "\n"
    with atomic_write(folder / f"{name}.md") as handle:
        handle.write(text)
    print(text)
    print(f"saved {json_path} and {json_path.with_suffix('.md')}")
    return json_path


def vector_statistics(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of embedding rows, to draw synthetic vectors like them."""
    sample = np.asarray(vectors, dtype=np.float64)
    return sample.mean(axis=0), np.cov(sample, rowvar=False)


def synthetic_vectors(
    count: int, mean: np.ndarray, covariance: np.ndarray, seed: int, chunk: int = 100_000
) -> np.ndarray:
    """`count` float32 rows drawn from a Gaussian with this mean and covariance, then normalised to
    unit length (as MiniLM's vectors are). A small ridge keeps the Cholesky factor defined when the
    covariance came from fewer vectors than dimensions."""
    dimension = len(mean)
    ridge = 1e-6 * max(float(np.trace(covariance)) / dimension, 1e-12)
    factor = np.linalg.cholesky(covariance + ridge * np.eye(dimension))
    rng = np.random.default_rng(seed)
    out = np.empty((count, dimension), dtype=np.float32)
    for start in range(0, count, chunk):
        rows = min(chunk, count - start)
        drawn = mean + rng.standard_normal((rows, dimension)) @ factor.T
        out[start : start + rows] = drawn / np.linalg.norm(drawn, axis=1, keepdims=True)
    return out


def ivf_lists(count: int) -> int:
    """About 4 sqrt(n) inverted lists for n vectors, a power of two (FAISS's guidelines: 4-16 sqrt(n))."""
    return int(2 ** round(np.log2(4 * np.sqrt(count))))


def isotropic_statistics(dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero mean, identity covariance: unit-norm Gaussian vectors, when no real embeddings are at hand."""
    return np.zeros(dimension), np.eye(dimension)


def quiet_torch(threads: int) -> None:
    """Pin torch to `threads` and silence transformers' logging and progress bars."""
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
