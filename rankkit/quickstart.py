"""The main job end to end: BM25 and dense indexes, search, evaluation, on one collection folder
(the bundled sample by default, any folder in the ../shared/data layout, or a BEIR folder with
one of its qrels splits)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rankkit.data.collection import collection, queries_and_qrels
from rankkit.data.files import atomic_write
from rankkit.data.runs import write_run
from rankkit.encode.biencoder import BiEncoder
from rankkit.eval.measures import Evaluation, evaluate, resolve_measures
from rankkit.index.bm25 import build_bm25_index
from rankkit.index.dense import DenseBuildConfig, DenseIndex, build_dense_index
from rankkit.retrieve.bm25 import BM25Retriever
from rankkit.retrieve.dense import DenseRetriever
from rankkit.retrieve.fusion import FusionConfig
from rankkit.retrieve.hybrid import HybridRetriever


@dataclass(frozen=True)
class QuickstartConfig:
    data: str | None = None  # collection folder; None = the bundled sample
    split: str | None = None  # BEIR folders: the qrels split (default test, else the only one)
    out: str = "quickstart-output"
    model: str = "default"
    factory: str = "Flat"
    k: int = 1000
    device: str | None = None
    precision: str = "fp32"  # dense encoder: fp32 | bf16
    fusion: FusionConfig = FusionConfig()  # how the hybrid run fuses BM25 and dense


def quickstart_measures(max_grade: int) -> list[str]:
    """nDCG@10, RR@10 and R@100; with graded judgments, binary measures count grade >= 2 (TREC DL)."""
    rel = "(rel=2)" if max_grade >= 2 else ""
    return ["nDCG@10", f"RR{rel}@10", f"R{rel}@100"]


def run_quickstart(config: QuickstartConfig) -> dict[str, Evaluation]:
    """Build both indexes, search every query with BM25, dense and hybrid, evaluate; writes
    indexes/, runs/, report.json and config.json under config.out. Returns the evaluations."""
    paths = collection(config.data, config.split)
    out = Path(config.out)
    queries, qrels = queries_and_qrels(paths)
    bm25_dir, dense_dir = out / "indexes" / f"{paths.name}-bm25", out / "indexes" / f"{paths.name}-dense"
    build_bm25_index(paths.corpus, bm25_dir, overwrite=True)
    encoder = BiEncoder(config.model, device=config.device, precision=config.precision)
    build_dense_index(paths.corpus, dense_dir, encoder, DenseBuildConfig(factory=config.factory), overwrite=True)
    bm25 = BM25Retriever(bm25_dir)
    dense = DenseRetriever(DenseIndex(dense_dir), encoder)
    systems = {"bm25": bm25, "dense": dense, "hybrid": HybridRetriever([bm25, dense], config=config.fusion)}
    max_grade = max(g for judged in qrels.values() for g in judged.values())
    measures = resolve_measures(None, quickstart_measures(max_grade))
    evaluations = {}
    for name, retriever in systems.items():
        run = retriever.batch_search(queries, config.k)
        write_run(run, out / "runs" / f"{name}.trec", tag=name)
        evaluations[name] = evaluate(run, qrels, measures)
    with atomic_write(out / "report.json") as handle:
        json.dump({name: ev.aggregate for name, ev in evaluations.items()}, handle, indent=2)
    with atomic_write(out / "config.json") as handle:
        json.dump({**asdict(config), "collection": str(paths.root)}, handle, indent=2)
    return evaluations
