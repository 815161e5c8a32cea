"""Cross-encoder reranking on each inference backend: pairs/s and nDCG@10 of reranking BM25's top
100 for the 43 DL19 queries (a MiniLM cross-encoder trained without DL19 labels,
benchmarks/dl19_reranker.py), every backend in this one process, one query's 100 pairs per call,
interleaved in ABBA order.

    .venv/bin/python benchmarks/bench_rerank_backends.py --model work/dl19-reranker/reranker/model \\
        --run work/dl19-reranker/bm25.dl19.trec
"""

from __future__ import annotations

import argparse
import time

from common import dl19_dir, median, quiet_torch, save_result

from rankkit.data.corpus import read_doc_texts
from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit, read_run
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.eval.compare import paired_compare
from rankkit.eval.measures import evaluate, resolve_measures
from rankkit.options import Inference

BACKENDS = (("torch", "none"), ("onnx", "none"), ("onnx", "int8"), ("openvino", "none"), ("openvino", "int8"))
MEASURE = "nDCG@10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained cross-encoder folder")
    parser.add_argument("--run", required=True, help="BM25 run of the DL19 queries")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N queries (a smoke run)")
    parser.add_argument("--name", default="rerank_backends")
    args = parser.parse_args()
    started = time.time()
    quiet_torch(args.threads)
    queries = read_queries(dl19_dir() / "queries.tsv")
    qrels = read_qrels(dl19_dir() / "qrels.txt")
    candidates = {qid: hits[: args.depth] for qid, hits in read_run(args.run).items() if qid in queries}
    candidates = dict(list(candidates.items())[: args.limit])
    texts = read_doc_texts(
        dl19_dir() / "collection.tsv", docids={h.docid for hits in candidates.values() for h in hits}
    )
    models = {
        f"{backend} {quantize}": CrossEncoder(
            args.model, precision="fp32", inference=Inference(backend=backend, quantize=quantize)
        )
        for backend, quantize in BACKENDS
    }
    names = list(models)
    first = next(iter(candidates))
    for model in models.values():  # warm-up: lazy initialisation, allocator, kernels
        model.score([(queries[first], texts[hit.docid]) for hit in candidates[first][:32]])
    seconds = {name: 0.0 for name in names}
    runs: dict[str, dict[str, list[Hit]]] = {name: {} for name in names}
    for step, qid in enumerate(candidates):
        pairs = [(queries[qid], texts[hit.docid]) for hit in candidates[qid]]
        for name in names if step % 2 == 0 else names[::-1]:
            began = time.perf_counter()
            scores = models[name].score(pairs)
            seconds[name] += time.perf_counter() - began
            ranked = sorted(zip(candidates[qid], scores), key=lambda pair: -pair[1])
            runs[name][qid] = [Hit(hit.docid, float(score)) for hit, score in ranked]
    measures = resolve_measures(None, [MEASURE])
    evaluations = {name: evaluate(runs[name], qrels, measures) for name in names}
    pairs_total = sum(len(hits) for hits in candidates.values())
    rows = []
    for name in names:
        compared = paired_compare(MEASURE, names[0], evaluations[names[0]], name, evaluations[name])
        rows.append(
            {
                "backend": name,
                "pairs/s": round(pairs_total / seconds[name], 1),
                "ratio to torch fp32": round(seconds[names[0]] / seconds[name], 2),
                MEASURE: round(evaluations[name].aggregate[MEASURE], 4),
                "delta vs torch fp32": round(compared.mean_difference, 4),
                "gate (min correlation / top-10 overlap)": "/".join(
                    str(models[name].runner.agreement.get(key, "")) for key in ("min_cosine", "top10_overlap")
                ),
            }
        )
    bm25 = evaluate(candidates, qrels, measures).aggregate[MEASURE]
    save_result(
        args.name,
        rows,
        title="Cross-encoder reranking of BM25's top 100 on each inference backend (DL19, 43 queries)",
        params={
            **vars(args),
            "pairs": pairs_total,
            "median pairs per query": median(len(h) for h in candidates.values()),
        },
        notes=[
            f"BM25's own {MEASURE}: {bm25:.4f}. Every backend in one process, one query's pairs per call, ABBA order.",
            "gate: the export's agreement with PyTorch fp32 on rankkit's sample pairs, as recorded in its cache.",
        ],
        started=started,
    )


if __name__ == "__main__":
    main()
