"""`rankkit train biencoder|reranker|cet`: fine-tune on a MinedSet.

Each trainer is its own sub-command showing only its own options; what they share (inputs,
output, schedule, checkpoints, dev evaluation) is one options set, TrainInputs, that
`train_command` adds to each of them."""

import functools
import inspect
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from rankkit.cli.errors import friendly_errors
from rankkit.cli.options import (AT_LEAST_0, AT_LEAST_1, DATA_HELP, POSITIVE, TRAIN_PRECISION_HELP, TrainPrecision,
                                 collection_files, number_check, required_files)
from rankkit.errors import RankkitError

app = typer.Typer(help="Fine-tune a ranker on a MinedSet: one sub-command per trainer.", no_args_is_help=True)


class BiEncoderLoss(str, Enum):
    infonce = "infonce"
    pairwise = "pairwise"


class RerankerLoss(str, Enum):
    softmax = "softmax"
    bce = "bce"


class Relevance(str, Enum):
    cross_encoder = "cross-encoder"
    bi_encoder = "bi-encoder"


class Selection(str, Enum):
    provenance = "provenance"
    cross_encoder = "cross-encoder"


@dataclass(frozen=True)
class TrainInputs:
    """The options every trainer shares: what to train on, where to write, the schedule."""

    mined: Path
    corpus: Optional[str]
    data: Optional[Path]
    output: Path
    model: str
    epochs: int
    max_steps: Optional[int]
    batch_size: int
    grad_accum: int
    negatives: int
    lr: float
    warmup_ratio: float
    max_grad_norm: float
    seed: int
    checkpoint_every: int
    eval_every: int
    dev_queries: Optional[str]
    dev_qrels: Optional[str]
    dev_run: Optional[str]
    dev_split: Optional[str]
    plot: bool
    device: Optional[str]
    train_precision: TrainPrecision
    overwrite: bool

    def config(self):
        from rankkit.train import TrainConfig

        return TrainConfig(output=str(self.output), model=self.model, epochs=self.epochs, max_steps=self.max_steps,
                           batch_size=self.batch_size, grad_accum=self.grad_accum, negatives=self.negatives,
                           lr=self.lr, warmup_ratio=self.warmup_ratio, max_grad_norm=self.max_grad_norm,
                           seed=self.seed, checkpoint_every=self.checkpoint_every, eval_every=self.eval_every,
                           device=self.device, precision=self.train_precision.value, plot=self.plot,
                           overwrite=self.overwrite)

    def load(self) -> tuple[Any, dict[str, str], Any]:
        """The MinedSet, the texts of every document it (and the dev run) names, the dev set or None."""
        from rankkit.data.corpus import read_doc_texts
        from rankkit.data.qrels import read_qrels
        from rankkit.data.queries import read_queries
        from rankkit.data.runs import read_run
        from rankkit.mining.minedset import MinedSet
        from rankkit.train import DevSet

        from rankkit.data.collection import corpus_file

        paths = collection_files(self.data, self.dev_split, "--dev-split") if self.dev_split else None
        corpus = required_files(corpus=self.corpus or (corpus_file(self.data) if self.data else None))["corpus"]
        dev_queries = self.dev_queries or (paths and paths.queries)
        dev_qrels = self.dev_qrels or (paths and paths.qrels)
        mined_set = MinedSet.read(self.mined)
        dev_given = [dev_queries, dev_qrels, self.dev_run]
        if any(dev_given) and not all(dev_given):
            raise RankkitError("dev evaluation needs --dev-queries, --dev-qrels (or --data with --dev-split) and "
                               "--dev-run together. Fix: pass all of them, or none")
        dev_candidates = read_run(self.dev_run) if self.dev_run else {}
        needed = ({d for q in mined_set.queries for d in (*q.positives, *(n.docid for n in q.negatives))}
                  | {h.docid for hits in dev_candidates.values() for h in hits})
        doc_texts = read_doc_texts(corpus, docids=needed)
        if not self.dev_run:
            return mined_set, doc_texts, None
        dev_qrels_read = read_qrels(dev_qrels)
        check_dev_apart(mined_set, dev_qrels_read, dev_qrels)
        return mined_set, doc_texts, DevSet(read_queries(dev_queries), dev_qrels_read, dev_candidates, doc_texts)


def check_dev_apart(mined_set: Any, dev_qrels: Any, where: str) -> None:
    """Warn when dev evaluation would read queries the model is trained on."""
    from rankkit.cli.errors import stderr

    shared = sorted({q.qid for q in mined_set.queries} & set(dev_qrels))
    if shared:
        stderr.print(f"[yellow]warning:[/] {len(shared)} dev queries of {where} are also training queries of the "
                     f"MinedSet (e.g. {', '.join(shared[:3])}): their dev figures read training data. Fix: mine "
                     "with the train split's qrels only (rankkit mine --data DIR --split train), or pass dev qrels "
                     "that hold other queries", highlight=False, soft_wrap=True)


_COMMON_OPTIONS: dict[str, Any] = {
    "mined": typer.Option(..., help="MinedSet written by `rankkit mine`."),
    "corpus": typer.Option(None, help="Corpus the MinedSet was mined from (passage texts); default: --data's."),
    "data": typer.Option(None, help=DATA_HELP),
    "output": typer.Option(..., "--output", "-o", help="Folder: model/, train_log.jsonl, config.json."),
    "model": typer.Option("default", help="Starting checkpoint (any encoder; rerankers get a new head)."),
    "epochs": typer.Option(1, callback=AT_LEAST_1, help="Passes over the MinedSet (unless --max-steps)."),
    "max_steps": typer.Option(None, callback=AT_LEAST_1, help="Stop after this many optimizer steps."),
    "batch_size": typer.Option(8, callback=AT_LEAST_1, help="Queries per micro-batch (of all processes "
                                                                  "together under torchrun)."),
    "grad_accum": typer.Option(1, callback=AT_LEAST_1, help="Micro-batches per optimizer step."),
    "negatives": typer.Option(4, callback=AT_LEAST_1, help="Mined negatives per query."),
    "lr": typer.Option(2e-5, callback=POSITIVE, help="Peak learning rate."),
    "warmup_ratio": typer.Option(0.1, callback=number_check(0, 1, high_open=True),
                                 help="Share of steps warming up, then linear decay."),
    "max_grad_norm": typer.Option(1.0, callback=POSITIVE, help="Gradient clipping."),
    "seed": typer.Option(0, help="Seed for every random choice."),
    "checkpoint_every": typer.Option(0, callback=AT_LEAST_0, help="Steps between checkpoints (resume by "
                                                                  "rerunning the same command)."),
    "eval_every": typer.Option(0, callback=AT_LEAST_0, help="Steps between dev evaluations (needs --dev-*)."),
    "dev_queries": typer.Option(None, help="Dev queries file."),
    "dev_qrels": typer.Option(None, help="Dev qrels."),
    "dev_run": typer.Option(None, help="Dev candidates to rerank (TREC run, e.g. BM25 top-100)."),
    "dev_split": typer.Option(None, help="BEIR folder (--data): the split whose queries and qrels are the dev "
                                         "set, e.g. dev (instead of --dev-queries and --dev-qrels)."),
    "plot": typer.Option(False, help="Write training_curves.png."),
    "device": typer.Option(None, help="auto (default), cpu or cuda."),
    "train_precision": typer.Option(TrainPrecision.auto, help=TRAIN_PRECISION_HELP),
    "overwrite": typer.Option(False, help="Start afresh: train in a temporary folder that replaces --output (only "
                                          "a folder rankkit trained into) once training completes."),
}
_COMMON_PARAMETERS = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_COMMON_OPTIONS[f.name],
                                        annotation=f.type) for f in fields(TrainInputs)]


def train_command(command: Callable[..., None]) -> Callable[..., None]:
    """Give `command(inputs: TrainInputs, **own_options)` the shared options on the command line:
    Typer sees them followed by the command's own; they reach it gathered in one TrainInputs."""
    own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]
    names = [p.name for p in _COMMON_PARAMETERS]

    @functools.wraps(command)
    def wrapper(**options: Any) -> None:
        return command(TrainInputs(**{name: options.pop(name) for name in names}), **options)

    parameters = [*_COMMON_PARAMETERS, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own)]
    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    del wrapper.__wrapped__  # Typer must read the signature above, not the command's
    return wrapper


@app.command()
@friendly_errors
@train_command
def biencoder(
    inputs: TrainInputs,
    loss: BiEncoderLoss = typer.Option(BiEncoderLoss.infonce, help="infonce (in-batch and mined negatives) or "
                                                                   "pairwise (CET's loss without its weights)."),
    temperature: float = typer.Option(0.05, callback=POSITIVE, help="Score temperature (scores = cosine / T)."),
) -> None:
    """Fine-tune a bi-encoder (sentence-transformers model) on mined negatives."""
    from rankkit.train import train_biencoder

    mined_set, doc_texts, dev = inputs.load()
    folder = train_biencoder(mined_set, doc_texts, inputs.config(), temperature=temperature, dev=dev,
                             loss=loss.value)  # type: ignore[arg-type]
    print(f"saved the trained biencoder to {folder}")


@app.command()
@friendly_errors
@train_command
def reranker(
    inputs: TrainInputs,
    loss: RerankerLoss = typer.Option(RerankerLoss.softmax, help="softmax (listwise; pairwise with one negative) "
                                                                 "or bce (pointwise)."),
) -> None:
    """Fine-tune a cross-encoder reranker on mined negatives (a new scoring head when the model has none)."""
    from rankkit.train import train_reranker

    mined_set, doc_texts, dev = inputs.load()
    folder = train_reranker(mined_set, doc_texts, inputs.config(), loss=loss.value, dev=dev)  # type: ignore[arg-type]
    print(f"saved the trained reranker to {folder}")


@app.command()
@friendly_errors
@train_command
def cet(
    inputs: TrainInputs,
    relevance: Relevance = typer.Option(Relevance.cross_encoder, help="Relevance model (the ranker you keep)."),
    selection: Selection = typer.Option(Selection.provenance, help="Selection model: provenance (a small MLP "
                                                                   "over the pooling provenance) or cross-encoder."),
    debias_ratio: float = typer.Option(2.0, callback=POSITIVE, help="T in the pair weight 1 / (1 - sigmoid(s_neg / T))."),
    selection_model: Optional[str] = typer.Option(None, help="Cross-encoder selection model's start."),
    selection_lr: Optional[float] = typer.Option(None, callback=POSITIVE, help="Selection model learning rate."),
    temperature: float = typer.Option(0.05, callback=POSITIVE, help="Bi-encoder relevance: score temperature."),
) -> None:
    """Train a relevance and a selection model together (CET), correcting pooling bias."""
    from rankkit.train.cet import CETConfig, train_cet

    mined_set, doc_texts, dev = inputs.load()
    config = CETConfig(relevance=relevance.value, selection=selection.value,  # type: ignore[arg-type]
                       temperature=debias_ratio, selection_model=selection_model, selection_lr=selection_lr,
                       bi_temperature=temperature)
    folder = train_cet(mined_set, doc_texts, inputs.config(), config, dev=dev)
    print(f"saved the trained cet to {folder}")
