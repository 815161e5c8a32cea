"""Learned sparse retrieval beside BM25, BM25+RM3 and dense, on the DL19 judged pool (43 queries)
and SciFact dev (100 queries): nDCG@10 and R@100 of each kind, fusion of all three index kinds
against the best pair (paired t-tests), and per kind its index size, build time (wall and CPU)
and queries/s (one query at a time, as a server answers, and in one batch). Then two checks
against pyserini itself, on DL19:

- the SPLADE index opened by pyserini's LuceneImpactSearcher, given rankkit's query weights,
  returns rankkit's top 10 for every query (pyserini's default min_idf 0, which drops query terms
  found in every passage, and min_idf -1, which keeps every term as rankkit does);
- BM25+RM3 against pyserini's LuceneSearcher with set_rm3 on the same index: same top 10.

Every index is built as `rankkit index build` builds it (build_index), into work/sparse/NAME/KIND,
with the default settings of each kind (no setting chosen on these queries). SPLADE-tiny must
be fetched first (`rankkit models fetch splade-tiny`). One heavy job: run it alone.

    .venv/bin/python benchmarks/sparse_retrieval.py
"""

from __future__ import annotations

import argparse
import itertools
import resource
import shutil
import time
from pathlib import Path

from common import REPO_ROOT, quiet_torch, save_result

from rankkit.data.collection import collection, queries_and_qrels, shared_data_root
from rankkit.data.runs import Run
from rankkit.eval.compare import paired_compare
from rankkit.eval.measures import Evaluation, evaluate, resolve_measures
from rankkit.index.build import build_index
from rankkit.index.options import IndexBuild
from rankkit.quickstart import quickstart_measures
from rankkit.retrieve import open_retriever
from rankkit.retrieve.fusion import FusionConfig, fuse, fusion_weights
from rankkit.retrieve.options import BM25Params, DenseQuery

CACHE = REPO_ROOT / "work" / "sparse"
COLLECTIONS = {"dl19": ("dl19", None), "scifact-dev": ("scifact", "dev")}
KINDS = {"bm25": {}, "dense": {"model": "default"}, "splade": {"model": "splade-tiny"}}
DEPTH = 1000  # hits each system contributes to fusion (FusionConfig's default depth)


def cpu_seconds() -> float:
    """CPU time of this process, all its threads (the JVM's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def build(corpus: Path, name: str, kind: str, precision: str) -> dict:
    out = CACHE / name / kind
    shutil.rmtree(out, ignore_errors=True)
    runtime = {"precision": precision} if kind != "bm25" else {}
    wall, cpu = time.perf_counter(), cpu_seconds()
    manifest, _ = build_index(IndexBuild(corpus=str(corpus), kind=kind, output=str(out), **KINDS[kind], **runtime))
    return {
        "build_wall_s": round(time.perf_counter() - wall, 1),
        "build_cpu_s": round(cpu_seconds() - cpu, 1),
        "index_mb": round(folder_bytes(out) / 1e6, 1),
        "documents": manifest.count,
    }


def timed_search(retriever, queries: dict[str, str]) -> tuple[Run, dict]:
    """The run at depth DEPTH (for evaluation and fusion), and queries/s one at a time and in one batch (k=10)."""
    run = retriever.batch_search(queries, DEPTH)
    started = time.perf_counter()
    for text in queries.values():
        retriever.search(text, 10)
    single = len(queries) / (time.perf_counter() - started)
    started = time.perf_counter()
    retriever.batch_search(queries, 10)
    batch = len(queries) / (time.perf_counter() - started)
    return run, {"qps_single": round(single, 1), "qps_batch": round(batch, 1)}


def fused(runs: dict[str, Run], systems: tuple[str, ...], queries: dict[str, str], config: FusionConfig) -> Run:
    """The systems' runs fused per query, top 100 (what nDCG@10 and R@100 read)."""
    kinds = [system.removesuffix("+rm3") for system in systems]
    weights = fusion_weights(kinds, config)
    return {qid: fuse([runs[s].get(qid, []) for s in systems], weights, 100, config) for qid in queries}


def impact_parity(index: Path, retriever, queries: dict[str, str]) -> list[dict]:
    """pyserini's LuceneImpactSearcher over the same index with rankkit's query weights: queries
    whose top 10 (docids, in order) equal rankkit's, at min_idf 0 (its default) and -1."""
    from pyserini.search.lucene import LuceneImpactSearcher

    weights = dict(zip(queries.values(), retriever.query_impacts(list(queries.values()))))

    class SameWeights:  # pyserini's QueryEncoder protocol
        def encode(self, text: str) -> dict[str, int]:
            return weights[text]

    ours = {qid: [h.docid for h in retriever.search(text, 10)] for qid, text in queries.items()}
    rows = []
    for min_idf in (0, -1):
        theirs = LuceneImpactSearcher(str(index / "lucene"), SameWeights(), min_idf=min_idf)
        same = sum(ours[qid] == [h.docid for h in theirs.search(text, 10)] for qid, text in queries.items())
        rows.append({"check": f"SPLADE top 10, pyserini LuceneImpactSearcher min_idf={min_idf}", "same": same})
    return rows


def rm3_parity(index: Path, retriever, queries: dict[str, str]) -> dict:
    from pyserini.search.lucene import LuceneSearcher

    theirs = LuceneSearcher(str(index / "lucene"))
    theirs.set_bm25(BM25Params.k1, BM25Params.b)
    theirs.set_rm3(10, 10, 0.5)
    same = sum(
        [h.docid for h in retriever.search(text, 10)] == [h.docid for h in theirs.search(text, 10)]
        for text in queries.values()
    )
    return {"check": "BM25+RM3 top 10, pyserini LuceneSearcher.set_rm3(10, 10, 0.5)", "same": same}


def run_collection(name: str, precision: str, rows: list, fusion_rows: list, checks: list) -> None:
    folder, split = COLLECTIONS[name]
    paths = collection(shared_data_root() / folder, split)
    queries, qrels = queries_and_qrels(paths)
    measures = resolve_measures(None, quickstart_measures(max(g for j in qrels.values() for g in j.values())))
    ndcg, recall = (str(m) for m in (measures[0], measures[2]))
    runtime = DenseQuery(precision=precision)
    runs: dict[str, Run] = {}
    evaluations: dict[str, Evaluation] = {}
    for kind in KINDS:
        facts = build(paths.corpus, name, kind, precision)
        variants = {kind: BM25Params()} if kind != "bm25" else {"bm25": BM25Params(), "bm25+rm3": BM25Params(rm3=True)}
        for system, bm25 in variants.items():
            retriever = open_retriever([CACHE / name / kind], runtime, bm25)
            runs[system], speed = timed_search(retriever, queries)
            evaluations[system] = evaluate(runs[system], qrels, measures)
            scores = evaluations[system].aggregate
            rows.append(
                {
                    "collection": name,
                    "system": system,
                    "nDCG@10": round(scores[ndcg], 4),
                    "R@100": round(scores[recall], 4),
                    **facts,
                    **speed,
                }
            )
            print(rows[-1], flush=True)
            if name == "dl19" and system == "splade":
                checks += [
                    {"collection": name, "queries": len(queries), **row}
                    for row in impact_parity(CACHE / name / kind, retriever, queries)
                ]
            if name == "dl19" and system == "bm25+rm3":
                checks.append(
                    {"collection": name, "queries": len(queries), **rm3_parity(CACHE / name / kind, retriever, queries)}
                )
    config = FusionConfig()
    combos = [c for size in (2, 3) for c in itertools.combinations(("bm25", "dense", "splade"), size)]
    fused_evals = {c: evaluate(fused(runs, c, queries, config), qrels, measures) for c in combos}
    best_pair = max((c for c in combos if len(c) == 2), key=lambda c: fused_evals[c].aggregate[ndcg])
    for combo, evaluation in fused_evals.items():
        row = {
            "collection": name,
            "fusion": " + ".join(combo),
            "nDCG@10": round(evaluation.aggregate[ndcg], 4),
            "R@100": round(evaluation.aggregate[recall], 4),
        }
        if len(combo) == 3:
            test = paired_compare(ndcg, "best pair", fused_evals[best_pair], "all three", evaluation)
            row["vs best pair"] = f"{' + '.join(best_pair)}: {test.mean_difference:+.4f} (p {test.p_value:.3f})"
        fusion_rows.append(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS), choices=list(COLLECTIONS))
    parser.add_argument(
        "--precision", default="auto", help="Dense and SPLADE models' number format (auto: bf16 where native)."
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads.")
    args = parser.parse_args()
    quiet_torch(args.threads)
    from rankkit.index.java import configure_java

    configure_java()
    started = time.time()
    rows: list[dict] = []
    fusion_rows: list[dict] = []
    checks: list[dict] = []
    for name in args.collections:
        run_collection(name, args.precision, rows, fusion_rows, checks)
    save_result(
        "sparse_retrieval",
        rows,
        title="Learned sparse retrieval (SPLADE-tiny) beside BM25, BM25+RM3 and dense MiniLM",
        params={
            "precision": args.precision,
            "fusion": "FusionConfig() defaults (zscore; alpha 0.65 for the dense + BM25 pair, equal weights otherwise), depth 1000",
        },
        notes=[
            "Every index built by build_index (what `rankkit index build` runs), with each kind's defaults: "
            "bm25 k1 0.9 b 0.4 (RM3: 10 terms, 10 documents, weight 0.5); dense all-MiniLM-L6-v2, FAISS Flat; "
            "splade splade-tiny, pyserini's impacts round(w / 5 * 256).",
            "build_cpu_s: CPU time of this process (all threads, the JVM's included) during the build. "
            "qps_single: one search call per query, k=10; qps_batch: one batch_search of all queries, k=10.",
            "DL19: R@100 counts grade >= 2 as relevant (R(rel=2)@100), as the TREC DL track does.",
        ],
        extra_tables={"Fusion (FusionConfig defaults)": fusion_rows, "Checks against pyserini": checks},
        started=started,
    )


if __name__ == "__main__":
    main()
