"""Training: (a) throughput of rankkit's trainers vs sentence-transformers' trainers on the same
groups, (b) effectiveness of fine-tuning on Cranfield with 2-fold cross-validation by query.

(a) Throughput, on dl19 (query, positive, negatives) groups: one pseudo-query per (query,
    grade >= 2 positive) pair, round-robin over the 43 queries, negatives from the shipped BM25
    top-100 run (positives removed); rankkit's epoch_groups() draws each group's negatives, and
    sentence-transformers gets exactly those groups in the same order (a sequential batch
    sampler), so both see identical batches.
    - bi-encoder: rankkit train_biencoder (InfoNCE over in-batch + mined negatives, T = 0.05)
      vs SentenceTransformerTrainer + MultipleNegativesRankingLoss (scale 20 = 1 / 0.05): the same
      loss; columns (anchor, positive, negative_1..n).
    - cross-encoder: rankkit train_reranker(RerankerConfig(loss="softmax")): listwise softmax cross-entropy over
      [positive, n negatives] vs CrossEncoderTrainer + cross_encoder.losses.MultipleNegativesRankingLoss
      with its in-batch sampling off, no activation and scale 1, which is exactly that loss;
      optionally (--ce-losses softmax,bce) rankkit loss='bce' vs BinaryCrossEntropyLoss on the same
      pairs flattened (batch = groups x (1 + n) pairs).
    Each run does warm-up step(s) then timed steps; runs are interleaved ABBA (rankkit, ST, ST,
    rankkit); a step's time runs from the end of the previous step to the end of this one (batch
    fetch, tokenisation, forward, backward, clipping, optimizer), the median over timed steps is
    reported as groups/s.
(b) Effectiveness on ../shared/data/cranfield (225 queries, grades 1-5, 5 = the source paper;
    positives = grade >= 1): kfold_queries(k=2, seed 0). Per fold, negatives for the TRAIN
    queries are mined from rankkit's BM25 top-100 (every candidate but the positives), then a
    bi-encoder and a cross-encoder (new head) are fine-tuned from MiniLM and evaluated on the
    HELD-OUT queries: BM25, untrained MiniLM dense, fine-tuned dense (corpus re-encoded), and the
    cross-encoder reranking BM25's top-30 (untrained head vs fine-tuned). Held-out runs of both
    folds are joined, so every query is tested exactly once.

Needs `accelerate` for the sentence-transformers trainers (pip install 'accelerate>=1.1').

    .venv/bin/python benchmarks/bench_training.py            # full: about 35 min on a loaded 2-core machine
    .venv/bin/python benchmarks/bench_training.py --quick    # smaller: about 5-10 min
    .venv/bin/python benchmarks/bench_training.py --part effectiveness
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import REPO_ROOT, dl19_dir, median, quiet_torch, save_result  # noqa: E402

from rankkit.data.collection import shared_data_root  # noqa: E402
from rankkit.data.corpus import read_doc_texts  # noqa: E402
from rankkit.data.qrels import read_qrels  # noqa: E402
from rankkit.data.queries import read_queries  # noqa: E402
from rankkit.data.runs import Run, read_run  # noqa: E402
from rankkit.encode.biencoder import BiEncoder  # noqa: E402
from rankkit.encode.crossencoder import CrossEncoder  # noqa: E402
from rankkit.encode.models import resolve_model_dir  # noqa: E402
from rankkit.eval.compare import paired_compare  # noqa: E402
from rankkit.eval.folds import kfold_queries  # noqa: E402
from rankkit.eval.measures import evaluate, resolve_measures  # noqa: E402
from rankkit.index.bm25 import build_bm25_index  # noqa: E402
from rankkit.index.dense import DenseBuildConfig, DenseIndex, build_dense_index  # noqa: E402
from rankkit.index.manifest import CorpusInfo, Manifest  # noqa: E402
from rankkit.mining import MinedQuery, MinedSet, MiningConfig, RankWindow, TopN, candidates_from_run, mine  # noqa: E402
from rankkit.retrieve.bm25 import BM25Retriever  # noqa: E402
from rankkit.retrieve.dense import DenseRetriever  # noqa: E402
from rankkit.retrieve.rerank import rerank_run  # noqa: E402
from rankkit.train import TrainConfig, train_biencoder, train_reranker  # noqa: E402
from rankkit.train.config import RerankerConfig  # noqa: E402
from rankkit.train.examples import Group, epoch_groups  # noqa: E402

MEASURES = ("nDCG@10", "R@100")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all", "throughput", "effectiveness"), default="all")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller: throughput with batch 4 and 2 timed steps, one run each; effectiveness "
        "on 40 queries over a 300-document subset (plus their judged documents), 2 steps "
        "per model, rerank depth 10",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--model", default="default", help="starting model (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument(
        "--max-length",
        type=int,
        default=256,
        help="(a) token limit for both systems (default 256; dl19 passages are shorter)",
    )
    parser.add_argument("--seed", type=int, default=0)
    tp = parser.add_argument_group("throughput (a)")
    tp.add_argument("--bi-batch", type=int, default=16, help="groups per bi-encoder step (default 16)")
    tp.add_argument("--ce-batch", type=int, default=8, help="groups per cross-encoder step (default 8)")
    tp.add_argument("--tp-negatives", type=int, default=4, help="mined negatives per group (default 4)")
    tp.add_argument("--warmup-steps", type=int, default=1, help="untimed steps at the start of each run (1)")
    tp.add_argument("--timed-steps", type=int, default=2, help="timed steps per run (default 2)")
    tp.add_argument(
        "--tp-reps", type=int, default=2, help="runs per system, interleaved ABBA (default 2: rankkit, ST, ST, rankkit)"
    )
    tp.add_argument(
        "--ce-losses",
        default="softmax",
        help="cross-encoder loss pairs to time: softmax (vs ST MNRL hard negatives only) and/or bce "
        "(vs ST BinaryCrossEntropyLoss), comma-separated (default softmax)",
    )
    ef = parser.add_argument_group("effectiveness (b)")
    ef.add_argument("--collection", default="cranfield", help="folder under the shared data (default cranfield)")
    ef.add_argument("--folds", type=int, default=2)
    ef.add_argument("--epochs", type=float, default=1.0, help="epochs per model per fold (default 1)")
    ef.add_argument("--max-steps", type=int, default=None, help="or a fixed number of steps per model")
    ef.add_argument("--batch-size", type=int, default=16, help="groups per step (default 16)")
    ef.add_argument("--negatives", type=int, default=3, help="negatives per group (default 3)")
    ef.add_argument("--bi-lr", type=float, default=2e-5, help="bi-encoder learning rate (default 2e-5)")
    ef.add_argument(
        "--ce-lr",
        type=float,
        default=5e-5,
        help="cross-encoder learning rate (default 5e-5: the head starts from scratch)",
    )
    ef.add_argument("--mine-depth", type=int, default=100, help="BM25 candidates mined per train query (100)")
    ef.add_argument("--rerank-depth", type=int, default=30, help="BM25 hits reranked by the cross-encoder (30)")
    ef.add_argument("--max-queries", type=int, default=None, help="use only the first N queries (quick runs)")
    ef.add_argument(
        "--eff-max-length",
        type=int,
        default=128,
        help="token limit of the neural models in (b) (default 128: Cranfield abstracts average "
        "~200 tokens, and 256 doubles the cost of every encode, step and rerank)",
    )
    ef.add_argument(
        "--max-docs",
        type=int,
        default=None,
        help="smoke tests only: the first N documents plus the judged ones of the queries used",
    )
    parser.add_argument(
        "--work",
        default=str(REPO_ROOT / "work" / "bench-training"),
        help="scratch folder for models and indexes (git-ignored work/)",
    )
    parser.add_argument("--name", default=None, help="results name (default training, or training-quick)")
    args = parser.parse_args()
    if args.quick:
        args.bi_batch, args.ce_batch, args.timed_steps, args.tp_reps = 4, 4, 2, 1
        args.max_queries = args.max_queries or 40
        args.max_docs = args.max_docs or 300
        args.max_steps = args.max_steps or 2
        args.rerank_depth = 10
    args.name = args.name or ("training-quick" if args.quick else "training")
    return args


# ---------------------------------------------------------------------------------------------
# (a) throughput


def throughput_groups(args, n_groups: int) -> tuple[MinedSet, dict[str, str]]:
    """A MinedSet of n_groups pseudo-queries: one per (dl19 query, grade >= 2 positive), round-robin
    over the queries so that a batch holds distinct queries; negatives from the BM25 top-100 run."""
    data = dl19_dir()
    queries, qrels = read_queries(data / "queries.tsv"), read_qrels(data / "qrels.txt")
    run = read_run(data / "run.bm25.top100.trec")
    doc_texts = read_doc_texts(data / "collection.tsv")
    run = {qid: [h for h in hits if h.docid in doc_texts] for qid, hits in run.items()}
    base = mine(
        queries,
        qrels,
        candidates_from_run(run, "bm25-run"),
        [RankWindow(1, 100), TopN(30)],
        MiningConfig(args.seed, min_grade=2),
        doc_texts,
    )
    per_query = [
        [
            MinedQuery(f"{q.qid}/{d}", q.query, {d: g}, q.negatives)
            for d, g in sorted(q.positives.items(), key=lambda item: (-item[1], item[0]))
        ]
        for q in base.queries
        if len(q.negatives) >= args.tp_negatives
    ]
    expanded: list[MinedQuery] = []
    depth = 0
    while len(expanded) < n_groups:
        layer = [items[depth] for items in per_query if depth < len(items)]
        if not layer:
            raise SystemExit(f"dl19 has fewer than {n_groups} (query, positive) pairs")
        expanded.extend(layer)
        depth += 1
    return MinedSet(expanded[:n_groups]), doc_texts


class StepClock:
    """A transformers TrainerCallback recording when each optimizer step ends."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Clock(TrainerCallback):
            def __init__(self):
                self.start, self.ends = 0.0, []

            def on_train_begin(self, args, state, control, **kwargs):
                self.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                self.ends.append(time.perf_counter())

            def durations(self) -> list[float]:
                marks = [self.start, *self.ends]
                return [b - a for a, b in zip(marks, marks[1:])]

        return _Clock()


def sequential_batch_sampler(dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
    """Batches in dataset order, so sentence-transformers sees rankkit's batches."""
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from torch.utils.data import SequentialSampler

    return DefaultBatchSampler(
        SequentialSampler(dataset),
        batch_size=batch_size,
        drop_last=drop_last,
        valid_label_columns=valid_label_columns,
        generator=generator,
        seed=seed,
    )


def st_training_args(cls, out: Path, steps: int, batch: int, lr: float, seed: int):
    return cls(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=lr,
        warmup_steps=0.1,
        weight_decay=0.01,
        max_grad_norm=1.0,
        lr_scheduler_type="linear",
        seed=seed,
        save_strategy="no",
        report_to="none",
        logging_strategy="steps",
        logging_steps=1,
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        batch_sampler=sequential_batch_sampler,
    )


def group_columns(groups: list[Group], negatives: int) -> dict[str, list[str]]:
    columns = {"anchor": [g.query for g in groups], "positive": [g.positive for g in groups]}
    for i in range(negatives):
        columns[f"negative_{i + 1}"] = [g.negatives[i] for g in groups]
    return columns


def run_throughput(args, model_dir: Path) -> tuple[list[dict], list[str]]:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers import losses as st_losses
    from sentence_transformers.cross_encoder import CrossEncoder as STCrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder import losses as ce_losses

    class HardNegativesListwiseLoss(ce_losses.MultipleNegativesRankingLoss):
        """ST's cross-encoder MNRL over (positive, hard negatives) only: no sampled in-batch negatives
        (num_negatives=0 is refused by torch.multinomial, so the sampler is switched off here)."""

        def get_in_batch_negatives(self, anchors, candidates):
            return iter(())

    steps = args.warmup_steps + args.timed_steps
    n = args.tp_negatives
    work = Path(args.work) / "throughput"
    lr = 2e-5
    rows, notes = [], []
    cases = [("bi-encoder", args.bi_batch, None)]
    cases += [("cross-encoder", args.ce_batch, loss) for loss in args.ce_losses.split(",") if loss]
    for kind, batch, loss_name in cases:
        mined, doc_texts = throughput_groups(args, steps * batch)
        groups = epoch_groups(mined, doc_texts, n, args.seed, 0)  # exactly what rankkit's trainer draws
        assert len(groups) == steps * batch

        def rankkit_run(out: Path):
            # fp32, as sentence-transformers trains here (rankkit's auto: bf16 autocast where the CPU has it)
            config = TrainConfig(
                output=str(out),
                model=args.model,
                max_steps=steps,
                batch_size=batch,
                negatives=n,
                lr=lr,
                seed=args.seed,
                device="cpu",
                precision="fp32",
                max_length=args.max_length,
                overwrite=True,
            )
            if kind == "bi-encoder":
                train_biencoder(mined, doc_texts, config)
            else:
                train_reranker(mined, doc_texts, config, RerankerConfig(loss=loss_name))
            records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
            return [batch / r["groups_per_s"] for r in records], [r["loss"] for r in records]

        def st_run(out: Path):
            shutil.rmtree(out, ignore_errors=True)
            clock = StepClock()
            torch.manual_seed(args.seed)
            if kind == "bi-encoder":
                model = SentenceTransformer(str(model_dir), device="cpu")
                model.max_seq_length = args.max_length
                trainer = SentenceTransformerTrainer(
                    model=model,
                    args=st_training_args(SentenceTransformerTrainingArguments, out, steps, batch, lr, args.seed),
                    train_dataset=Dataset.from_dict(group_columns(groups, n)),
                    loss=st_losses.MultipleNegativesRankingLoss(model, scale=20.0),
                    callbacks=[clock],
                )
            else:
                model = STCrossEncoder(str(model_dir), num_labels=1, max_length=args.max_length, device="cpu")
                if loss_name == "softmax":
                    dataset = Dataset.from_dict(group_columns(groups, n))
                    loss = HardNegativesListwiseLoss(model, scale=1.0, activation_fn=None)
                    st_batch = batch
                else:
                    pairs = [
                        (g.query, text, float(i == 0))
                        for g in groups
                        for i, text in enumerate((g.positive, *g.negatives))
                    ]
                    dataset = Dataset.from_dict(
                        {
                            "query": [p[0] for p in pairs],
                            "passage": [p[1] for p in pairs],
                            "label": [p[2] for p in pairs],
                        }
                    )
                    loss = ce_losses.BinaryCrossEntropyLoss(model)
                    st_batch = batch * (1 + n)
                trainer = CrossEncoderTrainer(
                    model=model,
                    args=st_training_args(CrossEncoderTrainingArguments, out, steps, st_batch, lr, args.seed),
                    train_dataset=dataset,
                    loss=loss,
                    callbacks=[clock],
                )
            trainer.train()
            losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
            return clock.durations(), losses

        systems = {"rankkit": rankkit_run, "sentence-transformers": st_run}
        label = kind if kind == "bi-encoder" else f"cross-encoder ({loss_name})"
        timings: dict[str, list[float]] = {s: [] for s in systems}
        walls: dict[str, list[float]] = {s: [] for s in systems}
        first_losses: dict[str, list[float]] = {s: [] for s in systems}
        order = list(systems)
        for rep in range(args.tp_reps):
            for system in order if rep % 2 == 0 else order[::-1]:
                out = work / f"{kind}-{loss_name or 'infonce'}-{system}"
                t0 = time.perf_counter()
                durations, losses = systems[system](out)
                walls[system].append(time.perf_counter() - t0)
                if len(durations) != steps:
                    raise SystemExit(f"{system} {label}: {len(durations)} steps timed, expected {steps}")
                timings[system] += durations[args.warmup_steps :]
                first_losses[system].append(losses[0] if losses else float("nan"))
                print(
                    f"  {label} {system}: steps "
                    + ", ".join(f"{d:.1f}" for d in durations)
                    + f" s (first {args.warmup_steps} untimed); whole run {walls[system][-1]:.1f} s",
                    flush=True,
                )
        rk_step, st_step = median(timings["rankkit"]), median(timings["sentence-transformers"])
        rows.append(
            {
                "model": label,
                "batch (groups)": batch,
                "negatives": n,
                "timed steps per system": len(timings["rankkit"]),
                "rankkit s/step": rk_step,
                "ST s/step": st_step,
                "rankkit groups/s": batch / rk_step,
                "ST groups/s": batch / st_step,
                "ratio rankkit/ST": st_step / rk_step,
                "rankkit run s (load+steps+save)": median(walls["rankkit"]),
                "ST run s (load+steps)": median(walls["sentence-transformers"]),
                "step-1 loss rankkit / ST": f"{np.mean(first_losses['rankkit']):.3f} / "
                f"{np.mean(first_losses['sentence-transformers']):.3f}",
                "rankkit steps s": ", ".join(f"{d:.1f}" for d in timings["rankkit"]),
                "ST steps s": ", ".join(f"{d:.1f}" for d in timings["sentence-transformers"]),
            }
        )
    notes += [
        "Throughput data: dl19 pseudo-queries, one per (query, grade >= 2 positive), round-robin over the 43 "
        "queries; negatives from run.bm25.top100.trec (top 30 non-positives), 4 drawn per group by rankkit's "
        "epoch_groups; ST gets the identical groups in the identical order (sequential batch sampler).",
        "Bi-encoder loss: rankkit info_nce_loss(T=0.05) = ST MultipleNegativesRankingLoss(scale=20, cos_sim) over "
        "in-batch positives + all mined negatives of the batch. Cross-encoder (softmax): rankkit "
        "softmax_cross_entropy_loss over [positive, negatives] = ST cross_encoder MultipleNegativesRankingLoss with "
        "activation_fn=None, scale=1 and its random in-batch negatives switched off (subclass; num_negatives=0 is "
        "refused). Cross-encoder (bce): rankkit pointwise_bce_loss = ST BinaryCrossEntropyLoss on the same pairs.",
        "Same optimizer settings for both: AdamW lr 2e-5, weight decay 0.01, clipping 1.0, linear schedule; fp32 on "
        f"CPU (no bf16), max length {args.max_length}, torch threads {args.threads}. A step = batch fetch + "
        "tokenisation + forward + backward + clip + optimizer; ratio = ST s/step / rankkit s/step (> 1: rankkit "
        "faster). Step-1 losses differ by dropout randomness only.",
        "How each computes: rankkit's bi-encoder embeds the queries, the positives and all negatives of a batch "
        "as three lists, each in length-sorted chunks within a 2,048-token budget (padding only to the longest "
        "text of a chunk); ST embeds each column (anchor, positive, negative_1..n) as one batch padded to its "
        "longest text. rankkit's cross-encoder scores all batch x (1 + n) pairs in length-sorted chunks within a "
        "4,096-token budget; ST's MNRL runs one padded forward pass per column.",
    ]
    return rows, notes


# ---------------------------------------------------------------------------------------------
# (b) effectiveness


def bm25_index(corpus: Path, folder: Path) -> BM25Retriever:
    info = CorpusInfo.of(corpus, "tsv")
    try:
        ok = Manifest.read(folder).corpus.sha256 == info.sha256
    except Exception:
        ok = False
    if not ok:
        build_bm25_index(corpus, folder, overwrite=True)
    return BM25Retriever(folder)


def dense_run(
    model: str, corpus: Path, folder: Path, queries: dict[str, str], depth: int, max_length: int
) -> tuple[Run, float]:
    """Encode the corpus with `model` into a Flat index, search the queries; returns (run, seconds)."""
    t0 = time.perf_counter()
    encoder = BiEncoder(model, device="cpu", max_length=max_length)
    build_dense_index(corpus, folder, encoder, DenseBuildConfig(factory="Flat"), overwrite=True)
    run = DenseRetriever(DenseIndex(folder), encoder).batch_search(queries, depth)
    return run, time.perf_counter() - t0


def run_effectiveness(args) -> tuple[list[dict], list[dict], list[str]]:
    data = shared_data_root() / args.collection
    corpus = data / "collection.tsv"
    queries = read_queries(data / "queries.tsv")
    qrels = read_qrels(data / "qrels.txt")
    doc_texts = read_doc_texts(corpus)
    qids = sorted((q for q in queries if any(g >= 1 for g in qrels.get(q, {}).values())), key=_natural)
    if args.max_queries:
        qids = qids[: args.max_queries]
    queries = {q: queries[q] for q in qids}
    qrels = {q: qrels[q] for q in qids}
    work = Path(args.work) / "effectiveness"
    work.mkdir(parents=True, exist_ok=True)
    if args.max_docs:  # smoke tests: a smaller corpus
        judged = {d for j in qrels.values() for d in j}
        kept = [(d, t) for i, (d, t) in enumerate(doc_texts.items()) if i < args.max_docs or d in judged]
        doc_texts = dict(kept)
        corpus = work / f"{args.collection}-first{args.max_docs}.tsv"
        corpus.write_text("".join(f"{d}\t{t}\n" for d, t in kept), encoding="utf-8")
    depth = max(100, args.mine_depth)
    measures = resolve_measures(None, MEASURES)
    print(f"(b) {args.collection}: {len(qids)} queries, {len(doc_texts)} documents, {args.folds} folds", flush=True)

    bm25 = bm25_index(corpus, work / (f"{args.collection}-bm25" + (f"-first{args.max_docs}" if args.max_docs else "")))
    bm25_run = bm25.batch_search(queries, depth)
    untrained_dense, untrained_s = dense_run(
        args.model, corpus, work / f"{args.collection}-minilm", queries, 100, args.eff_max_length
    )
    print(f"  untrained dense: {untrained_s:.0f} s", flush=True)
    torch.manual_seed(args.seed)  # the untrained head: the same weights train_reranker starts from
    t0 = time.perf_counter()
    untrained_ce = rerank_run(
        bm25_run,
        queries,
        doc_texts,
        CrossEncoder(args.model, device="cpu", max_length=args.eff_max_length),
        depth=args.rerank_depth,
    )
    print(f"  untrained cross-encoder rerank: {time.perf_counter() - t0:.0f} s", flush=True)

    runs: dict[str, Run] = {
        "BM25 (rankkit, k1=0.9 b=0.4)": bm25_run,
        "MiniLM dense, untrained": untrained_dense,
        "MiniLM dense, fine-tuned": {},
        f"BM25 top-{args.rerank_depth} + cross-encoder, untrained head": untrained_ce,
        f"BM25 top-{args.rerank_depth} + cross-encoder, fine-tuned": {},
    }
    fold_rows = []
    for fold, (train, test) in enumerate(kfold_queries(qids, args.folds, args.seed)):
        train_q = {q: queries[q] for q in train}
        test_q = {q: queries[q] for q in test}
        candidates = candidates_from_run({q: bm25_run[q][: args.mine_depth] for q in train}, bm25.name)
        mined = mine(
            train_q,
            qrels,
            candidates,
            [RankWindow(1, args.mine_depth)],
            MiningConfig(args.seed, min_grade=1),
            doc_texts,
        )
        folder = work / f"fold{fold}"
        common = dict(
            epochs=args.epochs,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
            negatives=args.negatives,
            seed=args.seed,
            device="cpu",
            precision="fp32",  # as recorded
            max_length=args.eff_max_length,
            overwrite=True,
            model=args.model,
        )
        t0 = time.perf_counter()
        bi_model = train_biencoder(
            mined, doc_texts, TrainConfig(output=str(folder / "biencoder"), lr=args.bi_lr, **common)
        )
        bi_s = time.perf_counter() - t0
        bi_steps = len((folder / "biencoder" / "train_log.jsonl").read_text().splitlines())
        tuned_dense, encode_s = dense_run(
            str(bi_model), corpus, folder / "dense-index", test_q, 100, args.eff_max_length
        )
        runs["MiniLM dense, fine-tuned"].update(tuned_dense)
        t0 = time.perf_counter()
        ce_model = train_reranker(
            mined,
            doc_texts,
            TrainConfig(output=str(folder / "reranker"), lr=args.ce_lr, **common),
            RerankerConfig(loss="softmax"),
        )
        ce_s = time.perf_counter() - t0
        ce_steps = len((folder / "reranker" / "train_log.jsonl").read_text().splitlines())
        t0 = time.perf_counter()
        reranked = rerank_run(
            {q: bm25_run[q] for q in test},
            test_q,
            doc_texts,
            CrossEncoder(ce_model, device="cpu", max_length=args.eff_max_length),
            depth=args.rerank_depth,
        )
        rerank_s = time.perf_counter() - t0
        runs[f"BM25 top-{args.rerank_depth} + cross-encoder, fine-tuned"].update(reranked)
        fold_rows.append(
            {
                "fold": fold,
                "train queries": len(train),
                "test queries": len(test),
                "mined queries": len(mined.queries),
                "negatives per query": mined.stats["negatives_per_query"]["mean"],
                "bi-encoder steps": bi_steps,
                "bi-encoder train s": bi_s,
                "re-encode + search s": encode_s,
                "cross-encoder steps": ce_steps,
                "cross-encoder train s": ce_s,
                "rerank test s": rerank_s,
            }
        )
        print(
            f"  fold {fold}: bi-encoder {bi_steps} steps {bi_s:.0f} s, re-encode {encode_s:.0f} s, "
            f"cross-encoder {ce_steps} steps {ce_s:.0f} s, rerank {rerank_s:.0f} s",
            flush=True,
        )

    evaluations = {name: evaluate(run, qrels, measures) for name, run in runs.items()}
    baseline = next(iter(evaluations))
    rows = []
    for name, evaluation in evaluations.items():
        row = {"system": name, "queries": len(next(iter(evaluation.per_query.values())))}
        for m in evaluation.measures:
            row[m] = evaluation.aggregate[m]
        if name != baseline:
            comparison = paired_compare("nDCG@10", baseline, evaluations[baseline], name, evaluation)
            row["nDCG@10 vs BM25"] = comparison.mean_difference
            row["p (paired t)"] = comparison.p_value
        rows.append(row)
    notes = [
        f"Effectiveness: {args.collection}, {len(qids)} queries with a grade >= 1 judgment, kfold_queries(k={args.folds}, "
        f"seed={args.seed}); every query is tested once, by models that never trained on it; measures over the "
        "joined held-out runs (nDCG@10 with graded gains 1-5, R@100 at grade >= 1).",
        f"Training data per fold: the train queries' positives = grade >= 1; negatives = rankkit BM25 top-"
        f"{args.mine_depth} minus the positives, all kept; each group = (query, one positive, {args.negatives} "
        "negatives drawn per epoch). rankkit's trainer uses a query's top-graded positive, i.e. on Cranfield always "
        "the grade-5 source paper.",
        "Budget per model per fold: "
        + (f"{args.max_steps} steps" if args.max_steps else f"{args.epochs:g} epoch(s)")
        + f" of batch {args.batch_size}; bi-encoder lr {args.bi_lr:g} (InfoNCE, T=0.05), cross-encoder lr "
        f"{args.ce_lr:g} (listwise softmax CE, new head); warm-up 10%, AdamW, max length {args.eff_max_length}.",
        f"The cross-encoder reranks BM25's top {args.rerank_depth} (hits below keep BM25's order), so its R@100 "
        "equals BM25's; the untrained head is the same seeded head the fine-tuning starts from.",
        f"Untrained dense: encode + index + search {untrained_s:.0f} s.",
    ]
    return rows, fold_rows, notes


def _natural(qid: str):
    return (0, int(qid), "") if qid.isdigit() else (1, 0, qid)


def main() -> None:
    args = parse_args()
    started = time.time()
    quiet_torch(args.threads)
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    model_dir = resolve_model_dir(args.model)
    rows: list[dict] = []
    extra: dict[str, list[dict]] = {}
    notes: list[str] = []
    if args.part in ("all", "throughput"):
        try:
            import accelerate  # noqa: F401
        except ImportError:
            raise SystemExit(
                "sentence-transformers' trainers need accelerate. Fix: .venv/bin/pip install 'accelerate>=1.1'"
            ) from None
        print("(a) training throughput, rankkit vs sentence-transformers, ABBA ...", flush=True)
        tp_rows, tp_notes = run_throughput(args, model_dir)
        extra["(a) Training throughput: rankkit vs sentence-transformers (dl19 groups)"] = tp_rows
        notes += tp_notes
    if args.part in ("all", "effectiveness"):
        ef_rows, fold_rows, ef_notes = run_effectiveness(args)
        rows = ef_rows
        extra["(b) Per-fold training cost"] = fold_rows
        notes += ef_notes
    if not rows:  # throughput only: its table is the main one
        title, rows = next(iter(extra.items()))
        del extra[title]
    params = {k: v for k, v in vars(args).items() if k not in ("name", "work")}
    save_result(
        args.name,
        rows,
        title=f"Training: throughput vs sentence-transformers, and fine-tuning on {args.collection} (2-fold)"
        if args.part != "throughput"
        else "Training throughput",
        params=params,
        notes=notes,
        extra_tables=extra,
        started=started,
    )


if __name__ == "__main__":
    main()
