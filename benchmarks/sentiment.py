"""Sentiment on the Banglish Daraz reviews: (a) tfidf, (b) transformer, (c) contrastive,
(d) self-training, trained on train.csv and measured on val.csv, several seeds each: accuracy,
macro-F1, AUROC, AUPRC (with the positive prior), ECE, training CPU and wall time, and inference
reviews/s. Also the mined opposite-label neighbours of a few reviews (base model's embeddings,
--embedding cls or mean as (c) uses). --model and --precision are `rankkit sentiment train`'s (auto: bf16
where the CPU runs it natively, else fp32).

With --adapt-epochs N the base model is first adapted to the reviews (`rankkit sentiment adapt`:
masked-LM training on the train and unlabelled reviews, never val; once, seed --adapt-seed) and (b)-(d) start
from the adapted encoder; its time is reported beside the training times. The adapted encoder is
kept in --work and reused by later runs with the same base model, epochs, precision and seed.

    .venv/bin/python benchmarks/sentiment.py --epochs 6 --seeds 0 1 2
    .venv/bin/python benchmarks/sentiment.py --epochs 6 --seeds 0 1 2 --adapt-epochs 3 --name sentiment-adapted
    (--append keeps the runs already in results/sentiment.json and adds the missing ones)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, command_line, quiet_torch, save_result  # noqa: E402

from rankkit.data.collection import shared_data_root  # noqa: E402
from rankkit.encode.precision import CHOICES, resolve_precision  # noqa: E402
from rankkit.sentiment import (  # noqa: E402
    METHODS,
    AdaptConfig,
    SentimentConfig,
    load_sentiment_model,
    read_reviews,
    sentiment_metrics,
    train_sentiment,
)
from rankkit.sentiment.adapt import adapt_encoder  # noqa: E402
from rankkit.sentiment.mining import mine_opposite_label  # noqa: E402
from rankkit.sentiment.model import POOLINGS, TransformerSentiment  # noqa: E402

MEASURES = ("accuracy", "macro_f1", "auroc", "auprc", "ece")


def run_one(
    method: str, seed: int, epochs: int, data: dict, scratch: Path, model: str, precision: str, embedding: str
) -> dict:
    config = SentimentConfig(
        output=str(scratch / f"{method}-{seed}"),
        method=method,
        seed=seed,
        epochs=epochs,
        model=model,
        device="cpu",
        precision=precision,
        embedding=embedding,
    )
    cpu, wall = time.process_time(), time.perf_counter()
    folder = train_sentiment(
        data["train"].texts,
        data["train"].labels,
        config,
        unlabeled=data["unlabeled"].texts if method == "self-training" else (),
    )
    train_cpu, train_wall = time.process_time() - cpu, time.perf_counter() - wall
    model = load_sentiment_model(folder, device="cpu")
    val = data["val"]
    cpu, wall = time.process_time(), time.perf_counter()
    probability = model.predict_proba(val.texts)
    infer_cpu, infer_wall = time.process_time() - cpu, time.perf_counter() - wall
    measured = sentiment_metrics(val.labels, probability)
    row = {
        "method": method,
        "seed": seed,
        "epochs": epochs if method != "tfidf" else None,
        **{m: measured[m] for m in MEASURES},
        "positive_prior": measured["positive_prior"],
        "train_cpu_s": round(train_cpu, 1),
        "train_wall_s": round(train_wall, 1),
        "infer_reviews_per_s": round(len(val.texts) / infer_wall, 1),
        "infer_cpu_s": round(infer_cpu, 2),
    }
    print(row, flush=True)
    return row


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and spread (sample std, and min-max) per method."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        group = [r for r in rows if r["method"] == method]
        summary: dict = {"method": method, "seeds": len(group)}
        for key in (*MEASURES, "train_cpu_s", "train_wall_s", "infer_reviews_per_s"):
            values = [r[key] for r in group]
            mean = statistics.fmean(values)
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[key] = f"{mean:.4f} ± {spread:.4f}" if key in MEASURES else f"{mean:.1f} ± {spread:.1f}"
        summary["accuracy_min_max"] = f"{min(r['accuracy'] for r in group):.4f}-{max(r['accuracy'] for r in group):.4f}"
        out.append(summary)
    return out


def neighbours(data: dict, model: str, count: int, n: int, embedding: str) -> list[dict]:
    """The n nearest opposite-label training reviews of the first `count` training reviews, in the
    base model's `embedding` space (what the first epoch of (c) mines)."""
    train = data["train"]
    embeddings = TransformerSentiment(model, device="cpu", pooling=embedding).encode(train.texts)
    mined = mine_opposite_label(embeddings, train.labels, train.texts, n)
    names = ("negative", "positive")
    rows = []
    for query in mined.queries[:count]:
        i = int(query.qid)
        for c in query.negatives:
            j = int(c.docid)
            rows.append(
                {
                    "review": train.texts[i],
                    "label": names[train.labels[i]],
                    "neighbour": train.texts[j],
                    "neighbour_label": names[train.labels[j]],
                    "cosine": round(c.score, 3),
                    "rank": c.rank,
                }
            )
    return rows


def adapt(data: dict, args: argparse.Namespace) -> tuple[str, dict]:
    """The base model adapted on the train and unlabelled reviews (seed --adapt-seed): its folder, and
    what it took. Kept in --work under a name of its settings and reused by later runs with them."""
    name = f"adapted-{Path(args.model).name}-e{args.adapt_epochs}-{args.precision}-s{args.adapt_seed}"
    output, record_file = args.work / name, args.work / name / "adapt.json"
    if record_file.is_file():
        return str(output / "model"), {**json.loads(record_file.read_text()), "reused": str(output)}
    args.work.mkdir(parents=True, exist_ok=True)
    config = AdaptConfig(
        output=str(output),
        model=args.model,
        epochs=args.adapt_epochs,
        device="cpu",
        precision=args.precision,
        seed=args.adapt_seed,
        overwrite=True,
    )
    cpu, wall = time.process_time(), time.perf_counter()
    folder = adapt_encoder(data["train"].texts + data["unlabeled"].texts, config)
    log = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    steps_per_epoch = len(log) // args.adapt_epochs
    losses = [
        round(statistics.fmean(r["loss"] for r in log[e * steps_per_epoch : (e + 1) * steps_per_epoch]), 3)
        for e in range(args.adapt_epochs)
    ]
    record = {
        "epochs": args.adapt_epochs,
        "texts": len(data["train"].texts) + len(data["unlabeled"].texts),
        "lr": config.lr,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "mlm_loss_per_epoch": losses,
        "cpu_s": round(time.process_time() - cpu, 1),
        "wall_s": round(time.perf_counter() - wall, 1),
    }
    record_file.write_text(json.dumps(record))  # written last: its presence marks a finished adaptation
    return str(folder), record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_root() / "banglish-daraz")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--model",
        default="default",
        help="encoder to start (b)-(d) from, as `rankkit sentiment train --model` (default: MiniLM)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=CHOICES,
        help="training precision, as `rankkit sentiment train --precision` (auto: bf16 where the "
        "CPU runs it natively, else fp32)",
    )
    parser.add_argument(
        "--embedding",
        default="mean",
        choices=POOLINGS,
        help="embedding of the contrastive term and the mining (SentimentConfig.embedding)",
    )
    parser.add_argument(
        "--adapt-epochs",
        type=int,
        default=0,
        help="first adapt the base model (masked LM on train + unlabelled reviews) for N epochs",
    )
    parser.add_argument("--adapt-seed", type=int, default=0, help="the adaptation's seed (its new masked-LM head)")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "rankkit-sentiment",
        help="where the adapted encoder is kept for later runs with the same settings",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="sentiment")
    parser.add_argument("--neighbours", type=int, default=4, help="reviews whose mined neighbours are shown")
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the runs already in results/NAME.json and add the missing (method, seed) ones",
    )
    args = parser.parse_args()
    args.precision = resolve_precision(args.precision, torch.device("cpu"))  # fp32 or bf16, as recorded and cached
    quiet_torch(args.threads)
    started = time.time()
    if not (args.data / "train.csv").is_file():
        sys.exit(f"no Banglish data at {args.data}; set RANKKIT_DATA")
    data = {
        "train": read_reviews(args.data / "train.csv"),
        "val": read_reviews(args.data / "val.csv"),
        "unlabeled": read_reviews(args.data / "unlabeled.csv", labelled=False),
    }
    notes = [data[s].summary() for s in data] + [
        "tfidf does not depend on the seed (TF-IDF, then lbfgs logistic regression with C chosen by 5-fold "
        "cross-validation on train): it is rerun per seed as a check, and its rows are identical",
        "train_cpu_s is the process's CPU time (all threads); wall times depend on the load recorded per row",
    ]
    previous = RESULTS_DIR / f"{args.name}.json"
    saved = json.loads(previous.read_text()) if args.append and previous.is_file() else {}
    rows: list[dict] = saved.get("rows", [])
    extra: dict = saved.get("extra_tables", {})
    commands = saved.get("meta", {}).get("params", {}).get("commands", []) + [command_line()]
    params = {
        "epochs": args.epochs,
        "model": args.model,
        "precision": args.precision,
        "embedding": args.embedding,
        "threads": args.threads,
        "defaults": "SentimentConfig defaults otherwise (batch 16, lr 5e-5, max length 128)",
        "commands": commands,
    }
    with tempfile.TemporaryDirectory(prefix="rankkit-sentiment-") as scratch:
        model = args.model
        if args.adapt_epochs:
            model, params["adapt"] = adapt(data, args)
        for seed in args.seeds:  # seeds outermost: a run cut short still has every method once
            for method in args.methods:
                if any(r["method"] == method and r["seed"] == seed for r in rows):
                    continue
                rows.append(
                    run_one(method, seed, args.epochs, data, Path(scratch), model, args.precision, args.embedding)
                )
                rows[-1]["load_average"] = [round(x, 2) for x in os.getloadavg()]
                rows[-1]["command"] = len(commands)  # its number in params.commands
                extra["Mean ± spread (sample std over seeds)"] = summarise(rows)
                save_result(
                    args.name,
                    rows,
                    title="Sentiment on Banglish Daraz reviews (val split)",
                    params=params,
                    notes=notes,
                    extra_tables=extra,
                    started=started,
                )
    if args.neighbours and not any(title.startswith("Mined") for title in extra):
        extra[f"Mined opposite-label neighbours (base model {args.embedding} embeddings, epoch 0)"] = neighbours(
            data, args.model, args.neighbours, 3, args.embedding
        )
    extra["Mean ± spread (sample std over seeds)"] = summarise(rows)
    save_result(
        args.name,
        rows,
        title="Sentiment on Banglish Daraz reviews (val split)",
        params=params,
        notes=notes,
        extra_tables=extra,
        started=started,
    )


if __name__ == "__main__":
    main()
