"""`rankkit mine`: queries + qrels + candidates -> MinedSet (JSONL) and its statistics."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from rankkit.cli.errors import friendly_errors, stderr
from rankkit.cli.options import (AT_LEAST_1, DATA_HELP, EF_SEARCH_HELP, FINITE, NON_NEGATIVE, NPROBE_HELP,
                                 PRECISION_HELP, QUERY_PROMPT_HELP, ExportFormat, Precision, collection_files,
                                 required_files)
from rankkit.errors import RankkitError


class Sampling(str, Enum):
    top = "top"
    random = "random"
    simans = "simans"


class ScoreField(str, Enum):
    score = "score"
    teacher_score = "teacher_score"


@friendly_errors
def mine(
    queries: Optional[str] = typer.Option(None, help="Queries file (TSV, TREC topics or BEIR queries.jsonl); "
                                                     "default: --data's."),
    qrels: Optional[str] = typer.Option(None, help="Qrels: the labeled positives (only their queries are mined); "
                                                   "default: --data's (--split's)."),
    corpus: Optional[str] = typer.Option(None, help="Corpus file (texts for duplicate checks and training); "
                                                    "default: --data's."),
    data: Optional[Path] = typer.Option(None, help=DATA_HELP),
    split: Optional[str] = typer.Option(None, help="BEIR folder (--data): the qrels split to mine, e.g. train "
                                                   "(default test, else the only one)."),
    output: Path = typer.Option(..., "--output", "-o", help="MinedSet JSONL to write (stats beside it)."),
    index: Optional[List[str]] = typer.Option(None, "--index", "-i", help="Index folder to mine from (repeatable)."),
    run: Optional[List[str]] = typer.Option(None, help="Existing TREC run to mine from (repeatable)."),
    depth: int = typer.Option(200, callback=AT_LEAST_1, help="Candidates retrieved per query from each index."),
    min_rank: int = typer.Option(1, callback=AT_LEAST_1, help="Window: first rank kept."),
    max_rank: int = typer.Option(200, callback=AT_LEAST_1, help="Window: last rank kept."),
    count: int = typer.Option(8, callback=AT_LEAST_1, help="Negatives kept per query."),
    sampling: Sampling = typer.Option(Sampling.top, help="How the count is filled: top, random or simans."),
    simans_a: float = typer.Option(1.0, callback=NON_NEGATIVE, help="SimANS: sharpness a in exp(-a (s_neg - s_pos - b)^2)."),
    simans_b: float = typer.Option(0.0, callback=FINITE, help="SimANS: offset b."),
    margin: Optional[float] = typer.Option(None, callback=FINITE, help="Drop candidates scoring within this margin of the positive."),
    relative_margin: bool = typer.Option(False, help="Margin as a share of |positive score|."),
    score_field: ScoreField = typer.Option(ScoreField.score, help="Scores for margin and SimANS: score or teacher_score."),
    teacher: Optional[str] = typer.Option(None, help="Cross-encoder folder that scores candidates."),
    denoise_threshold: Optional[float] = typer.Option(None, callback=FINITE, help="RocketQA: drop teacher scores >= this."),
    adaptive_k: Optional[float] = typer.Option(None, callback=FINITE, help="ATSS: drop teacher scores > mean + k * std."),
    self_adversarial_run: Optional[str] = typer.Option(None, help="Run of an earlier checkpoint: keep what it ranks high."),
    self_adversarial_depth: int = typer.Option(50, callback=AT_LEAST_1, help="Self-adversarial: its top ranks that count as high."),
    full_qrels: Optional[str] = typer.Option(None, help="Complete judgments: report the false-negative rate."),
    pooling_run: Optional[str] = typer.Option(
        None, help="TREC run of the retriever whose pool was judged: record every document's rank and score in "
                   "it as provenance (for CET's provenance selection model)."),
    seed: int = typer.Option(0, help="Seed for every random choice."),
    min_grade: int = typer.Option(1, help="Grades at or above this are positives."),
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    precision: Precision = typer.Option(Precision.fp32, help=PRECISION_HELP),
    nprobe: Optional[int] = typer.Option(None, min=1, help=NPROBE_HELP),
    ef_search: Optional[int] = typer.Option(None, min=1, help=EF_SEARCH_HELP),
    query_prompt: Optional[str] = typer.Option(None, help=QUERY_PROMPT_HELP),
    export: Optional[List[ExportFormat]] = typer.Option(
        None, help="Also write the MinedSet for another trainer (repeatable): st (sentence-transformers "
                   "anchor/positive/negative_i), flagembedding or tevatron, as OUTPUT_STEM.FORMAT.jsonl."),
) -> None:
    """Mine negatives with provenance (window, filters, teacher, sampling) into a MinedSet."""
    from rankkit.mining.recipe import MiningRecipe, run_mining

    paths = collection_files(data, split)
    files = required_files(queries=queries or (paths and paths.queries), qrels=qrels or (paths and paths.qrels),
                           corpus=corpus or (paths and paths.corpus))
    if min_rank > max_rank:
        raise RankkitError(f"the window --min-rank {min_rank} --max-rank {max_rank} is empty. "
                           "Fix: give --min-rank at most --max-rank")
    recipe = MiningRecipe(
        **files, output=str(output), indexes=tuple(index or ()),
        runs=tuple(run or ()), depth=depth, min_rank=min_rank, max_rank=max_rank, count=count, sampling=sampling.value,
        simans_a=simans_a, simans_b=simans_b, margin=margin, relative_margin=relative_margin,
        score_field=score_field.value, teacher=teacher, denoise_threshold=denoise_threshold, adaptive_k=adaptive_k,
        self_adversarial_run=self_adversarial_run, self_adversarial_depth=self_adversarial_depth,
        full_qrels=full_qrels, pooling_run=pooling_run, seed=seed, min_grade=min_grade, device=device,
        precision=precision.value, nprobe=nprobe, ef_search=ef_search, query_prompt=query_prompt,
        exports=tuple(f.value for f in export or ()))
    mined = run_mining(recipe)
    print(json.dumps(mined.stats, indent=2))
    if mined.stats["queries_mined"] == 0 and mined.stats.get("window_beyond_depth"):
        stderr.print(f"[yellow]warning:[/] no negatives: for {mined.stats['window_beyond_depth']} queries the window "
                     f"starts (--min-rank {min_rank}) beyond the candidates' depth. Fix: a smaller --min-rank, or "
                     "deeper candidates", highlight=False, soft_wrap=True)
    print(f"wrote {mined.stats['negatives']} negatives for {mined.stats['queries_mined']} queries to {output}")
    for exported in mined.stats.get("exports", []):
        print(f"exported {exported['rows']} {exported['format']} rows to {exported['path']}")
