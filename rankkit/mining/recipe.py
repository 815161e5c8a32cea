"""A mining run as one configuration: where candidates come from, which strategies, in which
order. `rankkit mine` is this recipe's options; rankkit.mining.run carries it out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rankkit.data.collection import collection_files, required_files
from rankkit.mining.export import ExportFormat
from rankkit.options import Output, option, same_option
from rankkit.retrieve.options import BM25Params, DenseQuery
from rankkit.train.config import Schedule

DATA_HELP = (
    "Collection folder (collection.tsv, queries.tsv, qrels.txt) or BEIR folder (corpus.jsonl, "
    "queries.jsonl, qrels/SPLIT.tsv): its files stand in for the file options not given."
)


@dataclass(frozen=True, kw_only=True)
class MiningRecipe(DenseQuery):
    """Strategies apply in this order: window, teacher denoise, adaptive threshold, margin,
    self-adversarial, then the count (top, random or simans)."""

    queries: str | None = option(None, "Queries file (TSV, TREC topics or BEIR queries.jsonl); default: --data's.")
    qrels: str | None = option(
        None, "Qrels: the labeled positives (only their queries are mined); default: --data's (--split's)."
    )
    corpus: str | None = option(None, "Corpus file (texts for duplicate checks and training); default: --data's.")
    data: str | None = option(None, DATA_HELP)
    split: str | None = option(
        None, "BEIR folder (--data): the qrels split to mine, e.g. train (default test, else the only one)."
    )
    output: str = same_option(Output, "output", help="MinedSet JSONL to write (stats beside it).")
    indexes: tuple[str, ...] = option((), "Index folder to mine from (repeatable).", flags=("--index", "-i"))
    runs: tuple[str, ...] = option((), "Existing TREC run to mine from (repeatable).", flags=("--run",))
    depth: int = option(200, "Candidates retrieved per query from each index.", low=1)
    bm25: BM25Params = field(default_factory=BM25Params)  # a BM25 index's k1, b and RM3
    min_rank: int = option(1, "Window: first rank kept.", low=1)
    max_rank: int = option(200, "Window: last rank kept.", low=1)
    count: int = option(8, "Negatives kept per query.", low=1)
    sampling: Literal["top", "random", "simans"] = option("top", "How the count is filled: top, random or simans.")
    simans_a: float = option(1.0, "SimANS: sharpness a in exp(-a (s_neg - s_pos - b)^2).", low=0)
    simans_b: float = option(0.0, "SimANS: offset b.")
    margin: float | None = option(None, "Drop candidates scoring within this margin of the positive.")
    relative_margin: bool = option(False, "Margin as a share of |positive score|.")
    score_field: Literal["score", "teacher_score"] = option(
        "score", "Scores for margin and SimANS: score or teacher_score."
    )
    teacher: str | None = option(None, "Cross-encoder folder that scores candidates.")
    denoise_threshold: float | None = option(None, "RocketQA: drop teacher scores >= this.")
    adaptive_k: float | None = option(None, "ATSS: drop teacher scores > mean + k * std.")
    self_adversarial_run: str | None = option(None, "Run of an earlier checkpoint: keep what it ranks high.")
    self_adversarial_depth: int = option(50, "Self-adversarial: its top ranks that count as high.", low=1)
    full_qrels: str | None = option(None, "Complete judgments: report the false-negative rate.")
    pooling_run: str | None = option(
        None,
        "TREC run of the retriever whose pool was judged: record every "
        "document's rank and score in it as provenance (for CET's provenance "
        "selection model).",
    )
    seed: int = same_option(Schedule, "seed")
    min_grade: int = option(1, "Grades at or above this are positives.")
    exports: tuple[ExportFormat, ...] = option(
        (),
        "Also write the MinedSet for another trainer (repeatable): st (sentence-transformers "
        "anchor/positive/negative_i), flagembedding or tevatron, as OUTPUT_STEM.FORMAT.jsonl.",
        flags=("--export",),
    )

    def files(self) -> dict[str, str]:
        """The queries, qrels and corpus files: those given, else --data's; a missing one is refused."""
        paths = collection_files(self.data, self.split)
        return required_files(
            queries=self.queries or (paths and paths.queries),
            qrels=self.qrels or (paths and paths.qrels),
            corpus=self.corpus or (paths and paths.corpus),
        )
