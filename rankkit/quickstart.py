"""The main job end to end: BM25 and dense indexes (and a SPLADE one with --sparse-model), search,
evaluation, on one collection folder
(the bundled sample by default, any folder in the ../shared/data layout, or a BEIR folder with
one of its qrels splits). A folder of the user's own text files (.txt, .md), which has no queries,
gets both indexes and the commands that search them instead of an evaluation."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from rankkit.data.beir import is_beir_folder
from rankkit.data.collection import COLLECTION_FILES, collection, queries_and_qrels
from rankkit.data.corpus import read_corpus
from rankkit.data.files import atomic_write
from rankkit.data.folder import CORPUS_FILES, text_files
from rankkit.data.runs import write_run
from rankkit.errors import RankkitError
from rankkit.index.build import build_index
from rankkit.index.options import IndexBuild
from rankkit.options import Inference, Output, option, same_option
from rankkit.retrieve import open_retriever
from rankkit.retrieve.fusion import FusionConfig
from rankkit.retrieve.hybrid import HybridRetriever
from rankkit.retrieve.options import DenseQuery
from rankkit.retrieve.progress import search_with_progress

if TYPE_CHECKING:  # the evaluation libraries are imported when a quickstart runs
    from rankkit.eval.measures import Evaluation


@dataclass(frozen=True, kw_only=True)
class QuickstartConfig(Inference):
    """The main job on one collection folder: which folder, where the output goes, the dense model."""

    data: str | None = option(
        None,
        "Collection folder (collection.tsv, queries.tsv, qrels.txt), BEIR folder "
        "(corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) or a folder of your own .txt / "
        ".md files; default: the bundled sample.",
    )
    split: str | None = option(
        None,
        "BEIR folder: the qrels split to evaluate (default test, else the only one); its judged queries are searched.",
    )
    output: str = same_option(Output, "output", "quickstart-output", "Folder for the indexes, runs and report.")
    model: str = option("default", "Dense model; default: the packaged all-MiniLM-L6-v2.")
    sparse_model: str | None = option(
        None,
        "SPLADE model (e.g. splade-tiny, after `rankkit models fetch splade-tiny`): also build a "
        "SPLADE index, search it, and fuse it into the hybrid run.",
    )
    factory: str = "Flat"
    k: int = 1000
    fusion: FusionConfig = field(default_factory=FusionConfig)  # how the hybrid run fuses BM25 and dense


def quickstart_measures(max_grade: int) -> list[str]:
    """nDCG@10, RR@10 and R@100; with graded judgments, binary measures count grade >= 2 (TREC DL)."""
    rel = "(rel=2)" if max_grade >= 2 else ""
    return ["nDCG@10", f"RR{rel}@10", f"R{rel}@100"]


@dataclass(frozen=True)
class QuickstartResult:
    """What a quickstart made: its folder, the index folders by kind (bm25, dense, splade), the
    evaluation of each system (each kind and hybrid; empty for a folder of text files, which has
    no queries) and the commands that search the indexes."""

    out: Path
    indexes: dict[str, Path]
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    search_commands: list[str] = field(default_factory=list)

    def how_to_search(self) -> str:
        """What to print when there was nothing to evaluate: the commands that search the indexes."""
        return "\n".join(
            ["no queries to evaluate; search the indexes with:", *(f"  {c}" for c in self.search_commands)]
        )


def is_text_folder(data: str | Path | None) -> bool:
    """A folder of the user's own documents: neither a collection folder (collection.tsv,
    queries.tsv, qrels.txt) nor a BEIR folder."""
    if data is None or not Path(data).is_dir() or is_beir_folder(data):
        return False
    return not any((Path(data) / name).exists() for name in (*COLLECTION_FILES, *CORPUS_FILES))


def example_query(corpus: Path, look_at: int = 100) -> str:
    """A query to show in the search commands: the first title among the first documents, else
    the first document's first words."""
    docs = list(islice(read_corpus(corpus), look_at))
    titled = [d.title for d in docs if d.title]
    return titled[0] if titled else " ".join(docs[0].text.split()[:5]) or "your question"


def search_commands(indexes: dict[str, Path], query: str) -> list[str]:
    """`rankkit search` for each index and for all of them (hybrid)."""
    q = shlex.quote(query)
    each = [f"-i {shlex.quote(str(folder))}" for folder in indexes.values()]
    return [*(f"rankkit search {index} -q {q}" for index in each), f"rankkit search {' '.join(each)} -q {q}"]


def _text_folder_error(exc: RankkitError) -> RankkitError:
    """A folder without text files: the fix names the collection layouts too."""
    problem = str(exc).partition(" Fix: ")[0]
    return RankkitError(
        f"{problem}. Fix: give a folder of text files (.txt, .md), a collection folder "
        "(collection.tsv, queries.tsv, qrels.txt) or a BEIR folder (corpus.jsonl, queries.jsonl, "
        "qrels/SPLIT.tsv)"
    )


def _build_indexes(corpus: Path, name: str, config: QuickstartConfig) -> dict[str, Path]:
    """The quickstart's indexes by kind, each built as `rankkit index build` builds it."""
    runtime = config.inference_options()
    kinds = {
        "bm25": {},
        "dense": {"model": config.model, "factory": config.factory, **runtime},
        **({"splade": {"model": config.sparse_model, **runtime}} if config.sparse_model else {}),
    }
    folders = Path(config.output) / "indexes"
    return {
        kind: build_index(
            IndexBuild(corpus=str(corpus), kind=kind, output=str(folders / f"{name}-{kind}"), overwrite=True, **options)
        )[1]
        for kind, options in kinds.items()
    }


def _write_config(config: QuickstartConfig, root: Path) -> None:
    with atomic_write(Path(config.output) / "config.json") as handle:
        json.dump({**asdict(config), "collection": str(root)}, handle, indent=2)


def run_quickstart(config: QuickstartConfig) -> QuickstartResult:
    """Build the indexes, search every query with each and with all fused (hybrid), evaluate; writes
    indexes/, runs/, report.json and config.json under config.output. For a folder of text files,
    which has no queries, only the indexes and config.json, and the result says how to search them."""
    from rankkit.eval.measures import evaluate, resolve_measures

    if is_text_folder(config.data):
        return _quickstart_text_folder(config)
    paths = collection(config.data, config.split)
    out = Path(config.output)
    queries, qrels = queries_and_qrels(paths)
    indexes = _build_indexes(paths.corpus, paths.name, config)
    query = DenseQuery(**config.inference_options())
    systems = {kind: open_retriever([folder], query) for kind, folder in indexes.items()}
    systems["hybrid"] = HybridRetriever(list(systems.values()), config=config.fusion)
    max_grade = max(g for judged in qrels.values() for g in judged.values())
    measures = resolve_measures(None, quickstart_measures(max_grade))
    evaluations = {}
    for name, retriever in systems.items():
        run = search_with_progress(retriever, queries, config.k, desc=f"searching ({name})")
        write_run(run, out / "runs" / f"{name}.trec", tag=name)
        evaluations[name] = evaluate(run, qrels, measures)
    with atomic_write(out / "report.json") as handle:
        json.dump({name: ev.aggregate for name, ev in evaluations.items()}, handle, indent=2)
    _write_config(config, paths.root)
    return QuickstartResult(out, indexes, evaluations, search_commands(indexes, next(iter(queries.values()))))


def _quickstart_text_folder(config: QuickstartConfig) -> QuickstartResult:
    root = Path(config.data)  # type: ignore[arg-type]
    if config.split is not None:
        raise RankkitError(
            f"{root}: --split {config.split} names a qrels split, which only BEIR folders have; "
            "this is a folder of text files, without queries. Fix: drop --split"
        )
    try:
        text_files(root)
    except RankkitError as exc:
        raise _text_folder_error(exc) from None
    indexes = _build_indexes(root, root.resolve().name, config)
    _write_config(config, root)
    return QuickstartResult(Path(config.output), indexes, search_commands=search_commands(indexes, example_query(root)))
