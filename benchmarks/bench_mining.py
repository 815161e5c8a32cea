"""Mining throughput: rankkit's mining core vs sentence-transformers' mine_hard_negatives, same
corpus (the dl19 collection), same model (the packaged all-MiniLM-L6-v2), same queries (the 43
dl19 queries), same window and count (the top-8 negatives among the dense top-50, no margin).

Two cases, each timed with the systems interleaved (ABBA: rankkit, ST, ST, rankkit, ...) in one
process, so load from other work on the machine hits both:

  (a) end to end, corpus encoding included. rankkit: build_dense_index (Flat) + DenseRetriever +
      candidates_from_retriever + mine; ST: one mine_hard_negatives(..., use_faiss=True) call.
  (b) the corpus already encoded. rankkit: open the prebuilt index folder, encode the queries,
      search, mine; ST: the same call with cache_folder= holding the corpus embeddings from an
      earlier call (its query-embedding cache file is deleted before every call, so it encodes
      the queries like rankkit does).

Positives are the qrels grades >= 2. rankkit gets all of them (its MinedSet never returns a
labeled positive as a negative); ST gets one (query, positive) row per query (the query's
highest-graded positive, first in qrels order), so it excludes only that one. The overlap table
measures how far the negatives agree and why they differ.

    .venv/bin/python benchmarks/bench_mining.py                 # 2 end-to-end + 5 mining repetitions
    .venv/bin/python benchmarks/bench_mining.py --e2e-reps 0    # only case (b) (builds the index once)
    .venv/bin/python benchmarks/bench_mining.py --precision bf16 --name mining-bf16   # rankkit in bf16
    .venv/bin/python benchmarks/bench_mining.py --precision bf16 --st-precision bf16 --name mining-bf16-both
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import os
import shutil
import time
from pathlib import Path

# like the `rankkit` CLI: no tokenizer thread pool competing with torch's threads (set for both systems)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import REPO_ROOT, dl19_dir, median, quiet_torch, save_result  # noqa: E402

from rankkit.data.corpus import read_corpus, write_corpus  # noqa: E402
from rankkit.data.qrels import read_qrels  # noqa: E402
from rankkit.data.queries import read_queries  # noqa: E402
from rankkit.encode.biencoder import BiEncoder  # noqa: E402
from rankkit.encode.models import resolve_model_dir  # noqa: E402
from rankkit.encode.precision import CHOICES, resolve_precision  # noqa: E402
from rankkit.index.dense import DenseBuildConfig, DenseIndex, build_dense_index  # noqa: E402
from rankkit.mining import MiningConfig, RankWindow, TopN, candidates_from_retriever, candidates_from_run, mine  # noqa: E402
from rankkit.retrieve.dense import DenseRetriever  # noqa: E402

ST_BATCH_SIZE = 32  # mine_hard_negatives' default


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--e2e-reps",
        type=int,
        default=2,
        help="end-to-end repetitions per system (each encodes the 15,939 passages; default 2)",
    )
    parser.add_argument("--reps", type=int, default=5, help="repetitions per system of case (b) (default 5)")
    parser.add_argument("--max-rank", type=int, default=50, help="candidate window: ranks 1..MAX_RANK (default 50)")
    parser.add_argument("--count", type=int, default=8, help="negatives per query (default 8, sampling 'top')")
    parser.add_argument("--min-grade", type=int, default=2, help="qrels grade of a positive (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both systems (default 2)")
    parser.add_argument(
        "--precision",
        choices=CHOICES,
        default="fp32",
        help="rankkit's model precision, as rankkit's --precision (auto: bf16 where the CPU runs it "
        "natively, else fp32); default fp32, as sentence-transformers' default",
    )
    parser.add_argument(
        "--st-precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="sentence-transformers' model precision (model cast with .to(); default fp32)",
    )
    parser.add_argument("--model", default="default", help="model (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument(
        "--work",
        default=str(REPO_ROOT / "work" / "bench-mining"),
        help="scratch folder for the index and ST's embedding cache (git-ignored work/)",
    )
    parser.add_argument(
        "--max-docs",
        type=int,
        default=None,
        help="smoke tests only: the first N passages plus every positive, not the whole collection",
    )
    parser.add_argument(
        "--reuse-index",
        action="store_true",
        help="with --e2e-reps 0: keep the index folder in --work when its manifest matches the corpus "
        "and model, instead of rebuilding it (untimed either way)",
    )
    parser.add_argument("--note", action="append", default=[], help="a note to add to the results (repeatable)")
    parser.add_argument("--name", default="mining", help="results name (benchmarks/results/NAME.json|md)")
    args = parser.parse_args()
    args.precision = resolve_precision(args.precision, torch.device("cpu"))  # auto -> fp32 or bf16, as reported
    return args


def abba(systems: list[str], step: int) -> list[str]:
    return systems if step % 2 == 0 else systems[::-1]


def timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    args = parse_args()
    started = time.time()
    quiet_torch(args.threads)
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    disable_progress_bar()
    try:
        import faiss  # noqa: F401

        use_faiss = True
    except ImportError:
        use_faiss = False

    data = dl19_dir()
    corpus_path = data / "collection.tsv"
    docs = list(read_corpus(corpus_path))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.max_docs:  # smoke tests: a smaller corpus that still holds each query's best positive
        smoke_qrels = read_qrels(data / "qrels.txt")
        best = {max(j, key=lambda d: j[d]) for j in smoke_qrels.values()}
        docs = [d for i, d in enumerate(docs) if i < args.max_docs or d.docid in best]
        corpus_path = work / f"dl19-first{args.max_docs}.tsv"
        write_corpus(docs, corpus_path)
    doc_texts = {d.docid: d.contents for d in docs}
    corpus_texts = [d.contents for d in docs]
    first_docid: dict[str, str] = {}  # text -> first docid with it: what ST's de-duplicated corpus keeps
    for d in docs:
        first_docid.setdefault(d.contents, d.docid)
    canonical = {d.docid: first_docid[d.contents] for d in docs}
    queries = read_queries(data / "queries.tsv")
    qrels = read_qrels(data / "qrels.txt")
    qids = sorted(q for q in queries if any(g >= args.min_grade for g in qrels.get(q, {}).values()))
    queries = {q: queries[q] for q in qids}
    # ST: one (query, positive) row per query: the highest grade, first in qrels order
    row_positive = {
        q: max((d for d, g in qrels[q].items() if g >= args.min_grade), key=lambda d: qrels[q][d]) for q in qids
    }
    dataset = Dataset.from_dict(
        {"query": [queries[q] for q in qids], "positive": [doc_texts[row_positive[q]] for q in qids]}
    )
    qid_of_text = {queries[q]: q for q in qids}
    if len(qid_of_text) != len(qids):
        raise SystemExit("two dl19 queries share a text: ST would merge them")

    model_dir = resolve_model_dir(args.model)
    rk = BiEncoder(args.model, device="cpu", precision=args.precision)
    st = SentenceTransformer(str(model_dir), device="cpu")
    if args.st_precision == "bf16":
        st.to(torch.bfloat16)
    if st.max_seq_length != rk.max_length:
        raise SystemExit(f"max length differs: sentence-transformers {st.max_seq_length}, rankkit {rk.max_length}")
    strategies = [RankWindow(1, args.max_rank), TopN(args.count)]
    config = MiningConfig(seed=0, min_grade=args.min_grade)
    index_dir = work / "dl19-minilm-flat"
    cache_dir = work / "st-cache"
    print(
        f"{len(docs)} passages, {len(qids)} queries, window 1..{args.max_rank}, top {args.count}, "
        f"use_faiss={use_faiss}, torch threads {torch.get_num_threads()}",
        flush=True,
    )

    def rk_mine_from_index():
        retriever = DenseRetriever(DenseIndex(index_dir), rk)
        candidates = candidates_from_retriever(retriever, queries, args.max_rank)
        return mine(queries, qrels, candidates, strategies, config, doc_texts)

    def rk_end_to_end():
        build_dense_index(corpus_path, index_dir, rk, DenseBuildConfig(factory="Flat"), overwrite=True)
        return rk_mine_from_index()

    def st_call(cache_folder: str | None):
        quiet = io.StringIO()  # ST prints its statistics table; keep the benchmark's output readable
        with contextlib.redirect_stdout(quiet):
            return mine_hard_negatives(
                dataset,
                st,
                corpus=corpus_texts,
                range_min=0,
                range_max=args.max_rank,
                num_negatives=args.count,
                sampling_strategy="top",
                output_format="n-tuple",
                output_scores=True,
                batch_size=ST_BATCH_SIZE,
                use_faiss=use_faiss,
                verbose=False,
                cache_folder=cache_folder,
            )

    def st_end_to_end():
        # an empty cache folder: ST encodes everything, then saves the embeddings (case (b) reuses them)
        shutil.rmtree(cache_dir, ignore_errors=True)
        return st_call(str(cache_dir))

    def st_mine_from_cache():
        for stale in glob.glob(str(cache_dir / "query_embeddings_*.npy")):
            os.remove(stale)  # queries are encoded on every call, as rankkit does
        return st_call(str(cache_dir))

    # (c) the mining core alone: query vectors computed once, outside the timing (rankkit), or ST's
    # query-embedding cache kept
    query_vectors = None

    def rk_mine_from_vectors():
        hits = DenseIndex(index_dir).search(query_vectors, args.max_rank)
        candidates = candidates_from_run(dict(zip(qids, hits)), f"dense:{index_dir.name}")
        return mine(queries, qrels, candidates, strategies, config, doc_texts)

    def st_mine_from_full_cache():
        return st_call(str(cache_dir))

    # warm-up: allocator, kernels, tokenizer caches
    rk.encode(corpus_texts[:128])
    st.encode(corpus_texts[:128], batch_size=ST_BATCH_SIZE, show_progress_bar=False)

    systems = ["rankkit", "sentence-transformers"]
    results: dict[str, dict[str, list]] = {}
    outputs: dict[str, object] = {}
    step = 0
    if args.e2e_reps > 0:
        print(f"(a) end to end: {args.e2e_reps} repetitions per system, ABBA ...", flush=True)
        fns = {"rankkit": rk_end_to_end, "sentence-transformers": st_end_to_end}
        case = results.setdefault("e2e", {s: [] for s in systems})
        for _ in range(args.e2e_reps):
            for system in abba(systems, step):
                out, wall, cpu = timed(fns[system])
                case[system].append((wall, cpu))
                outputs[system] = out
                print(f"  {system}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
            step += 1
    else:  # untimed: rankkit's index and ST's corpus-embedding cache for case (b)
        if not (args.reuse_index and index_matches(index_dir, corpus_path, rk)):
            build_dense_index(corpus_path, index_dir, rk, DenseBuildConfig(factory="Flat"), overwrite=True)
        st_end_to_end()
    print(f"(b) corpus already encoded: {args.reps} repetitions per system, ABBA ...", flush=True)
    fns = {"rankkit": rk_mine_from_index, "sentence-transformers": st_mine_from_cache}
    for fn in fns.values():  # warm-up of this path (index open, faiss, datasets)
        fn()
    case = results.setdefault("mining", {s: [] for s in systems})
    for _ in range(args.reps):
        for system in abba(systems, step):
            out, wall, cpu = timed(fns[system])
            case[system].append((wall, cpu))
            outputs[system] = out
        step += 1
    print(
        "  rankkit: "
        + ", ".join(f"{w:.2f}" for w, _ in case["rankkit"])
        + " s; ST: "
        + ", ".join(f"{w:.2f}" for w, _ in case["sentence-transformers"])
        + " s",
        flush=True,
    )
    print(f"(c) corpus and queries already encoded: {args.reps} repetitions per system, ABBA ...", flush=True)
    query_vectors = rk.encode([queries[q] for q in qids])
    st_mine_from_full_cache()  # writes ST's query cache
    fns = {"rankkit": rk_mine_from_vectors, "sentence-transformers": st_mine_from_full_cache}
    for fn in fns.values():
        fn()
    case = results.setdefault("core", {s: [] for s in systems})
    for _ in range(args.reps):
        for system in abba(systems, step):
            _, wall, cpu = timed(fns[system])
            case[system].append((wall, cpu))
        step += 1
    print(
        "  rankkit: "
        + ", ".join(f"{w:.3f}" for w, _ in case["rankkit"])
        + " s; ST: "
        + ", ".join(f"{w:.3f}" for w, _ in case["sentence-transformers"])
        + " s",
        flush=True,
    )

    n = len(qids)
    labels = {
        "e2e": f"(a) end to end (encode {len(docs):,} passages + {n} queries, search, mine)",
        "mining": "(b) corpus already encoded (open index / cached embeddings, encode queries, search, mine)",
        "core": "(c) corpus and queries already encoded (search + mine only)",
    }
    rows = []
    for key, per_system in results.items():
        rk_walls = [w for w, _ in per_system["rankkit"]]
        st_walls = [w for w, _ in per_system["sentence-transformers"]]
        rows.append(
            {
                "case": labels[key],
                "reps": len(rk_walls),
                "rankkit s": median(rk_walls),
                "ST s": median(st_walls),
                "rankkit queries/s": n / median(rk_walls),
                "ST queries/s": n / median(st_walls),
                "ratio rankkit/ST": median(st_walls) / median(rk_walls),
                "paired ratio (median of reps)": median(s / r for r, s in zip(rk_walls, st_walls)),
                "rankkit CPU s": median(c for _, c in per_system["rankkit"]),
                "ST CPU s": median(c for _, c in per_system["sentence-transformers"]),
                "rankkit reps s": ", ".join(f"{w:.2f}" for w in rk_walls),
                "ST reps s": ", ".join(f"{w:.2f}" for w in st_walls),
            }
        )

    overlap_rows, overlap_notes = compare_negatives(
        outputs["rankkit"],
        outputs["sentence-transformers"],
        qids,
        queries,
        qrels,
        row_positive,
        qid_of_text,
        first_docid,
        canonical,
        doc_texts,
        args,
        strategies,
        rk,
    )
    notes = [
        f"Same model folder for both ({model_dir}), same {len(docs):,} dl19 passages, same {n} queries; torch threads "
        f"{args.threads}; TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM')}; model precision: "
        f"rankkit {args.precision}, ST {args.st_precision}.",
        f"Window: rankkit RankWindow(1, {args.max_rank}) + TopN({args.count}) on the dense top-{args.max_rank}; ST "
        f"range_min=0, range_max={args.max_rank}, num_negatives={args.count}, sampling_strategy='top', no margin, "
        f"use_faiss={use_faiss}, batch_size={ST_BATCH_SIZE}, output_format='n-tuple'.",
        "Systems interleaved ABBA within each case; a repetition times one whole call; queries/s = 43 / median "
        "seconds; ratio = ST seconds / rankkit seconds (> 1: rankkit faster). Goal: ratio >= 2.",
        "(a) rankkit: build_dense_index(Flat) writes the index folder (encode, faiss, manifest with the corpus "
        "checksum), then opens it, searches and mines with doc_texts (text-duplicate check); ST: one "
        "mine_hard_negatives call over the in-memory corpus list, given an empty cache_folder so that it also saves "
        "its embeddings (two .npy files, a fraction of a second) for case (b). Reading the corpus into memory is "
        "outside both.",
        "(b) rankkit: DenseIndex(folder) from disk + query encoding + search + mine, the model already loaded; ST: "
        "mine_hard_negatives(cache_folder=...) loading corpus_embeddings_<hash>.npy written by an earlier call "
        "(ST has no argument taking corpus embeddings directly; cache_folder is its only way to skip corpus "
        "encoding); its query cache file is deleted before every call so both encode the 43 queries.",
        "(c) the mining core without any model call: rankkit DenseIndex(folder).search(query vectors computed "
        "once) + candidates_from_run + mine; ST mine_hard_negatives with both its corpus and query embeddings "
        "cached (it still hashes and de-duplicates the corpus, loads the .npy files and builds a FAISS index).",
        *overlap_notes,
        *args.note,
    ]
    params = {
        "e2e_reps": args.e2e_reps,
        "reps": args.reps,
        "max_rank": args.max_rank,
        "count": args.count,
        "min_grade": args.min_grade,
        "threads": args.threads,
        "model": args.model,
        "precision": args.precision,
        "st_precision": args.st_precision,
        "st_batch_size": ST_BATCH_SIZE,
        "use_faiss": use_faiss,
        "rankkit_max_tokens": rk.max_tokens,
        "rankkit_max_batch_size": rk.max_batch_size,
    }
    title = "Mining throughput: rankkit vs sentence-transformers mine_hard_negatives (dl19)"
    if (args.precision, args.st_precision) != ("fp32", "fp32"):
        title += f", rankkit {args.precision} vs ST {args.st_precision}"
    save_result(
        args.name,
        rows,
        title=title,
        params=params,
        notes=notes,
        extra_tables={"Overlap of the mined negatives": overlap_rows},
        started=started,
    )


def index_matches(folder: Path, corpus_path: Path, encoder: BiEncoder) -> bool:
    from rankkit.index.manifest import CorpusInfo, Manifest

    try:
        manifest = Manifest.read(folder)
    except Exception:
        return False
    return (
        manifest.index_type == "Flat"
        and manifest.model_fingerprint == encoder.fingerprint
        and manifest.settings.get("precision", "fp32") == encoder.precision
        and manifest.corpus.sha256 == CorpusInfo.of(corpus_path, "tsv").sha256
    )


def compare_negatives(
    mined,
    st_out,
    qids,
    queries,
    qrels,
    row_positive,
    qid_of_text,
    first_docid,
    canonical,
    doc_texts,
    args,
    strategies,
    encoder,
):
    """Per query, the share of rankkit's negatives that ST also returned (documents with identical
    text count as one, as ST de-duplicates its corpus), and why the others differ."""
    st_negatives: dict[str, list[str]] = {}
    st_scores: dict[str, list[float]] = {}
    columns = [f"negative_{i}" for i in range(1, args.count + 1)]
    for row in st_out:
        qid = qid_of_text[row["query"]]
        st_negatives[qid] = [first_docid[row[c]] for c in columns]
        st_scores[qid] = list(row["scores"][1:])
    rk_negatives = {q.qid: [canonical[c.docid] for c in q.negatives] for q in mined.queries}
    rk_scores = {q.qid: {canonical[c.docid]: c.score for c in q.negatives} for q in mined.queries}

    # rankkit told only ST's one positive per query: isolates the effect of excluding all positives
    single = {q: {row_positive[q]: qrels[q][row_positive[q]]} for q in qids}
    from rankkit.index.dense import DenseIndex
    from rankkit.mining import MiningConfig, candidates_from_retriever, mine
    from rankkit.retrieve.dense import DenseRetriever

    retriever = DenseRetriever(DenseIndex(Path(args.work) / "dl19-minilm-flat"), encoder)
    candidates = candidates_from_retriever(retriever, queries, args.max_rank)
    mined_single = mine(queries, single, candidates, strategies, MiningConfig(0, args.min_grade), doc_texts)
    rk_single = {q.qid: [canonical[c.docid] for c in q.negatives] for q in mined_single.queries}
    full_ranking = {qid: [canonical[c.docid] for c in found] for qid, found in candidates.items()}

    def overlap(a: dict[str, list[str]], b: dict[str, list[str]]) -> tuple[float, int, int]:
        shares = [len(set(a.get(q, [])) & set(b.get(q, []))) / args.count for q in qids]
        return float(np.mean(shares)), sum(s == 1.0 for s in shares), sum(len(a.get(q, [])) for q in qids)

    mean_all, identical_all, rk_count = overlap(rk_negatives, st_negatives)
    mean_single, identical_single, _ = overlap(rk_single, st_negatives)
    st_only = [(q, d) for q in qids for d in st_negatives.get(q, []) if d not in set(rk_negatives.get(q, []))]
    st_only_positive = sum(qrels[q].get(d, 0) >= args.min_grade for q, d in st_only)
    st_only_single = [(q, d) for q in qids for d in st_negatives.get(q, []) if d not in set(rk_single.get(q, []))]
    shared_diffs = [
        abs(rk_scores[q][d] - s)
        for q in qids
        for d, s in zip(st_negatives.get(q, []), st_scores.get(q, []))
        if d in rk_scores.get(q, {})
    ]
    # near ties: rankkit scores of consecutive candidates closer than tie_eps around the cut (bf16
    # vectors are about 1e-3 off in score, fp32 ones about 1e-7)
    tie_eps = 1e-5 if (args.precision, args.st_precision) == ("fp32", "fp32") else 2e-3
    ties = 0
    for q in qids:
        hits = [c for c in candidates[q] if c.docid not in single[q]]
        if len(hits) > args.count and abs(hits[args.count - 1].score - hits[args.count].score) < tie_eps:
            ties += 1
    duplicate_texts = sum(1 for d, c in canonical.items() if d != c)
    rows = [
        {
            "comparison": "rankkit (all grade>=2 positives excluded) vs ST (its row's positive excluded)",
            "mean share of identical docids": mean_all,
            "queries identical": identical_all,
            "queries": len(qids),
            "rankkit negatives": rk_count,
            "ST negatives": sum(len(v) for v in st_negatives.values()),
        },
        {
            "comparison": "rankkit told only ST's one positive per query vs ST",
            "mean share of identical docids": mean_single,
            "queries identical": identical_single,
            "queries": len(qids),
            "rankkit negatives": sum(len(v) for v in rk_single.values()),
            "ST negatives": sum(len(v) for v in st_negatives.values()),
        },
    ]
    mean_rank_st_only = [full_ranking[q].index(d) + 1 for q, d in st_only if d in full_ranking[q]]
    notes = [
        f"Overlap: {len(st_only)} of ST's negatives are not among rankkit's; {st_only_positive} of them are judged "
        f"grade >= {args.min_grade} for the query, i.e. labeled positives other than the one in ST's row, which "
        "rankkit never returns as negatives (ST excludes only the positives present in the dataset rows); "
        "rankkit then fills its top-8 from further down the dense ranking (those ST-only documents sit at "
        f"dense ranks {min(mean_rank_st_only, default=0)}-{max(mean_rank_st_only, default=0)}).",
        f"Told the same single positive, rankkit and ST differ in {len(st_only_single)} negatives over "
        f"{len(qids)} queries; max |score difference| on shared negatives {max(shared_diffs, default=0):.2g} "
        f"(rankkit vs ST embeddings of the same text, different batching/padding, rankkit {args.precision} vs ST "
        f"{args.st_precision}); queries with a near-tie (< {tie_eps:g}) at the rank-{args.count} cut: {ties}.",
        f"Documents with identical text count as one document (ST de-duplicates its corpus and returns texts, "
        f"mapped back to the first docid with that text); the dl19 collection has {duplicate_texts} such duplicates.",
    ]
    return rows, notes


if __name__ == "__main__":
    main()
