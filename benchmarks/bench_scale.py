"""Scaling: FAISS index types at 100k and 1M vectors, and sharded encoding on 1 vs 2 processes.

    .venv/bin/python benchmarks/bench_scale.py --sizes 100000 1000000
    .venv/bin/python benchmarks/bench_scale.py --sizes 5000 --processes 1 2 --model tests-tiny-model  # smoke

Index part: for each size and factory (Flat, HNSW32, IVF<lists>,PQ32 with lists about 4 sqrt(n), a
power of two) one fresh subprocess builds the index as `rankkit index build` does (training on up
to 100k sampled vectors, then the search setting rankkit tunes at build: tune_search_params),
writes it, and searches the held-out queries; reported: build time (training, adding, tuning),
index size on disk, peak RSS of the subprocess (os.wait4 ru_maxrss, as bench_build_memory.py) and
recall@100 against exact search. Vectors: the real MiniLM vectors of --embeddings-from (an index
built with --save-embeddings, default indexes/dl19-dense) when present, at their own size, with
--queries of them held out as queries; and at each --sizes, synthetic vectors drawn from a Gaussian
with their mean and covariance, normalised (unit-norm isotropic Gaussian when there are no real
ones), with queries drawn the same way.

Process part (--processes 1 2): `rankkit index build --shard auto` under torch.distributed.run
(--nproc_per_node P) on the first --slice passages of --corpus, then `rankkit index merge`; wall
time of each, per number of processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from bench_build_memory import PYTHON, RANKKIT, folder_size, measure
from common import (
    REPO_ROOT,
    dl19_dir,
    isotropic_statistics,
    ivf_lists,
    save_result,
    synthetic_vectors,
    vector_statistics,
)

K = 100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="synthetic vectors")
    parser.add_argument(
        "--factories",
        nargs="+",
        default=["Flat", "HNSW32", "IVF,PQ32"],
        help="FAISS factory strings; a bare 'IVF' gets about 4 sqrt(n) lists",
    )
    parser.add_argument(
        "--embeddings-from",
        type=Path,
        default=REPO_ROOT / "indexes" / "dl19-dense",
        help="index folder with embeddings.f32 (real vectors, and their statistics)",
    )
    parser.add_argument("--queries", type=int, default=500, help="held-out query vectors")
    parser.add_argument("--processes", type=int, nargs="*", default=[], help="e.g. 1 2: the sharded-build part")
    parser.add_argument("--corpus", type=Path, default=None, help="process part: default <dl19>/collection.tsv")
    parser.add_argument("--slice", type=int, default=2000, help="process part: passages of the corpus to encode")
    parser.add_argument("--model", default="default", help="process part: the encoder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="scale")
    parser.add_argument("--import-baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=4, metavar=("VECTORS", "QUERIES", "FACTORY", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args()


def resolve_factory(factory: str, count: int) -> str:
    return factory.replace("IVF,", f"IVF{ivf_lists(count)},", 1) if factory.startswith("IVF,") else factory


# ---- the subprocess that builds one index --------------------------------------------------------


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM), in MiB. Not the parent's wait4 ru_maxrss: Linux
    keeps the RSS a child had when forked from this (large) parent in that figure."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def load_matrix(path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def worker(vectors_path: str, queries_path: str, factory: str, out: str) -> None:
    """Build, tune, write and search one index; print one JSON line (what the parent records), or
    the error of a factory FAISS cannot train on this many vectors."""
    from rankkit.errors import RankkitError
    from rankkit.index.dense import make_faiss_index, set_search_params, tune_search_params

    vectors, queries = load_matrix(vectors_path), np.ascontiguousarray(load_matrix(queries_path))
    started = time.perf_counter()
    try:
        index = make_faiss_index(vectors, factory, seed=0)
    except RankkitError as exc:
        print(json.dumps({"error": str(exc).split(" (")[0]}))
        return
    params = tune_search_params(index, vectors, seed=0)
    build_s = time.perf_counter() - started
    faiss.write_index(index, out)
    set_search_params(index, params, out)
    started = time.perf_counter()
    ids = index.search(queries, K)[1]
    search_s = time.perf_counter() - started
    np.save(out + ".ids.npy", ids)
    print(json.dumps({"build_s": build_s, "search_s": search_s, "params": params, "peak_rss_mib": peak_rss_mib()}))


# ---- the parent --------------------------------------------------------------------------------


def datasets(args: argparse.Namespace, work: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """(label, vectors .npy, queries .npy) for the real vectors (when saved) and each synthetic size."""
    found: list[tuple[str, Path, Path]] = []
    notes: list[str] = []
    embeddings = args.embeddings_from / "embeddings.f32"
    if embeddings.is_file():
        from rankkit.index.dense import load_embeddings

        real = np.asarray(load_embeddings(args.embeddings_from))
        order = np.random.default_rng(args.seed).permutation(len(real))
        held, kept = np.sort(order[: args.queries]), np.sort(order[args.queries :])
        found.append(save_pair(work, f"real {args.embeddings_from.name}", real[kept], real[held]))
        mean, covariance = vector_statistics(real)
        notes.append(
            f"real vectors: {embeddings} ({len(real):,} x {real.shape[1]}); {args.queries} of them held "
            "out as queries. Synthetic vectors: Gaussian with their mean and covariance, normalised."
        )
    else:
        mean, covariance = isotropic_statistics(384)
        notes.append(
            f"no saved embeddings at {embeddings} (build it with `rankkit index build "
            "<dl19>/collection.tsv -o indexes/dl19-dense --save-embeddings`): synthetic vectors are unit-norm "
            "isotropic Gaussian in 384 dimensions (MiniLM's), not matched to real statistics."
        )
    for size in args.sizes:
        vectors = synthetic_vectors(size, mean, covariance, args.seed)
        queries = synthetic_vectors(args.queries, mean, covariance, args.seed + 1)
        found.append(save_pair(work, "synthetic", vectors, queries))
    return found, notes


def save_pair(work: Path, label: str, vectors: np.ndarray, queries: np.ndarray) -> tuple[str, Path, Path]:
    stem = work / f"{label.split()[0]}-{len(vectors)}"
    np.save(f"{stem}.vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
    np.save(f"{stem}.queries.npy", np.ascontiguousarray(queries, dtype=np.float32))
    return label, Path(f"{stem}.vectors.npy"), Path(f"{stem}.queries.npy")


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f[f >= 0], e)) / len(e) for f, e in zip(found, exact)]))


def index_rows(args: argparse.Namespace, work: Path) -> tuple[list[dict], list[str]]:
    rows = []
    sets, notes = datasets(args, work)
    baseline = json.loads(measure([PYTHON, __file__, "--import-baseline"])["stdout"].splitlines()[-1])["peak_rss_mib"]
    for label, vectors_path, queries_path in sets:
        vectors, queries = load_matrix(str(vectors_path)), load_matrix(str(queries_path))
        exact = faiss.knn(
            np.ascontiguousarray(queries), vectors, min(K, len(vectors)), metric=faiss.METRIC_INNER_PRODUCT
        )[1]
        for factory in (resolve_factory(f, len(vectors)) for f in args.factories):
            out = work / f"{vectors_path.stem}.{factory.replace(',', '_')}.faiss"
            result = measure([PYTHON, __file__, "--worker", str(vectors_path), str(queries_path), factory, str(out)])
            done = json.loads(result["stdout"].splitlines()[-1])
            if "error" in done:
                rows.append({"vectors": label, "n": len(vectors), "factory": factory, "search params": done["error"]})
                continue
            rows.append(
                {
                    "vectors": label,
                    "n": len(vectors),
                    "factory": factory,
                    "search params": ", ".join(f"{k} {v}" for k, v in done["params"].items()) or "exact",
                    "build s": done["build_s"],
                    "on disk MiB": out.stat().st_size / 2**20,
                    "peak RSS MiB": done["peak_rss_mib"],
                    "above import MiB": done["peak_rss_mib"] - baseline,
                    f"recall@{K}": recall(np.load(f"{out}.ids.npy"), exact),
                    "queries/s": len(queries) / done["search_s"],
                }
            )
            print(rows[-1], flush=True)
            out.unlink()
    notes += [
        f"each index is built, written and searched in a fresh subprocess, which reports its own peak RSS "
        "(VmHWM); 'above import' subtracts the peak RSS "
        f"({baseline:.0f} MiB) of a process that only imports faiss, numpy and rankkit.index.dense. The vectors "
        "are memory-mapped .npy files: the pages the build reads count in its RSS.",
        "build s = training (up to 100k sampled vectors) + adding + tuning the search setting "
        f"(rankkit.index.dense.tune_search_params: the smallest nprobe / efSearch with >= 95% recall@100 on 500 "
        f"sampled corpus vectors). recall@{K}: the held-out queries' top {K} against exact (faiss.knn) search; "
        "queries/s: all queries in one search call. Where PQ's compression caps recall below 95%, tuning "
        "stops at nprobe = the number of lists (a full scan of the codes), and the build time includes every step.",
    ]
    return rows, notes


def corpus_slice(corpus: Path, count: int, work: Path) -> Path:
    """The first `count` lines of a TSV corpus, as a file of its own."""
    out = work / f"{corpus.stem}-{count}.tsv"
    with open(corpus, encoding="utf-8") as source, open(out, "w", encoding="utf-8") as target:
        for _, line in zip(range(count), source):
            target.write(line)
    return out


def timed_run(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"failed ({done.returncode}): {' '.join(argv)}")
    return time.perf_counter() - started


def process_rows(args: argparse.Namespace, work: Path) -> tuple[list[dict], list[str]]:
    corpus = corpus_slice(args.corpus or dl19_dir() / "collection.tsv", args.slice, work)
    rows = []
    for processes in args.processes:
        index = work / "indexes" / f"slice-{processes}"
        build = [
            PYTHON,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(processes),
            "--no-python",
            RANKKIT,
            "index",
            "build",
            str(corpus),
            "--kind",
            "dense",
            "--model",
            args.model,
            "--precision",
            "fp32",
            "-o",
            str(index),
            "--shard",
            "auto",
            "--overwrite",
        ]
        shards = [str(index.with_name(f"{index.name}-shard-{i}-of-{processes}")) for i in range(processes)]
        merge = [RANKKIT, "index", "merge", *shards, "-o", str(index), "--overwrite"]
        encode_s, merge_s = timed_run(build), timed_run(merge)
        rows.append(
            {
                "processes": processes,
                "passages": args.slice,
                "sharded build s": encode_s,
                "merge s": merge_s,
                "total s": encode_s + merge_s,
                "index MiB": folder_size(index)[0] / 2**20,
            }
        )
        print(rows[-1], flush=True)
    notes = [
        f"process part: `torch.distributed.run --standalone --nproc_per_node P --no-python rankkit index build "
        f"{corpus.name} --shard auto` ({args.slice} passages of {args.corpus or dl19_dir() / 'collection.tsv'}, "
        f"model {args.model}), then `rankkit index merge` (Flat); {os.cpu_count()} CPUs: on a 2-core machine 2 "
        "processes share the cores one had, so expect overhead rather than a speed-up (the gain is on GPUs)."
    ]
    return rows, notes


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.import_baseline:  # the memory of a process that has only imported what a worker imports
        import rankkit.index.dense  # noqa: F401

        print(json.dumps({"peak_rss_mib": peak_rss_mib()}))
        return
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="rankkit-scale-") as folder:
        work = Path(folder)
        rows, notes = index_rows(args, work)
        process, process_notes = process_rows(args, work) if args.processes else ([], [])
    save_result(
        args.name,
        rows,
        title="Scaling: index types at size, and sharded encoding",
        params={k: str(v) for k, v in vars(args).items() if k not in ("name", "worker", "import_baseline")},
        notes=notes + process_notes,
        extra_tables={"Sharded build under torch.distributed.run": process} if process else None,
        started=started,
    )


if __name__ == "__main__":
    main()
