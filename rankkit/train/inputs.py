"""What a ranker trains on: the MinedSet, the corpus its documents come from, and a dev set."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rankkit.errors import RankkitError
from rankkit.mining.recipe import DATA_HELP
from rankkit.options import option


@dataclass(frozen=True, kw_only=True)
class TrainData:
    """The training inputs of `rankkit train biencoder|reranker|cet`."""

    panel: ClassVar[str] = "Training data"

    mined: str = option(help="MinedSet written by `rankkit mine`.")
    corpus: str | None = option(None, "Corpus the MinedSet was mined from (passage texts); default: --data's.")
    data: str | None = option(None, DATA_HELP)
    dev_queries: str | None = option(None, "Dev queries file.")
    dev_qrels: str | None = option(None, "Dev qrels.")
    dev_run: str | None = option(None, "Dev candidates to rerank (TREC run, e.g. BM25 top-100).")
    dev_split: str | None = option(
        None,
        "BEIR folder (--data): the split whose queries and qrels are the dev set, "
        "e.g. dev (instead of --dev-queries and --dev-qrels).",
    )

    def load(self) -> tuple[Any, dict[str, str], Any]:
        """The MinedSet, the texts of every document it (and the dev run) names, the dev set or None."""
        from rankkit.data.collection import collection_files, corpus_file, required_files
        from rankkit.data.corpus import read_doc_texts
        from rankkit.data.qrels import read_qrels
        from rankkit.data.queries import read_queries
        from rankkit.data.runs import read_run
        from rankkit.mining.minedset import MinedSet
        from rankkit.train.dev import DevSet

        paths = collection_files(self.data, self.dev_split, "--dev-split") if self.dev_split else None
        corpus = required_files(corpus=self.corpus or (corpus_file(self.data) if self.data else None))["corpus"]
        dev_queries = self.dev_queries or (paths and paths.queries)
        dev_qrels = self.dev_qrels or (paths and paths.qrels)
        mined_set = MinedSet.read(self.mined)
        dev_given = [dev_queries, dev_qrels, self.dev_run]
        if any(dev_given) and not all(dev_given):
            raise RankkitError(
                "dev evaluation needs --dev-queries, --dev-qrels (or --data with --dev-split) and "
                "--dev-run together. Fix: pass all of them, or none"
            )
        dev_candidates = read_run(self.dev_run) if self.dev_run else {}
        needed = {d for q in mined_set.queries for d in (*q.positives, *(n.docid for n in q.negatives))} | {
            h.docid for hits in dev_candidates.values() for h in hits
        }
        doc_texts = read_doc_texts(corpus, docids=needed)
        if not self.dev_run:
            return mined_set, doc_texts, None
        dev_qrels_read = read_qrels(dev_qrels)
        warn_dev_overlap(mined_set, dev_qrels_read, str(dev_qrels))
        dev = DevSet(
            read_queries(dev_queries), dev_qrels_read, dev_candidates, doc_texts, source=Path(self.dev_run).name
        )
        return mined_set, doc_texts, dev


def warn_dev_overlap(mined_set: Any, dev_qrels: Any, where: str) -> None:
    """Warn when dev evaluation would read queries the model is trained on."""
    shared = sorted({q.qid for q in mined_set.queries} & set(dev_qrels))
    if shared:
        print(
            f"warning: {len(shared)} dev queries of {where} are also training queries of the MinedSet (e.g. "
            f"{', '.join(shared[:3])}): their dev figures read training data. Fix: mine with the train split's "
            "qrels only (rankkit mine --data DIR --split train), or pass dev qrels that hold other queries",
            file=sys.stderr,
        )
