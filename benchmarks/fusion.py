"""Hybrid fusion on held-out queries: BM25, dense, RRF, the default fusion and the fusion tuned by
`rankkit.retrieve.tune` (the code behind `rankkit tune fusion`), on dl19, scifact and the classic
collections.

Tuned fusion never sees the queries it is scored on: on scifact it is tuned on the train split's
709 queries and scored on dev's 100; elsewhere on 5 query folds (tuned on four, scored on the
fifth, each query scored once). Reads the runs benchmarks/fusion_runs.py cached (top 1000 per
retriever, untrained all-MiniLM-L6-v2 for dense); takes a few minutes of Python:

    flock /tmp/rankkit-cpu.lock .venv/bin/python benchmarks/fusion.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict

from common import save_result
from fusion_runs import CACHE, COLLECTIONS

from rankkit.data.collection import shared_data_root
from rankkit.data.qrels import Qrels, read_qrels
from rankkit.data.runs import Run, read_run
from rankkit.eval.compare import paired_compare
from rankkit.eval.folds import kfold_queries
from rankkit.eval.measures import Evaluation, evaluate, resolve_measures
from rankkit.retrieve.fusion import FusionConfig, fuse, fusion_weights
from rankkit.retrieve.tune import tune_fusion

MEASURE = "nDCG@10"
FOLDS = 5
# extra studies over the shared data's own runs (top 100 each): pyserini's BM25 and TAS-B on dl19
SHARED_RUNS = {"dl19-tasb": ("dl19", "run.tasb.top100.trec", "run.bm25.top100.trec")}
STUDIES = [*COLLECTIONS, *SHARED_RUNS]


def fused(dense: Run, bm25: Run, config: FusionConfig, qids: list[str], k: int = 100) -> Run:
    weights = fusion_weights(["dense", "bm25"], config)
    return {
        q: fuse([dense.get(q, [])[: config.depth], bm25.get(q, [])[: config.depth]], weights, k, config) for q in qids
    }


def splits(name: str, qrels: Qrels) -> list[tuple[list[str], list[str]]]:
    """(tuning qids, held-out qids) pairs."""
    if name == "scifact":
        root = shared_data_root() / "scifact" / "qrels"
        return [(sorted(read_qrels(root / "train.tsv")), sorted(read_qrels(root / "dev.tsv")))]
    return kfold_queries(qrels, FOLDS, seed=0)


def collection_qrels(name: str) -> Qrels:
    folder = shared_data_root() / (SHARED_RUNS[name][0] if name in SHARED_RUNS else COLLECTIONS[name][0])
    if name == "scifact":
        return {**read_qrels(folder / "qrels" / "train.tsv"), **read_qrels(folder / "qrels" / "dev.tsv")}
    return {q: judged for q, judged in read_qrels(folder / "qrels.txt").items() if any(g > 0 for g in judged.values())}


def load(name: str) -> tuple[Run, Run, Qrels]:
    """(dense run, BM25 run, qrels with at least one relevant document per query)."""
    if name in SHARED_RUNS:
        folder, dense, bm25 = SHARED_RUNS[name]
        return (
            read_run(shared_data_root() / folder / dense),
            read_run(shared_data_root() / folder / bm25),
            collection_qrels(name),
        )
    return read_run(CACHE / name / "dense.trec"), read_run(CACHE / name / "bm25.trec"), collection_qrels(name)


def tuning_grid(name: str) -> list[dict]:
    """Every setting's nDCG@10 on the collection's tuning queries (for choosing the default)."""
    dense, bm25, qrels = load(name)
    tuning = {q: qrels[q] for q in splits(name, qrels)[0][0]} if name == "scifact" else qrels
    return [{"collection": name, **g} for g in tune_fusion(dense, bm25, tuning, MEASURE).grid]


def study(name: str, default: FusionConfig, measures) -> dict:
    dense, bm25, qrels = load(name)
    held_out_run: Run = {}
    chosen = []
    for tune_qids, test_qids in splits(name, qrels):
        tune_qrels = {q: qrels[q] for q in tune_qids}
        result = tune_fusion(dense, bm25, tune_qrels, MEASURE)
        chosen.append(result.best)
        held_out_run.update(fused(dense, bm25, result.best, test_qids))
    test_qids = sorted(held_out_run)
    test_qrels = {q: qrels[q] for q in test_qids}
    systems: dict[str, Evaluation] = {
        "bm25": evaluate({q: bm25.get(q, []) for q in test_qids}, test_qrels, measures),
        "dense": evaluate({q: dense.get(q, []) for q in test_qids}, test_qrels, measures),
        "rrf": evaluate(fused(dense, bm25, FusionConfig(method="rrf"), test_qids), test_qrels, measures),
        "tuned": evaluate(held_out_run, test_qrels, measures),
        "default": evaluate(fused(dense, bm25, default, test_qids), test_qrels, measures),
    }
    score = {s: ev.aggregate[MEASURE] for s, ev in systems.items()}
    better = "bm25" if score["bm25"] >= score["dense"] else "dense"
    vs_better = paired_compare(MEASURE, better, systems[better], "tuned", systems["tuned"])
    row = {
        "collection": name,
        "held-out queries": len(test_qids),
        **score,
        "better single": better,
        "tuned - better": score["tuned"] - score[better],
        "p (tuned vs better)": vs_better.p_value,
        "tuned settings": "; ".join(
            sorted({f"{c.method} {c.alpha:.2f}" if c.method != "rrf" else "rrf" for c in chosen})
        ),
        "default - better": score["default"] - score[better],
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=STUDIES, choices=STUDIES)
    parser.add_argument("--name", default="fusion", help="Result name under benchmarks/results/.")
    args = parser.parse_args()
    started = time.time()
    measures = resolve_measures(None, [MEASURE])
    # the default: the setting with the best mean nDCG@10 over the collections' tuning queries
    # (scifact train; all queries of the folded collections)
    grids = [g for name in args.collections for g in tuning_grid(name)]
    by_setting: dict[tuple, list[float]] = defaultdict(list)
    for g in grids:
        by_setting[(g["method"], g["alpha"])].append(g["score"])
    mean_grid = [
        {"method": m, "alpha": a, "mean nDCG@10 over collections": statistics.mean(v)}
        for (m, a), v in by_setting.items()
    ]
    best = max(mean_grid, key=lambda r: r["mean nDCG@10 over collections"])
    default = FusionConfig(method=best["method"], alpha=best["alpha"] if best["alpha"] is not None else 0.5)
    rows = [study(name, default, measures) for name in args.collections]
    mean_row = {"collection": "mean", "held-out queries": sum(r["held-out queries"] for r in rows)}
    for column in ("bm25", "dense", "rrf", "tuned", "default", "tuned - better", "default - better"):
        mean_row[column] = statistics.mean(r[column] for r in rows)
    mean_row["better single"] = ""
    rows.append(mean_row)
    runs_meta = {
        name: json.loads((CACHE / name / "runs.json").read_text()) for name in args.collections if name in COLLECTIONS
    }
    save_result(
        args.name,
        rows,
        title="Hybrid fusion on held-out queries (nDCG@10)",
        params={"measure": MEASURE, "folds": FOLDS, "depth": 1000, "default": f"{default.method} {default.alpha}"},
        extra_tables={
            "default choice: mean nDCG@10 over collections per setting (tuning queries)": sorted(
                mean_grid, key=lambda r: -r["mean nDCG@10 over collections"]
            )[:12],
            "runs (benchmarks/fusion_runs.py)": list(runs_meta.values()),
        },
        notes=[
            "Runs: benchmarks/fusion_runs.py (BM25 k1 0.9 b 0.4 over `title text`; dense untrained "
            "all-MiniLM-L6-v2 in bf16, FAISS Flat; top 1000 each). Fused lists cut at 100.",
            "dl19-tasb: the shared data's own dl19 runs, top 100 each: TAS-B as the dense list, "
            "pyserini's BM25 (nDCG@10 0.506) as the BM25 one.",
            "tuned: rankkit.retrieve.tune.tune_fusion (rrf, and convex and zscore at alpha 0, 0.05, ..., 1) on "
            "scifact's train queries, scored on dev; elsewhere tuned on 4 of 5 query folds, scored on the 5th "
            "(seed 0). 'tuned settings' lists what the folds chose.",
            "default: the one setting with the best mean over the collections' tuning queries (scifact train, "
            "all queries elsewhere, so on the folded collections the default has seen the held-out queries).",
            "p: paired t-test over held-out queries, tuned vs the better of BM25 and dense.",
            "Queries without a relevant judgment are left out (cisi: 76 of 112 judged).",
        ],
        started=started,
    )


if __name__ == "__main__":
    main()
