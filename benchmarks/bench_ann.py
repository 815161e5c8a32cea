"""ANN search parameters on dl19: recall@100 against Flat, nDCG@10, hits returned and QPS for HNSW32
and IVF at several efSearch / nprobe settings, including the default rankkit tunes at build time
(recorded in the manifest) and FAISS's own default.

    flock /tmp/rankkit-cpu.lock .venv/bin/python benchmarks/bench_ann.py

Reuses indexes/dl19-dense (Flat, saved embeddings: `rankkit index build ../shared/data/dl19/collection.tsv
-o indexes/dl19-dense --save-embeddings`) and builds the ANN indexes from its embeddings. Queries are the
43 dl19 queries, encoded once; QPS is for FAISS search of all 43 vectors per call (k=100), through
rankkit's DenseIndex.search, median over --rounds calls.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import faiss
import numpy as np
from common import REPO_ROOT, dl19_dir, median, quiet_torch, save_result

from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries
from rankkit.encode.biencoder import BiEncoder
from rankkit.eval.measures import evaluate, resolve_measures
from rankkit.index.dense import DenseBuildConfig, DenseIndex, FewerHitsWarning, build_dense_index

K = 100
DEPTH = 1000  # for nDCG@10 / R(rel=2)@1000 and hits returned, as in the report


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, default=REPO_ROOT / "indexes")
    parser.add_argument("--rounds", type=int, default=30, help="timed calls per setting (default 30)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hnsw", default="HNSW32")
    parser.add_argument("--ivf", default="IVF256,Flat")
    parser.add_argument("--ef-search", default="16,64,256", help="efSearch settings besides the tuned one")
    parser.add_argument("--nprobe", default="1,8,32", help="nprobe settings besides the tuned one")
    parser.add_argument("--name", default="ann")
    return parser.parse_args()


def recall(found: list, exact: list) -> float:
    return float(np.mean([len({h.docid for h in f} & {h.docid for h in e}) / len(e) for f, e in zip(found, exact)]))


def main() -> None:
    args = parse_args()
    started = time.time()
    quiet_torch(args.threads)
    faiss.omp_set_num_threads(args.threads)
    data = dl19_dir()
    flat_dir = args.index_dir / "dl19-dense"
    flat = DenseIndex(flat_dir)
    encoder = BiEncoder(flat.manifest.model, device="cpu")
    queries = read_queries(data / "queries.tsv")
    qids = list(queries)
    vectors = encoder.encode([queries[q] for q in qids], role="query")
    qrels = read_qrels(data / "qrels.txt")
    measures = resolve_measures("trec-dl")
    exact = flat.search(vectors, K)

    rows = []
    for factory, knob, values in ((args.hnsw, "efSearch", args.ef_search), (args.ivf, "nprobe", args.nprobe)):
        folder = args.index_dir / f"dl19-dense-{factory.replace(',', '-').lower()}"
        t0 = time.perf_counter()
        manifest = build_dense_index(
            flat.manifest.corpus.path,
            folder,
            None,
            DenseBuildConfig(factory=factory),
            embeddings_from=flat_dir,
            overwrite=True,
        )
        build_s = time.perf_counter() - t0
        tuned = manifest.settings["search_params"][knob]
        settings = sorted({int(v) for v in values.split(",")} | {tuned})
        faiss_default = {"efSearch": 16, "nprobe": 1}[knob]
        for value in settings:
            index = DenseIndex(folder, {knob: value})
            found = index.search(vectors, K)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FewerHitsWarning)
                deep = index.search(vectors, DEPTH)
            run = dict(zip(qids, deep))
            scores = evaluate(run, qrels, measures).aggregate
            times = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                index.search(vectors, K)
                times.append(time.perf_counter() - t0)
            label = " (tuned default)" if value == tuned else (" (FAISS default)" if value == faiss_default else "")
            rows.append(
                {
                    "index": factory,
                    "setting": f"{knob}={value}{label}",
                    f"recall@{K} vs Flat": recall(found, exact),
                    "nDCG@10": scores["nDCG@10"],
                    "R(rel=2)@1000": scores["R(rel=2)@1000"],
                    f"hits at k={DEPTH}": sum(len(h) for h in deep),
                    "warned": bool(caught),
                    "QPS (43 per call)": len(qids) / median(times),
                    "build s": round(build_s, 1),
                }
            )
    flat_deep = flat.search(vectors, DEPTH)
    flat_scores = evaluate(dict(zip(qids, flat_deep)), qrels, measures).aggregate
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        flat.search(vectors, K)
        times.append(time.perf_counter() - t0)
    rows.insert(
        0,
        {
            "index": "Flat",
            "setting": "exact",
            f"recall@{K} vs Flat": 1.0,
            "nDCG@10": flat_scores["nDCG@10"],
            "R(rel=2)@1000": flat_scores["R(rel=2)@1000"],
            f"hits at k={DEPTH}": sum(len(h) for h in flat_deep),
            "warned": False,
            "QPS (43 per call)": len(qids) / median(times),
            "build s": "reused",
        },
    )
    notes = [
        f"dl19: {flat.manifest.count} passages, {len(qids)} queries; model {flat.manifest.model} "
        f"(passages encoded at precision {flat.manifest.settings.get('precision')}, queries fp32); "
        f"torch and faiss threads {args.threads}.",
        f"recall@{K} vs Flat: share of Flat's top {K} in the index's top {K}, mean over queries. nDCG@10 and "
        f"R(rel=2)@1000 from a k={DEPTH} search (trec-dl preset); hits at k={DEPTH}: total hits returned "
        f"over the {len(qids)} queries; warned: whether rankkit's FewerHitsWarning fired.",
        "tuned default: the value build_dense_index chose (smallest power of two reaching recall@100 >= 0.95 on "
        "500 sampled corpus vectors used as queries), recorded in the manifest and used when no --nprobe / "
        "--ef-search is given. FAISS default: efSearch 16, nprobe 1 (what rankkit used before).",
        f"QPS: {args.rounds} calls of DenseIndex.search(43 vectors, k={K}), queries / median call time.",
    ]
    save_result(
        args.name,
        rows,
        title="ANN search parameters on dl19: recall against Flat, effectiveness, QPS",
        params={
            "k": K,
            "depth": DEPTH,
            "rounds": args.rounds,
            "threads": args.threads,
            "hnsw": args.hnsw,
            "ivf": args.ivf,
        },
        notes=notes,
        started=started,
    )


if __name__ == "__main__":
    main()
