"""False-negative rate of mined negatives on TREC DL 2019: BM25 vs the dense retriever (MiniLM).

Shallow labels are simulated the way MS MARCO has them (about one positive per query): the
observed positive of each query is the single best-ranked document judged grade >= 2 in the BM25
top-100 (by default the shipped run.bm25.top100.trec, Anserini BM25 over the full MS MARCO
collection). Each retriever then retrieves the top 200 from rankkit indexes over dl19's collection
(a BM25 index and a Flat dense index of the packaged all-MiniLM-L6-v2), and rankkit's mining core
keeps every candidate in ranks 1..200 except the observed positive (and exact text duplicates of
it). A mined negative is a false negative when dl19's full judgments grade it >= 2 (also reported
for >= 1), counted with rankkit.mining.false_negative_rate per rank band 1-10, 11-50, 51-200.

    .venv/bin/python benchmarks/fn_rate_dl19.py              # builds (or reuses) the two indexes
    .venv/bin/python benchmarks/fn_rate_dl19.py --labels bm25-index   # positives from rankkit's BM25 instead
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from common import REPO_ROOT, dl19_dir, save_result  # noqa: E402

from rankkit.data.corpus import read_doc_texts  # noqa: E402
from rankkit.data.qrels import read_qrels  # noqa: E402
from rankkit.data.queries import read_queries  # noqa: E402
from rankkit.data.runs import read_run  # noqa: E402
from rankkit.encode.biencoder import BiEncoder  # noqa: E402
from rankkit.errors import RankkitError  # noqa: E402
from rankkit.index.bm25 import build_bm25_index  # noqa: E402
from rankkit.index.dense import DenseBuildConfig, DenseIndex, build_dense_index  # noqa: E402
from rankkit.index.manifest import CorpusInfo, Manifest  # noqa: E402
from rankkit.mining import MiningConfig, RankWindow, candidates_from_retriever, false_negative_rate, mine  # noqa: E402
from rankkit.mining.mine import rank_bin  # noqa: E402
from rankkit.retrieve.bm25 import BM25Retriever  # noqa: E402
from rankkit.retrieve.dense import DenseRetriever  # noqa: E402
from rankkit.retrieve.options import BM25Params  # noqa: E402

BANDS = ("1-10", "11-50", "51-200", "all")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=200, help="candidates retrieved and mined per query (default 200)")
    parser.add_argument(
        "--labels",
        choices=("run", "bm25-index"),
        default="run",
        help="where the observed positive comes from: the shipped BM25 top-100 run (default) or "
        "rankkit's BM25 index over the dl19 collection",
    )
    parser.add_argument("--label-depth", type=int, default=100, help="BM25 depth searched for the positive (100)")
    parser.add_argument("--positive-grade", type=int, default=2, help="grade of an observable positive (2)")
    parser.add_argument("--model", default="default", help="dense model (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--work",
        default=str(REPO_ROOT / "work" / "fn-rate-dl19"),
        help="folder for the two indexes, reused when they match the corpus and model",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the indexes even when they match")
    parser.add_argument(
        "--dense-from",
        default=None,
        help="copy this dense index folder instead of encoding the corpus, when its manifest names "
        "the same corpus checksum and model fingerprint (e.g. indexes/dl19-dense)",
    )
    parser.add_argument("--name", default="fn_rate_dl19", help="results name (benchmarks/results/NAME.json|md)")
    return parser.parse_args()


def reusable(folder: Path, corpus: CorpusInfo, fingerprint: str | None) -> bool:
    try:
        manifest = Manifest.read(folder)
    except RankkitError:
        return False
    return manifest.corpus.sha256 == corpus.sha256 and manifest.model_fingerprint == fingerprint


def main() -> None:
    args = parse_args()
    started = time.time()
    torch.set_num_threads(args.threads)
    data = dl19_dir()
    corpus_path = data / "collection.tsv"
    queries = read_queries(data / "queries.tsv")
    full = read_qrels(data / "qrels.txt")
    doc_texts = read_doc_texts(corpus_path)
    corpus_info = CorpusInfo.of(corpus_path, "tsv")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    bm25_dir, dense_dir = work / "dl19-bm25", work / "dl19-minilm-flat"
    if args.rebuild or not reusable(bm25_dir, corpus_info, None):
        print(f"building BM25 index {bm25_dir} ...", flush=True)
        build_bm25_index(corpus_path, bm25_dir, overwrite=True)
    encoder = BiEncoder(args.model, device="cpu")
    if (
        not args.rebuild
        and not reusable(dense_dir, corpus_info, encoder.fingerprint)
        and args.dense_from
        and reusable(Path(args.dense_from), corpus_info, encoder.fingerprint)
        and Manifest.read(args.dense_from).index_type == "Flat"
    ):
        print(f"copying the matching dense index {args.dense_from} to {dense_dir}", flush=True)
        shutil.rmtree(dense_dir, ignore_errors=True)
        shutil.copytree(args.dense_from, dense_dir)
    if args.rebuild or not reusable(dense_dir, corpus_info, encoder.fingerprint):
        print(f"building dense index {dense_dir} (encodes {len(doc_texts)} passages) ...", flush=True)
        build_dense_index(corpus_path, dense_dir, encoder, DenseBuildConfig(factory="Flat"), overwrite=True)
    bm25 = BM25Retriever(bm25_dir)
    dense = DenseRetriever(DenseIndex(dense_dir), encoder)

    # simulated shallow labels: m = 1 positive per query
    if args.labels == "run":
        label_run, label_source = read_run(data / "run.bm25.top100.trec"), "run.bm25.top100.trec"
    else:
        label_run, label_source = bm25.batch_search(queries, args.label_depth), f"rankkit {bm25.name}"
    observed: dict[str, dict[str, int]] = {}
    positive_ranks = []
    for qid in sorted(queries):
        for rank, hit in enumerate(label_run.get(qid, [])[: args.label_depth], start=1):
            grade = full.get(qid, {}).get(hit.docid, 0)
            if grade >= args.positive_grade and hit.docid in doc_texts:
                observed[qid] = {hit.docid: grade}
                positive_ranks.append(rank)
                break
    labeled = {qid: queries[qid] for qid in observed}
    print(
        f"{len(labeled)} of {len(queries)} queries have a grade >= {args.positive_grade} document in the "
        f"{label_source} top-{args.label_depth}",
        flush=True,
    )

    rows, extra = [], []
    for retriever in (bm25, dense):
        candidates = candidates_from_retriever(retriever, labeled, args.depth)
        mined = mine(
            labeled, observed, candidates, [RankWindow(1, args.depth)], MiningConfig(seed=0, min_grade=1), doc_texts
        )
        source = retriever.name
        rates = {g: false_negative_rate(mined, full, min_grade=g).get(source, {}) for g in (2, 1)}
        counts = {band: 0 for band in BANDS}
        judged = {band: 0 for band in BANDS}
        relevant_pool = {band: 0 for band in BANDS}
        for q in mined.queries:
            for c in q.negatives:
                for band in (rank_bin(c.rank), "all"):
                    counts[band] += 1
                    judged[band] += c.docid in full.get(q.qid, {})
        # how many grade >= 2 documents each band holds at all (observed positive included): the recall side
        for qid, found in candidates.items():
            for c in found:
                if full.get(qid, {}).get(c.docid, 0) >= 2:
                    for band in (rank_bin(c.rank), "all"):
                        relevant_pool[band] += 1
        for band in BANDS:
            rows.append(
                {
                    "retriever": "BM25 (rankkit, dl19 collection)" if retriever is bm25 else "dense MiniLM (Flat)",
                    "ranks": band,
                    "negatives": counts[band],
                    "FN rate (grade>=2)": rates[2].get(band, float("nan")),
                    "FN rate (grade>=1)": rates[1].get(band, float("nan")),
                    "judged share": judged[band] / counts[band] if counts[band] else float("nan"),
                    "unjudged share": 1 - judged[band] / counts[band] if counts[band] else float("nan"),
                }
            )
        extra.append(
            {
                "retriever": source,
                "queries mined": len(mined.queries),
                "negatives": mined.stats["negatives"],
                "positives dropped (observed positive retrieved)": mined.stats["positives_dropped"],
                "positive text duplicates dropped": mined.stats["positive_duplicates_dropped"],
                "grade>=2 docs in top-10": relevant_pool["1-10"],
                "grade>=2 docs in 11-50": relevant_pool["11-50"],
                "grade>=2 docs in 51-200": relevant_pool["51-200"],
            }
        )

    judged_with_text = sum(1 for qid, judged in full.items() for d in judged if d in doc_texts)
    ranks_sorted = sorted(positive_ranks)
    notes = [
        f"Observed positives (m = 1, like MS MARCO): per query the best-ranked grade >= {args.positive_grade} "
        f"document in the {label_source} top-{args.label_depth}; {len(labeled)} of {len(queries)} queries have one "
        f"(its rank there: median {ranks_sorted[len(ranks_sorted) // 2] if ranks_sorted else 'n/a'}, max "
        f"{max(ranks_sorted, default='n/a')}). Every other judged document is hidden from mining.",
        f"Candidates: the top {args.depth} of each retriever over the dl19 collection ({len(doc_texts):,} passages); "
        f"window 1..{args.depth}, every candidate kept except the observed positive and exact text duplicates of it. "
        "FN rate = share of mined negatives graded >= 2 (>= 1) in the full dl19 qrels, pooled over queries "
        "(rankkit.mining.false_negative_rate); ranks are the retriever's ranks.",
        "Judged-pool caveat: the dl19 collection is the judged pool plus the top-100 lists of six systems (BM25, "
        f"BM25+RM3, TAS-B, ADA2, SPLADE++, RepLLaMA), {judged_with_text:,} of its judgments have text. Unjudged "
        "documents count as non-relevant, so these FN rates are lower bounds, most of all at deep ranks where the "
        "unjudged share is highest; and both retrievers search a small pool built from strong systems' top lists, "
        "so their candidates are richer in relevant documents than a search of the full 8.8M MS MARCO would be.",
        "rankkit's BM25 index holds only the dl19 collection, so its term statistics differ from the Anserini BM25 "
        "run over full MS MARCO that the labels come from; BM25 and dense ranks are those over this pool.",
    ]
    params = {
        "depth": args.depth,
        "labels": label_source,
        "label_depth": args.label_depth,
        "positive_grade": args.positive_grade,
        "model": args.model,
        "threads": args.threads,
        "bm25": f"k1={BM25Params.k1}, b={BM25Params.b}",
    }
    save_result(
        args.name,
        rows,
        title="False negatives among mined negatives on DL19: BM25 vs dense (MiniLM)",
        params=params,
        notes=notes,
        extra_tables={"Mining counts": extra},
        started=started,
    )


if __name__ == "__main__":
    main()
