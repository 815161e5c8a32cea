"""Dense search latency and throughput on dl19: rankkit's DenseRetriever / DenseIndex against a bare
loop doing the same work with the raw FAISS index, so the overhead of rankkit's layers is visible.

    .venv/bin/python benchmarks/bench_search.py

Builds (or reuses) indexes/dl19-dense (Flat, with saved embeddings) and indexes/dl19-dense-hnsw32
(built from those embeddings). Measures, on the 43 dl19 queries repeated to >= 500 calls:
  (a) single query: DenseRetriever.search(q, k=100) vs encoder.encode([q]) + index.search + docid lookup
  (b) batch: DenseRetriever.batch_search(all queries, k=100) vs batch encode + index.search + docid lookup
  (c) FAISS alone on precomputed query vectors, Flat and HNSW32: DenseIndex.search vs raw index.search,
      one vector per call and all 43 per call.
The compared systems alternate call by call (ABBA), so other load on the machine hits both alike.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import REPO_ROOT, dl19_dir, percentile, quiet_torch, save_result  # noqa: E402

from rankkit.data.queries import read_queries  # noqa: E402
from rankkit.encode.biencoder import BiEncoder  # noqa: E402
from rankkit.errors import RankkitError  # noqa: E402
from rankkit.index.dense import DOCIDS_FILE, EMBEDDINGS_FILE, DenseBuildConfig, DenseIndex, build_dense_index  # noqa: E402
from rankkit.index.manifest import CorpusInfo, Manifest  # noqa: E402
from rankkit.retrieve.dense import DenseRetriever  # noqa: E402

K = 100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--index-dir",
        type=Path,
        default=REPO_ROOT / "indexes",
        help="where dl19-dense and dl19-dense-hnsw32 are built or reused (default: indexes/)",
    )
    parser.add_argument("--min-calls", type=int, default=500, help="single-query calls per system (default 500)")
    parser.add_argument("--batch-rounds", type=int, default=30, help="batch calls per system (default 30)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the indexes even if present")
    parser.add_argument("--name", default="search")
    return parser.parse_args()


def usable(folder: Path, corpus: Path, factory: str) -> bool:
    """An index already built from this corpus with this factory (and, for Flat, saved embeddings)."""
    try:
        manifest = Manifest.read(folder)
    except RankkitError:
        return False
    same_corpus = manifest.corpus.sha256 == CorpusInfo.of(corpus, "tsv").sha256
    has_vectors = factory != "Flat" or (folder / EMBEDDINGS_FILE).is_file()
    return manifest.kind == "dense" and manifest.index_type == factory and same_corpus and has_vectors


def ensure_indexes(args, corpus: Path, encoder: BiEncoder) -> tuple[Path, Path, dict]:
    flat, hnsw = args.index_dir / "dl19-dense", args.index_dir / "dl19-dense-hnsw32"
    info = {}
    if args.rebuild or not usable(flat, corpus, "Flat"):
        print(f"building {flat} (Flat, saved embeddings): encodes {corpus} ...", flush=True)
        t0 = time.perf_counter()
        build_dense_index(corpus, flat, encoder, DenseBuildConfig(factory="Flat", save_embeddings=True), overwrite=True)
        info["flat_build_s"] = round(time.perf_counter() - t0, 1)
    else:
        print(f"reusing {flat}")
        info["flat_build_s"] = "reused"
    if args.rebuild or not usable(hnsw, corpus, "HNSW32"):
        print(f"building {hnsw} from the saved embeddings ...", flush=True)
        t0 = time.perf_counter()
        build_dense_index(corpus, hnsw, None, DenseBuildConfig(factory="HNSW32"), embeddings_from=flat, overwrite=True)
        info["hnsw_build_s"] = round(time.perf_counter() - t0, 1)
    else:
        print(f"reusing {hnsw}")
        info["hnsw_build_s"] = "reused"
    return flat, hnsw, info


def interleaved(systems: dict, inputs: list) -> dict[str, list[float]]:
    """Call each system on each input, alternating order call by call (ABBA); seconds per call."""
    names = list(systems)
    times: dict[str, list[float]] = {name: [] for name in names}
    for step, item in enumerate(inputs):
        for name in names if step % 2 == 0 else names[::-1]:
            fn = systems[name]
            t0 = time.perf_counter()
            fn(item)
            times[name].append(time.perf_counter() - t0)
    return times


def summarise(measurement: str, times: dict[str, list[float]], queries_per_call: int, baseline: str) -> list[dict]:
    rows = []
    base = times[baseline]
    for name, values in times.items():
        row = {
            "measurement": measurement,
            "system": name,
            "calls": len(values),
            "p50 ms": 1000 * percentile(values, 50),
            "p95 ms": 1000 * percentile(values, 95),
            "mean ms": 1000 * sum(values) / len(values),
            "QPS": queries_per_call * len(values) / sum(values),
            "overhead % (p50)": None,
            "overhead % (mean)": None,
        }
        if name != baseline:
            row["overhead % (p50)"] = 100 * (percentile(values, 50) / percentile(base, 50) - 1)
            row["overhead % (mean)"] = 100 * (sum(values) / sum(base) - 1)
        rows.append(row)
    for row in rows:
        print(
            f"  {row['system']:<28} p50 {row['p50 ms']:8.3f} ms  p95 {row['p95 ms']:8.3f} ms  "
            f"QPS {row['QPS']:9.1f}"
            + (f"  overhead p50 {row['overhead % (p50)']:+.1f}%" if row["overhead % (p50)"] is not None else ""),
            flush=True,
        )
    return rows


def same_hits(a, b) -> bool:
    return [h[0] for h in a] == [h[0] for h in b]


def main() -> None:
    args = parse_args()
    started = time.time()
    quiet_torch(args.threads)
    data = dl19_dir()
    corpus = data / "collection.tsv"
    queries = read_queries(data / "queries.tsv")
    qids, texts = list(queries), list(queries.values())

    encoder = BiEncoder("default", device="cpu")
    flat_dir, hnsw_dir, build_info = ensure_indexes(args, corpus, encoder)
    retriever = DenseRetriever(DenseIndex(flat_dir), encoder)
    raw = retriever.index.index  # the raw faiss index (shared, so both systems scan the same memory)
    docids = (flat_dir / DOCIDS_FILE).read_text(encoding="utf-8").splitlines()

    def bare_search(q: str):
        scores, rows = raw.search(encoder.encode([q]), K)
        return [(docids[r], float(s)) for s, r in zip(scores[0], rows[0]) if r >= 0]

    def bare_batch(_):
        vectors = encoder.encode(texts)
        scores, rows = raw.search(vectors, K)
        return {
            qid: [(docids[r], float(s)) for s, r in zip(srow, rrow) if r >= 0]
            for qid, srow, rrow in zip(qids, scores, rows)
        }

    # warm-up and a check that both do the same work
    for q in texts:
        assert same_hits(retriever.search(q, K), bare_search(q)), q
    run = retriever.batch_search(queries, K)
    bare_run = bare_batch(None)
    assert all(same_hits(run[qid], bare_run[qid]) for qid in qids)

    rounds = math.ceil(args.min_calls / len(texts))
    singles = texts * rounds
    rows: list[dict] = []
    print(f"(a) single query, k={K}: {len(singles)} calls per system")
    rows += summarise(
        "(a) single query, encode + Flat search",
        interleaved(
            {
                "bare (encode+faiss+docids)": bare_search,
                "rankkit DenseRetriever.search": lambda q: retriever.search(q, K),
            },
            singles,
        ),
        1,
        "bare (encode+faiss+docids)",
    )
    print("    where the time goes (same calls, component alone):")
    vectors = encoder.encode(texts)
    vector_of = {q: vectors[i : i + 1] for i, q in enumerate(texts)}
    rows += summarise(
        "(a') components of one query",
        interleaved(
            {
                "encoder.encode([q])": lambda q: encoder.encode([q]),
                "faiss Flat search (1 vector)": lambda q: raw.search(vector_of[q], K),
            },
            singles,
        ),
        1,
        "encoder.encode([q])",
    )
    rows[-1]["overhead % (p50)"] = rows[-1]["overhead % (mean)"] = None

    print(f"(b) batch of {len(texts)} queries, k={K}: {args.batch_rounds} calls per system")
    rows += summarise(
        f"(b) batch of {len(texts)} queries, encode + Flat search",
        interleaved(
            {
                "bare (encode+faiss+docids)": bare_batch,
                "rankkit DenseRetriever.batch_search": lambda _: retriever.batch_search(queries, K),
            },
            [None] * args.batch_rounds,
        ),
        len(texts),
        "bare (encode+faiss+docids)",
    )

    recalls = {}
    exact = raw.search(vectors, K)[1]
    for label, folder in (("Flat", flat_dir), ("HNSW32", hnsw_dir)):
        index = DenseIndex(folder)
        faiss_index = index.index
        found = faiss_index.search(vectors, K)[1]
        recalls[label] = float(np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact)]))
        one = [vectors[i : i + 1] for i in range(len(texts))] * rounds
        print(f"(c) FAISS {label} alone, precomputed vectors, one per call: {len(one)} calls per system")

        def bare_one(v, faiss_index=faiss_index):
            scores, ids = faiss_index.search(v, K)
            return [(docids[r], float(s)) for s, r in zip(scores[0], ids[0]) if r >= 0]

        rows += summarise(
            f"(c) {label} search only, 1 vector per call",
            interleaved(
                {
                    "bare faiss + docids": bare_one,
                    "rankkit DenseIndex.search": lambda v, index=index: index.search(v, K),
                },
                one,
            ),
            1,
            "bare faiss + docids",
        )

        def bare_all(_, faiss_index=faiss_index):
            scores, ids = faiss_index.search(vectors, K)
            return [[(docids[r], float(s)) for s, r in zip(srow, irow) if r >= 0] for srow, irow in zip(scores, ids)]

        batch_calls = max(args.batch_rounds, 100)
        print(f"(c) FAISS {label} alone, all {len(texts)} vectors per call: {batch_calls} calls per system")
        rows += summarise(
            f"(c) {label} search only, {len(texts)} vectors per call",
            interleaved(
                {
                    "bare faiss + docids": bare_all,
                    "rankkit DenseIndex.search": lambda _, index=index: index.search(vectors, K),
                },
                [None] * batch_calls,
            ),
            len(texts),
            "bare faiss + docids",
        )
        if label == "HNSW32":
            rows[-1]["measurement"] += f" (recall@{K} vs Flat {recalls[label]:.3f})"
            rows[-2]["measurement"] += f" (recall@{K} vs Flat {recalls[label]:.3f})"

    notes = [
        f"dl19: {retriever.index.manifest.count} passages, {len(texts)} queries; k={K}; model 'default' "
        f"(all-MiniLM-L6-v2, {encoder.dimension} dims) on CPU with {torch.get_num_threads()} torch threads; "
        f"faiss OpenMP threads {faiss.omp_get_max_threads()}.",
        "bare = the same work written inline: encoder.encode, raw faiss index.search, docid lookup into "
        "(docid, score) tuples; rankkit = DenseRetriever / DenseIndex. Both use the same BiEncoder and the same "
        "faiss index object. Overhead % = rankkit / bare - 1 (target under 10%).",
        "Calls alternate between the systems in ABBA order; QPS = queries / total time of that system's calls.",
        f"(a') shows the components alone: encoder.encode([q]) and one faiss Flat search; HNSW32 "
        f"(efSearch {DenseIndex(hnsw_dir).search_params.get('efSearch')}, the setting tuned at build and recorded in "
        f"its manifest; k={K}) recall@{K} against Flat: {recalls.get('HNSW32', float('nan')):.3f}.",
        f"indexes: {flat_dir} (built: {build_info['flat_build_s']} s), {hnsw_dir} "
        f"(built: {build_info['hnsw_build_s']} s).",
    ]
    params = {
        "k": K,
        "single_calls": len(singles),
        "batch_rounds": args.batch_rounds,
        "threads": args.threads,
        "index_dir": str(args.index_dir),
        **build_info,
    }
    save_result(
        args.name,
        rows,
        title="Dense search latency: rankkit vs bare FAISS loop (dl19)",
        params=params,
        notes=notes,
        started=started,
    )


if __name__ == "__main__":
    main()
