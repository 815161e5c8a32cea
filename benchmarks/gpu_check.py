"""Device check: what a GPU gives rankkit against this machine's CPU, in one short run.

    benchmarks/gpu_check.sh            # or: .venv/bin/python benchmarks/gpu_check.py [--quick]

Parts, each measured on the CPU and on the GPU in the same run (GPU / CPU as a ratio):
- FAISS Flat and IVF search of --vectors synthetic vectors (1M; --quick 20k) through rankkit's
  to_search_device (faiss.index_cpu_to_all_gpus): queries/s, build time, and for Flat whether the
  GPU returns the CPU's ids; for IVF the recall@100 of both against exact search at the nprobe
  rankkit tunes at build (tune_search_params).
- Encoding throughput of rankkit.encode.BiEncoder, fp32 and bf16, on --passages passages (dl19
  when ../shared/data is present, else the bundled sample repeated).
- --steps bi-encoder and CET (cross-encoder relevance, provenance selection) training steps
  (rankkit.train at precision auto, its default: mixed precision on CUDA; bf16 autocast on a CPU with
  native bfloat16, else fp32) on negatives mined from the bundled sample.

The synthetic vectors are drawn from a Gaussian with the mean and covariance of the passages the
encoding part embedded on the CPU (fp32), normalised to unit length. Without a GPU
(faiss.get_num_gpus() == 0 and torch.cuda.is_available() False) every GPU figure reads
"skipped: ..." with the reason, and the CPU figures are still measured, at the --quick sizes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Callable

import faiss
import numpy as np
import torch
from common import dl19_dir, ivf_lists, median, quiet_torch, save_result, synthetic_vectors, vector_statistics

from rankkit.data.collection import SAMPLE_DIR
from rankkit.data.corpus import read_doc_texts
from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit
from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.precision import training_autocast_dtype
from rankkit.errors import RankkitError
from rankkit.index.dense import MAX_TRAINING_VECTORS, set_search_params, tune_search_params
from rankkit.index.faiss_device import gpu_count, to_search_device
from rankkit.mining import MinedSet, TopN, candidates_from_run, mine
from rankkit.train import TrainConfig
from rankkit.train.biencoder import train_biencoder
from rankkit.train.cet import train_cet
from rankkit.train.loop import LOG_FILE

K = 100
COLUMNS = ["part", "setting", "unit", "CPU", "GPU", "GPU / CPU", "check"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (20k vectors, 200 queries, 200 passages, 2 steps): a smoke run",
    )
    parser.add_argument("--model", default="default", help="bi-encoder (and CET cross-encoder) to start from")
    parser.add_argument("--vectors", type=int, default=None, help="default 1,000,000 (--quick 20,000)")
    parser.add_argument("--queries", type=int, default=None, help="default 1,000 (--quick 200)")
    parser.add_argument("--passages", type=int, default=None, help="default 2,000 (--quick 200)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per trainer (default 20, --quick 2)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and FAISS (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="gpu-check")
    args = parser.parse_args(argv)
    if not args.quick and skip_reason("faiss") and skip_reason("torch"):
        print("no GPU: measuring the CPU figures at the --quick sizes", flush=True)
        args.quick = True
    sizes = {"vectors": (1_000_000, 20_000), "queries": (1000, 200), "passages": (2000, 200), "steps": (20, 2)}
    for name, (full, quick) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def skip_reason(library: str) -> str | None:
    """None when `library` ("faiss" or "torch") sees a GPU, else why its GPU figures are skipped."""
    faiss_gpus, cuda = gpu_count(), torch.cuda.is_available()
    if (faiss_gpus > 0) if library == "faiss" else cuda:
        return None
    return f"skipped: no GPU (faiss.get_num_gpus() == {faiss_gpus}, torch.cuda.is_available() {cuda})"


def row(part: str, setting: str, unit: str, cpu: float, gpu: float | str, check: str = "") -> dict:
    ratio = gpu / cpu if isinstance(gpu, float) and cpu else None
    return {"part": part, "setting": setting, "unit": unit, "CPU": cpu, "GPU": gpu, "GPU / CPU": ratio, "check": check}


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = call()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


# ---- encoding ----------------------------------------------------------------------------------


def passages(count: int) -> tuple[list[str], str]:
    """`count` passages: dl19's first ones when the shared data is there, else the sample cycled."""
    corpus = dl19_dir() / "collection.tsv"
    source = corpus if corpus.is_file() else SAMPLE_DIR / "collection.tsv"
    texts = list(itertools.islice(itertools.cycle(read_doc_texts(source).values()), count))
    return texts, str(source)


def encode_rate(model: str, device: str, precision: str, texts: list[str]) -> tuple[float | str, np.ndarray | None]:
    """Passages per second of BiEncoder.encode (after one warm-up batch), and the embeddings; a
    reason string instead when this precision is refused on this device."""
    try:
        encoder = BiEncoder(model, device=device, precision=precision)
    except RankkitError as exc:
        return f"skipped: {exc}", None
    encoder.encode(texts[:16])
    vectors, seconds = timed(lambda: encoder.encode(texts))
    return len(texts) / seconds, vectors  # type: ignore[return-value]


def encoding_rows(args: argparse.Namespace) -> tuple[list[dict], np.ndarray, str]:
    texts, source = passages(args.passages)
    rows, reference = [], None
    for precision in ("fp32", "bf16"):
        cpu, vectors = encode_rate(args.model, "cpu", precision, texts)
        reference = vectors if precision == "fp32" else reference
        gpu: float | str = skip_reason("torch") or encode_rate(args.model, "cuda", precision, texts)[0]
        if isinstance(cpu, str):
            rows.append(row("encode", precision, "passages/s", None, gpu, cpu))  # type: ignore[arg-type]
        else:
            rows.append(row("encode", precision, "passages/s", cpu, gpu, f"{len(texts)} passages"))
    assert reference is not None
    return rows, reference, source


# ---- FAISS -------------------------------------------------------------------------------------


def ivf_factory(count: int) -> str:
    return f"IVF{ivf_lists(count)},Flat"


def build(factory: str, vectors: np.ndarray, gpu: bool, seed: int) -> faiss.Index:
    """The index built on the CPU or, as rankkit's build does on a GPU machine, on all GPUs."""
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    index = to_search_device(index) if gpu else index
    if not index.is_trained:
        rows = np.sort(np.random.default_rng(seed).permutation(len(vectors))[:MAX_TRAINING_VECTORS])
        index.train(vectors[rows])
    index.add(vectors)
    return index


def search_rate(index: faiss.Index, queries: np.ndarray) -> tuple[np.ndarray, float]:
    index.search(queries[:10], K)  # warm-up
    (_, ids), seconds = timed(lambda: index.search(queries, K))
    return ids, len(queries) / seconds


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f, e)) / len(e) for f, e in zip(found, exact)]))


def faiss_rows(args: argparse.Namespace, vectors: np.ndarray, queries: np.ndarray) -> list[dict]:
    reason = skip_reason("faiss")
    flat, flat_build = timed(lambda: build("Flat", vectors, False, args.seed))
    exact, flat_qps = search_rate(flat, queries)  # type: ignore[arg-type]
    factory = ivf_factory(len(vectors))
    ivf, ivf_build = timed(lambda: build(factory, vectors, False, args.seed))
    params = tune_search_params(ivf, vectors, args.seed)  # type: ignore[arg-type]
    set_search_params(ivf, params, factory)  # type: ignore[arg-type]
    ivf_ids, ivf_qps = search_rate(ivf, queries)  # type: ignore[arg-type]
    setting = f"{factory} {', '.join(f'{k} {v}' for k, v in params.items())}"
    if reason:
        return [
            row("faiss build", "Flat", "s", flat_build, reason),
            row("faiss search", f"Flat, k={K}", "queries/s", flat_qps, reason),
            row("faiss build", factory, "s", ivf_build, reason),
            row(
                "faiss search",
                f"{setting}, k={K}",
                "queries/s",
                ivf_qps,
                reason,
                f"CPU recall@{K} vs exact {recall(ivf_ids, exact):.4f}",
            ),
        ]
    gpu_flat, gpu_flat_build = timed(lambda: build("Flat", vectors, True, args.seed))
    gpu_exact, gpu_flat_qps = search_rate(gpu_flat, queries)  # type: ignore[arg-type]
    same = int(sum(np.array_equal(a, b) for a, b in zip(exact, gpu_exact)))
    _, gpu_ivf_build = timed(lambda: build(factory, vectors, True, args.seed))
    rows = [
        row("faiss build", "Flat", "s", flat_build, gpu_flat_build),
        row(
            "faiss search",
            f"Flat, k={K}",
            "queries/s",
            flat_qps,
            gpu_flat_qps,
            f"same ids (in order) for {same} of {len(queries)} queries; recall@{K} {recall(gpu_exact, exact):.4f}",
        ),
        row("faiss build", factory, "s", ivf_build, gpu_ivf_build),
    ]
    gpu_ivf = to_search_device(ivf)  # the CPU-trained index, as rankkit search loads one
    try:  # FAISS's GPU IVF refuses nprobe above 2048, which tuning may choose on hard (synthetic) data
        set_search_params(gpu_ivf, params, factory)
        gpu_ivf_ids, gpu_ivf_qps = search_rate(gpu_ivf, queries)
    except (RuntimeError, RankkitError) as exc:
        failed = f"failed: {str(exc).strip().splitlines()[-1][:200]}"
        return rows + [
            row(
                "faiss search",
                f"{setting}, k={K}",
                "queries/s",
                ivf_qps,
                failed,
                f"CPU recall@{K} vs exact {recall(ivf_ids, exact):.4f}",
            )
        ]
    return rows + [
        row(
            "faiss search",
            f"{setting}, k={K}",
            "queries/s",
            ivf_qps,
            gpu_ivf_qps,
            f"recall@{K} vs exact: CPU {recall(ivf_ids, exact):.4f}, GPU {recall(gpu_ivf_ids, exact):.4f}",
        )
    ]


# ---- training ----------------------------------------------------------------------------------


def sample_mined(seed: int) -> tuple[MinedSet, dict[str, str]]:
    """Negatives for the sample's queries: every non-positive passage, in a seeded order, with its
    rank and score as provenance (what CET's provenance selection model reads)."""
    docs = read_doc_texts(SAMPLE_DIR / "collection.tsv")
    order = np.random.default_rng(seed).permutation(len(docs))
    ranked = [list(docs)[i] for i in order]
    queries = read_queries(SAMPLE_DIR / "queries.tsv")
    run = {qid: [Hit(docid, float(len(ranked) - rank)) for rank, docid in enumerate(ranked)] for qid in queries}
    mined = mine(
        queries,
        read_qrels(SAMPLE_DIR / "qrels.txt"),
        candidates_from_run(run, "seeded-order"),
        [TopN(30)],
        doc_texts=docs,
    )
    return mined, docs


def step_seconds(train: Callable[[TrainConfig], Path], model: str, device: str, steps: int) -> float:
    """Median seconds per optimizer step, from the training log, the first (warm-up) step left out
    when there are others."""
    with tempfile.TemporaryDirectory(prefix="rankkit-gpu-check-") as work:
        config = TrainConfig(
            output=str(Path(work) / "out"),
            model=model,
            max_steps=steps,
            batch_size=8,
            negatives=4,
            device=device,
            precision="auto",
        )
        train(config)
        rates = [json.loads(line)["groups_per_s"] for line in (Path(work) / "out" / LOG_FILE).read_text().splitlines()]
    return median(config.batch_size / rate for rate in (rates[1:] or rates))


def autocast_name(device: str) -> str:
    """What training at precision auto computes in on `device`: fp32, bf16 or fp16 (with loss scaling)."""
    dtype = training_autocast_dtype("auto", torch.device(device))
    return (
        "fp32"
        if dtype is None
        else str(dtype).removeprefix("torch.").replace("bfloat16", "bf16").replace("float16", "fp16")
    )


def training_rows(args: argparse.Namespace) -> list[dict]:
    mined, docs = sample_mined(args.seed)
    trainers = {
        "bi-encoder (InfoNCE)": lambda config: train_biencoder(mined, docs, config),
        "CET (cross-encoder + provenance)": lambda config: train_cet(mined, docs, config),
    }
    reason = skip_reason("torch")
    rows = []
    for name, train in trainers.items():
        cpu = step_seconds(train, args.model, "cpu", args.steps)
        gpu: float | str = reason or step_seconds(train, args.model, "cuda", args.steps)
        rows.append(
            row(
                "train",
                f"{name}, batch 8 x (1 + 4 negatives), precision auto",
                "s/step",
                cpu,
                gpu,
                f"{args.steps} steps, median s/step" + (" after the first" if args.steps > 1 else ""),
            )
        )
        if isinstance(gpu, float):  # seconds: a GPU / CPU ratio below 1 is the speed-up's inverse
            rows[-1]["GPU / CPU"] = gpu / cpu
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.time()
    if args.threads:
        quiet_torch(args.threads)
        faiss.omp_set_num_threads(args.threads)
    else:
        quiet_torch(torch.get_num_threads())
    rows, reference, source = encoding_rows(args)
    print(f"encoding done ({time.time() - started:.0f} s)", flush=True)
    mean, covariance = vector_statistics(reference)
    vectors = synthetic_vectors(args.vectors, mean, covariance, args.seed)
    queries = synthetic_vectors(args.queries, mean, covariance, args.seed + 1)
    rows += faiss_rows(args, vectors, queries)
    print(f"faiss done ({time.time() - started:.0f} s)", flush=True)
    rows += training_rows(args)
    notes = [
        f"synthetic vectors: Gaussian with the mean and covariance of the {len(reference)} passages of {source} "
        f"that {args.model} embedded on the CPU (fp32), normalised to unit length; {args.vectors:,} indexed, "
        f"{args.queries:,} held-out queries drawn the same way.",
        "GPU / CPU: for queries/s and passages/s above 1 is faster on the GPU; for seconds (build, s/step) "
        "below 1 is faster on the GPU.",
        "FAISS on GPU goes through rankkit.index.faiss_device.to_search_device (faiss.index_cpu_to_all_gpus); "
        "the GPU IVF search uses the CPU-trained index moved to the GPU, as `rankkit search` does.",
        "Training: the bundled sample's 16 queries, short passages; CET's relevance model is a cross-encoder "
        f"started from {args.model} (new head), its selection model the provenance model (on the CPU). Precision "
        f"auto (the default) trained the CPU runs in {autocast_name('cpu')}"
        + (f" and the GPU runs in {autocast_name('cuda')} autocast." if torch.cuda.is_available() else "."),
    ]
    save_result(
        args.name,
        rows,
        title="GPU check: FAISS, encoding and training, GPU against CPU",
        columns=COLUMNS,
        params={k: v for k, v in vars(args).items() if k != "name"},
        notes=notes,
        started=started,
    )


if __name__ == "__main__":
    main()
