"""Training a tiny bi-encoder and cross-encoder on the bundled sample: the JSONL log, dev
evaluation, checkpoints with exact resume, gradient accumulation, --overwrite, curves, and saved
folders that load in sentence-transformers and transformers."""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_spread_model

from rankkit.data.corpus import read_doc_texts
from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit
from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.encode.dev_record import NO_RECORD, RECORD_FILE, DevRecord, describe_reranker
from rankkit.errors import RankkitError
from rankkit.mining import TopN, candidates_from_run, mine
from rankkit.train import DevSet, TrainConfig, train_biencoder, train_reranker
from rankkit.train.biencoder import BiEncoderTask
from rankkit.train.config import RerankerConfig
from rankkit.train.examples import Group, batches, epoch_groups
from rankkit.train.loop import CHECKPOINTS, LOG_FILE, _adamw, fit, warmup_linear_decay
from rankkit.train.losses import listwise_kl_loss, softmax_cross_entropy_loss
from rankkit.train.reranker import RerankerTask, teacher_scores

LR = 1e-4


# --- the sample as a MinedSet ----------------------------------------------------------------------


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.fixture(scope="module")
def sample(sample_dir):
    """(queries, qrels, doc_texts, run, MinedSet): every document ranked for every query by word
    overlap (a deterministic stand-in for BM25), the top 6 non-positives mined as negatives."""
    docs = read_doc_texts(sample_dir / "collection.tsv")
    queries = read_queries(sample_dir / "queries.tsv")
    qrels = read_qrels(sample_dir / "qrels.txt")
    run = {
        qid: sorted((Hit(d, float(len(_words(text) & _words(docs[d])))) for d in sorted(docs)), key=lambda h: -h.score)
        for qid, text in queries.items()
    }
    mined = mine(queries, qrels, candidates_from_run(run, "overlap"), [TopN(6)], doc_texts=docs)
    assert len(mined.queries) == len(queries) and all(q.negatives for q in mined.queries)
    return queries, qrels, docs, run, mined


@pytest.fixture(scope="module")
def dev(sample):
    queries, qrels, docs, run, _ = sample
    return DevSet(queries, qrels, {qid: hits[:10] for qid, hits in sorted(run.items())[:8]}, docs)


def config(tmp: Path, model: Path, **changes) -> TrainConfig:
    settings = dict(
        output=str(tmp),
        model=str(model),
        max_steps=4,
        batch_size=2,
        negatives=2,
        lr=LR,
        warmup_ratio=0.25,
        device="cpu",
        max_length=32,
    )
    return TrainConfig(**{**settings, **changes})


def log_of(output: str | Path) -> list[dict]:
    return [json.loads(line) for line in (Path(output) / LOG_FILE).read_text().splitlines()]


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name].float(), b[name].float(), atol=1e-6), name


def assert_same_log(a: list[dict], b: list[dict]) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        for key in ("loss", "lr", "grad_norm"):
            assert x[key] == pytest.approx(y[key], abs=1e-6), (x["step"], key)
        assert ("dev" in x) == ("dev" in y)


def fail_at_call(
    monkeypatch, task_class, call: int, error: type[BaseException], after_forward: bool = False
) -> list[int]:
    """Make task_class.loss raise `error` on its call-th call: before the forward pass, or after it
    (when the forward pass has already drawn its dropout masks from the RNG)."""
    calls = []
    original = task_class.loss

    def loss(self, batch):
        calls.append(len(batch))
        if len(calls) == call and not after_forward:
            raise error("simulated interruption")
        losses = original(self, batch)
        if len(calls) == call:
            raise error("simulated interruption")
        return losses

    monkeypatch.setattr(task_class, "loss", loss)
    return calls


# --- the schedule ----------------------------------------------------------------------------------


def test_warmup_linear_decay_values():
    schedule = warmup_linear_decay(10, 0.2)  # warm-up of int(10 * 0.2) = 2 steps
    # warm-up: (step + 1) / (warmup + 1) = 1/3, 2/3; then (10 - step) / (10 - 2)
    expected = [1 / 3, 2 / 3, 8 / 8, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0]
    assert [schedule(step) for step in range(11)] == pytest.approx(expected)
    assert schedule(15) == 0.0  # never negative past the end
    no_warmup = warmup_linear_decay(4, 0.0)
    assert [no_warmup(step) for step in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


# --- the loop with a small exact task --------------------------------------------------------------


class LinearTask:
    """A linear scorer over fixed document vectors (no dropout, so runs compare exactly)."""

    def __init__(self, vectors: dict[str, torch.Tensor]):
        torch.manual_seed(3)
        self.vectors = vectors
        self.module = torch.nn.Linear(4, 1, bias=False)
        self.parts, self.learning_rates, self.device = {"model": self.module}, {"model": 0.05}, torch.device("cpu")

    def loss(self, batch: list[Group]) -> dict[str, torch.Tensor]:
        rows = torch.stack([torch.stack([self.vectors[d] for d in (g.positive_id, *g.negative_ids)]) for g in batch])
        return {"model": softmax_cross_entropy_loss(self.module(rows).squeeze(-1))}

    def save(self, folder: Path) -> None:
        torch.save(self.module.state_dict(), folder / "linear.pt")


def _linear_groups() -> tuple[dict[str, torch.Tensor], list[Group]]:
    generator = torch.Generator().manual_seed(0)
    vectors = {f"d{i}": torch.randn(4, generator=generator) for i in range(40)}
    groups = [Group(f"q{i}", "", "", f"d{i}", ("", ""), (f"d{(i + 13) % 40}", f"d{(i + 27) % 40}")) for i in range(12)]
    return vectors, groups


def test_gradient_accumulation_equals_one_larger_batch(tmp_path):
    vectors, groups = _linear_groups()
    # 2 micro-batches of 2 groups per step == 1 batch of 4: equal-size means average to the big mean
    small = LinearTask(vectors)
    fit(
        small,
        lambda epoch: batches(groups, 2),
        TrainConfig(output=str(tmp_path / "a"), batch_size=2, grad_accum=2, max_steps=3, warmup_ratio=0.0),
    )
    big = LinearTask(vectors)
    fit(
        big,
        lambda epoch: batches(groups, 4),
        TrainConfig(output=str(tmp_path / "b"), batch_size=4, grad_accum=1, max_steps=3, warmup_ratio=0.0),
    )
    assert not torch.equal(small.module.weight, LinearTask(vectors).module.weight)  # it did train
    assert torch.allclose(small.module.weight, big.module.weight, atol=1e-6)
    assert_same_log(log_of(tmp_path / "a"), log_of(tmp_path / "b"))
    assert (tmp_path / "a" / "model" / "linear.pt").is_file()


def test_epochs_set_the_number_of_steps_and_wrap_around(tmp_path):
    vectors, groups = _linear_groups()
    seen: list[str] = []
    task = LinearTask(vectors)
    original = task.loss
    task.loss = lambda batch: (seen.extend(g.qid for g in batch), original(batch))[1]  # type: ignore[method-assign]
    # 12 groups in batches of 4 -> 3 micro-batches per epoch; 2 epochs with grad_accum 2 -> ceil(6 / 2) = 3 steps
    fit(task, lambda epoch: batches(groups, 4), TrainConfig(output=str(tmp_path), batch_size=4, grad_accum=2, epochs=2))
    assert [r["step"] for r in log_of(tmp_path)] == [1, 2, 3]
    assert seen == [g.qid for g in groups] * 2


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_right_after_an_optimizer_step_is_held_until_the_step_is_counted(tmp_path, monkeypatch, signum):
    # regression: an interrupt between the optimizer step and the step counter checkpointed weights
    # one step ahead of the count, and the resumed run applied that step twice
    vectors, groups = _linear_groups()
    cfg = dict(batch_size=2, max_steps=4, warmup_ratio=0.0)
    whole = LinearTask(vectors)
    fit(whole, lambda epoch: batches(groups, 2), TrainConfig(output=str(tmp_path / "whole"), **cfg))

    stopped, updates, original = LinearTask(vectors), [], torch.optim.AdamW.step

    def update_then_interrupt(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        updates.append(1)
        if len(updates) == 2:
            signal.raise_signal(signum)  # arrives just after step 2's update
        return result

    def exit_on_sigterm(signum, frame):  # what the rankkit CLI installs
        raise SystemExit(128 + signum)

    output = str(tmp_path / "stopped")
    with monkeypatch.context() as patch:
        patch.setattr(torch.optim.AdamW, "step", update_then_interrupt)
        previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
        # Python's own Ctrl-C handler, even where the test runner inherited SIGINT ignored (a
        # background job of a non-interactive shell)
        previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            with pytest.raises(RankkitError, match="interrupted at step 2"):
                fit(stopped, lambda epoch: batches(groups, 2), TrainConfig(output=output, **cfg))
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
    fit(stopped, lambda epoch: batches(groups, 2), TrainConfig(output=output, **cfg))
    assert torch.allclose(stopped.module.weight, whole.module.weight, atol=1e-6)
    assert [r["step"] for r in log_of(output)] == [1, 2, 3, 4]


def test_ctrl_c_during_dev_evaluation_resumes_with_every_step_logged(tmp_path):
    vectors, groups = _linear_groups()
    cfg = dict(batch_size=2, max_steps=4, eval_every=2, warmup_ratio=0.0)
    whole = LinearTask(vectors)
    fit(
        whole,
        lambda epoch: batches(groups, 2),
        TrainConfig(output=str(tmp_path / "whole"), **cfg),
        evaluate=lambda: {"score": float(whole.module.weight.detach().sum())},
    )

    stopped, evaluations = LinearTask(vectors), []

    def evaluate() -> dict[str, float]:
        evaluations.append(1)
        if len(evaluations) == 1:
            raise KeyboardInterrupt  # Ctrl-C while step 2's dev evaluation runs
        return {"score": float(stopped.module.weight.detach().sum())}

    output = str(tmp_path / "stopped")
    with pytest.raises(RankkitError, match="interrupted at step 2"):
        fit(stopped, lambda epoch: batches(groups, 2), TrainConfig(output=output, **cfg), evaluate=evaluate)
    fit(stopped, lambda epoch: batches(groups, 2), TrainConfig(output=output, **cfg), evaluate=evaluate)
    assert torch.allclose(stopped.module.weight, whole.module.weight, atol=1e-6)
    log, expected = log_of(output), log_of(tmp_path / "whole")
    assert [r["step"] for r in log] == [1, 2, 3, 4]  # step 2 was done, so it is logged (without its dev)
    assert "dev" not in log[1] and [r["step"] for r in log if "dev" in r] == [4]
    for got, want in zip(log, expected):
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-6) and got["lr"] == pytest.approx(want["lr"])


def test_fit_without_any_groups_is_a_user_error(tmp_path):
    vectors, _ = _linear_groups()
    with pytest.raises(RankkitError, match="no training groups"):
        fit(LinearTask(vectors), lambda epoch: [], TrainConfig(output=str(tmp_path)))


# --- the reranker ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spread_model(tmp_path_factory) -> Path:
    return make_spread_model(tmp_path_factory.mktemp("spread-model"))


@pytest.fixture(scope="module")
def trained_reranker(tmp_path_factory, spread_model, sample, dev):
    """A reranker trained 4 steps with dev evaluation every 2 steps and curves."""
    _, _, docs, _, mined = sample
    output = tmp_path_factory.mktemp("reranker")
    folder = train_reranker(mined, docs, config(output, spread_model, eval_every=2, plot=True), dev=dev)
    return output, folder


def test_reranker_writes_the_log_dev_measures_config_and_curves(trained_reranker, spread_model):
    output, folder = trained_reranker
    assert folder == output / "model" and (folder / "config.json").is_file()
    log = log_of(output)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    schedule = warmup_linear_decay(4, 0.25)
    for record in log:
        assert math.isfinite(record["loss"]) and record["loss"] > 0
        assert record["lr"] == pytest.approx(LR * schedule(record["step"] - 1))
        assert record["grad_norm"] > 0 and record["groups_per_s"] > 0
    # dev at the eval steps (2 and 4) only, with the DevSet's measures
    assert [r["step"] for r in log if "dev" in r] == [2, 4]
    for record in log:
        if "dev" in record:
            assert set(record["dev"]) == {"nDCG@10", "R@100"}
            assert all(0.0 <= v <= 1.0 for v in record["dev"].values())
    written = json.loads((output / "config.json").read_text())
    assert written["max_steps"] == 4 and written["model"] == str(spread_model) and written["eval_every"] == 2
    assert not (output / CHECKPOINTS).exists()  # deleted once training finished
    png = output / "training_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_reranker_changes_the_model(trained_reranker, spread_model):
    _, folder = trained_reranker
    before, after = CrossEncoder(spread_model, device="cpu"), CrossEncoder(folder, device="cpu")
    changed = [
        name
        for name, tensor in after.model.bert.state_dict().items()
        if not torch.equal(tensor, before.model.bert.state_dict()[name])
    ]
    assert changed  # the encoder weights moved, not just the new head


def test_saved_reranker_loads_in_sentence_transformers_and_transformers(trained_reranker, sample):
    from sentence_transformers import CrossEncoder as STCrossEncoder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, folder = trained_reranker
    queries, _, docs, run, _ = sample
    pairs = [(queries["q01"], docs[h.docid]) for h in run["q01"][:8]]
    ours = CrossEncoder(folder, device="cpu").score(pairs)
    theirs = STCrossEncoder(str(folder), device="cpu").predict(pairs)
    # regression: predict() applied a sigmoid, putting ST's scores on another scale than rankkit's
    np.testing.assert_allclose(np.asarray(theirs), ours, atol=1e-5)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        # the saved tokenizer carries the max length the reranker was trained with (config(): 32)
        assert tokenizer.model_max_length == 32
        inputs = tokenizer(
            [q for q, _ in pairs],
            [p for _, p in pairs],
            truncation="longest_first",
            max_length=tokenizer.model_max_length,
            padding=True,
            return_tensors="pt",
        )
        logits = model(**inputs).logits.squeeze(-1).numpy()
    assert np.allclose(logits, ours, atol=1e-4)
    assert np.diff(np.sort(ours)).min() > 1e-4  # a real ranking, not near-ties


def test_existing_trained_output_needs_overwrite(trained_reranker, spread_model, sample, tmp_path):
    output, _ = trained_reranker
    _, _, docs, _, mined = sample
    copy = tmp_path / "copy"
    shutil.copytree(output, copy)
    with pytest.raises(RankkitError, match="already holds a trained model.*--overwrite"):
        train_reranker(mined, docs, config(copy, spread_model, max_steps=1))
    assert len(log_of(copy)) == 4  # untouched
    train_reranker(mined, docs, config(copy, spread_model, max_steps=1, overwrite=True))
    assert [r["step"] for r in log_of(copy)] == [1]  # started afresh
    assert not (copy / "training_curves.png").exists()


def test_same_seed_gives_the_same_reranker(tmp_path, tiny_model, sample):
    """Regression: the new scoring head was initialised from the unseeded global RNG, so two runs
    of one config gave different models (and a resumed run could not match an uninterrupted one)."""
    _, _, docs, _, mined = sample
    torch.manual_seed(123)
    a = train_reranker(mined, docs, config(tmp_path / "a", tiny_model, max_steps=1))
    torch.manual_seed(456)
    b = train_reranker(mined, docs, config(tmp_path / "b", tiny_model, max_steps=1))
    assert_same_weights(weights(CrossEncoder(a, device="cpu").model), weights(CrossEncoder(b, device="cpu").model))
    assert_same_log(log_of(tmp_path / "a"), log_of(tmp_path / "b"))


def test_reranker_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, tiny_model, sample, monkeypatch):
    _, _, docs, _, mined = sample
    whole = train_reranker(mined, docs, config(tmp_path / "whole", tiny_model, checkpoint_every=1))
    expected_weights, expected_log = weights(CrossEncoder(whole, device="cpu").model), log_of(tmp_path / "whole")

    crashed = tmp_path / "crashed"
    with monkeypatch.context() as patch:
        fail_at_call(patch, RerankerTask, 3, RuntimeError)  # dies during step 3
        with pytest.raises(RuntimeError, match="simulated"):
            train_reranker(mined, docs, config(crashed, tiny_model, checkpoint_every=1))
    assert [p.name for p in (crashed / CHECKPOINTS).iterdir()] == ["step-2"]  # only the newest is kept
    assert not (crashed / "model").exists()
    assert [r["step"] for r in log_of(crashed)] == [1, 2]

    resumed = train_reranker(mined, docs, config(crashed, tiny_model, checkpoint_every=1))
    assert_same_weights(weights(CrossEncoder(resumed, device="cpu").model), expected_weights)
    assert_same_log(log_of(crashed), expected_log)
    assert not (crashed / CHECKPOINTS).exists()


def test_reranker_bce_and_gradient_accumulation(tmp_path, tiny_model, sample, monkeypatch):
    _, _, docs, _, mined = sample
    calls = fail_at_call(monkeypatch, RerankerTask, -1, RuntimeError)  # counts calls, never fails
    cfg = config(tmp_path, tiny_model, max_steps=3, grad_accum=2)
    train_reranker(mined, docs, cfg, RerankerConfig(loss="bce"))
    assert calls == [2] * 6  # 2 micro-batches of 2 groups per optimizer step
    log = log_of(tmp_path)
    assert [r["step"] for r in log] == [1, 2, 3]
    # a random head starts near sigmoid(0) = 1/2 for every pair: BCE near ln 2
    assert all(0.3 < r["loss"] < 1.2 for r in log)
    assert all(r["grad_norm"] > 0 for r in log)
    saved = CrossEncoder(tmp_path / "model", device="cpu")
    assert saved.model.config.num_labels == 1


def test_bce_and_softmax_losses_on_one_batch(tiny_model, sample):
    _, _, docs, _, mined = sample
    groups = epoch_groups(mined, docs, 2, 0, 0)[:2]
    torch.manual_seed(0)
    model = CrossEncoder(tiny_model, device="cpu", max_length=32)
    model.model.eval()
    scores = RerankerTask(model, RerankerConfig(), LR).scorer.group_scores(groups).detach()
    softmax = RerankerTask(model, RerankerConfig(loss="softmax"), LR).loss(groups)["labels"]
    pairwise = RerankerTask(model, RerankerConfig(loss="pairwise"), LR).loss(groups)["labels"].detach()
    bce = RerankerTask(model, RerankerConfig(loss="bce"), LR).loss(groups)["labels"].detach()
    assert float(softmax.detach()) == pytest.approx(float(-torch.log_softmax(scores, -1)[:, 0].mean()), abs=1e-5)
    # mean over the 2 x 2 (positive, negative) pairs of -log(e^p / (e^p + e^n))
    pairs = [float(torch.log1p(torch.exp(scores[g, n] - scores[g, 0]))) for g in range(2) for n in (1, 2)]
    assert float(pairwise) == pytest.approx(sum(pairs) / 4, abs=1e-5)
    labels = torch.tensor([[1.0, 0.0, 0.0]] * 2)
    assert float(bce) == pytest.approx(
        float(torch.nn.functional.binary_cross_entropy_with_logits(scores, labels)), abs=1e-5
    )
    with pytest.raises(RankkitError, match="unknown reranker loss"):
        RerankerTask(model, RerankerConfig(loss="hinge"), LR)  # type: ignore[arg-type]


def test_training_needs_every_docid_in_the_corpus(tmp_path, tiny_model, sample):
    _, _, docs, _, mined = sample
    partial = {d: t for d, t in docs.items() if d != mined.queries[0].negatives[0].docid}
    with pytest.raises(RankkitError, match="not in the corpus"):
        train_reranker(mined, partial, config(tmp_path, tiny_model))
    assert not (tmp_path / "model").exists()


def test_reranker_records_its_dev_figure_beside_the_first_stage(trained_reranker, dev):
    output, folder = trained_reranker
    record = DevRecord.read(folder)
    final = log_of(output)[-1]["dev"]["nDCG@10"]
    assert record == DevRecord(
        measure="nDCG@10",
        reranker=round(final, 4),
        first_stage=round(dev.first_stage()["nDCG@10"], 4),
        queries=8,
        candidates="the dev run",
    )
    assert describe_reranker(folder) == record.summary()
    assert f"{record.reranker:.4f}" in record.summary() and f"{record.first_stage:.4f}" in record.summary()


def test_first_stage_figure_is_the_runs_own_order(sample):
    queries, qrels, docs, _, _ = sample
    qid = next(iter(qrels))
    relevant = [d for d, g in qrels[qid].items() if g > 0]
    others = [d for d in sorted(docs) if d not in qrels[qid]][:5]
    judged = {qid: qrels[qid]}
    best_first = DevSet(queries, judged, {qid: [Hit(d, 0.0) for d in relevant + others]}, docs)
    best_last = DevSet(queries, judged, {qid: [Hit(d, 0.0) for d in others + relevant]}, docs)
    assert best_first.first_stage()["nDCG@10"] == pytest.approx(1.0)  # the hits' order, not their (tied) scores
    assert best_last.first_stage()["nDCG@10"] < 0.6


def test_a_reranker_worse_than_its_first_stage_ends_with_a_warning(tmp_path, spread_model, sample, capsys):
    """Bad on purpose: the dev run already ranks every relevant passage first, so the reranker
    can only tie or lose; training says so, and the record says NOT better."""
    queries, qrels, docs, _, mined = sample
    judged = {qid: qrels[qid] for qid in sorted(qrels)[:6]}
    perfect = {
        qid: [Hit(d, float(-rank)) for rank, d in enumerate(sorted(docs, key=lambda d: -grades.get(d, 0)))][:10]
        for qid, grades in judged.items()
    }
    dev = DevSet(queries, judged, perfect, docs, source="perfect.trec")
    folder = train_reranker(mined, docs, config(tmp_path, spread_model, max_steps=1), dev=dev)
    record = DevRecord.read(folder)
    assert record.first_stage == pytest.approx(1.0) and not record.improves
    err = capsys.readouterr().err
    assert "warning: the trained reranker ranks worse than what it reorders" in err
    assert "NOT better than" in err and "perfect.trec" in err and "Fix:" in err


def test_a_reranker_trained_without_dev_set_records_nothing_and_says_so(tmp_path, tiny_model, sample, capsys):
    _, _, docs, _, mined = sample
    folder = train_reranker(mined, docs, config(tmp_path, tiny_model, max_steps=1))
    assert DevRecord.read(folder) is None and describe_reranker(folder) == NO_RECORD
    assert "trained without a dev set" in capsys.readouterr().err


def test_damaged_dev_record_is_one_error_naming_it(tmp_path):
    (tmp_path / RECORD_FILE).write_text('{"measure": "nDCG@10"}')
    with pytest.raises(RankkitError, match=f"{RECORD_FILE}: damaged dev record.*Fix: delete it"):
        DevRecord.read(tmp_path)


def test_new_head_learns_at_its_own_rate(tiny_model):
    model = CrossEncoder(tiny_model, device="cpu")
    task = RerankerTask(model, RerankerConfig(head_lr=1e-2), LR)
    assert task.parameter_rates["model"] == {"classifier.weight": 1e-2, "classifier.bias": 1e-2}
    optimizer = _adamw(model.model, LR, 0.01, task.parameter_rates["model"])
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.model.named_parameters())
    assert rates[id(named["classifier.weight"])] == rates[id(named["classifier.bias"])] == 1e-2
    assert {rates[id(p)] for n, p in named.items() if not n.startswith("classifier")} == {LR}
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decay[id(named["classifier.weight"])] == 0.01 and decay[id(named["classifier.bias"])] == 0.0


def test_teacher_term_is_the_listwise_kl_to_the_teachers_scores(tmp_path, tiny_model, spread_model, sample):
    _, _, docs, _, mined = sample
    scores = teacher_scores(mined, docs, str(tiny_model), "cpu", "fp32")
    teacher = BiEncoder(tiny_model, device="cpu")
    query = mined.queries[0]
    for docid in (*query.positives, *(n.docid for n in query.negatives)):
        expected = 20.0 * float(teacher.encode([query.query], role="query")[0] @ teacher.encode([docs[docid]])[0])
        assert scores[query.qid, docid] == pytest.approx(expected, abs=1e-4)  # cosine x 20, open_teacher's scale
    model = CrossEncoder(spread_model, device="cpu")
    model.model.train(False)
    task = RerankerTask(model, RerankerConfig(teacher=str(tiny_model), teacher_weight=0.5), LR, scores)
    groups = epoch_groups(mined, docs, 2, seed=0, epoch=0)[:3]
    terms = task.loss(groups)
    assert set(terms) == {"labels", "teacher"}
    student = task.scorer.group_scores(groups).float()
    targets = torch.tensor([[scores[g.qid, d] for d in (g.positive_id, *g.negative_ids)] for g in groups])
    assert terms["teacher"].item() == pytest.approx(0.5 * listwise_kl_loss(student, targets).item(), rel=1e-5)
    assert terms["labels"].item() == pytest.approx(softmax_cross_entropy_loss(student).item(), rel=1e-5)


def test_reranker_trains_with_a_teacher_and_logs_both_terms(tmp_path, tiny_model, sample):
    _, _, docs, _, mined = sample
    train_reranker(mined, docs, config(tmp_path, tiny_model, max_steps=2), RerankerConfig(teacher=str(tiny_model)))
    for record in log_of(tmp_path):
        assert record["loss"] == pytest.approx(record["loss_labels"] + record["loss_teacher"])
        assert record["loss_teacher"] >= 0


def test_a_rerankers_teacher_may_be_a_run_that_scores_every_passage(tmp_path, sample):
    _, _, docs, _, mined = sample
    passages = {q.qid: [*q.positives, *(n.docid for n in q.negatives)] for q in mined.queries if q.negatives}
    run = tmp_path / "teacher.trec"
    run.write_text(
        "".join(
            f"{qid} Q0 {d} {rank} {10.0 - rank} t\n" for qid, found in passages.items() for rank, d in enumerate(found)
        )
    )
    scores = teacher_scores(mined, docs, str(run), "cpu", "fp32")
    assert scores == {(qid, d): 10.0 - rank for qid, found in passages.items() for rank, d in enumerate(found)}
    qid, found = next(iter(passages.items()))
    run.write_text(f"{qid} Q0 {found[0]} 1 3.0 t\n")  # scores one passage only
    with pytest.raises(RankkitError, match=f"teacher run teacher.trec has no score for document {found[1]!r}"):
        teacher_scores(mined, docs, str(run), "cpu", "fp32")


# --- the bi-encoder --------------------------------------------------------------------------------


def test_biencoder_trains_logs_and_loads_in_sentence_transformers(tmp_path, tiny_model, sample, dev):
    from sentence_transformers import SentenceTransformer

    queries, _, docs, _, mined = sample
    folder = train_biencoder(mined, docs, config(tmp_path, tiny_model, max_steps=3), temperature=0.1, dev=dev)
    log = log_of(tmp_path)
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 and "lr" in r for r in log)
    assert [r["step"] for r in log if "dev" in r] == [3]  # eval_every=0: at the end only
    # in-batch + mined: each query sees 2 positives + 2 * 2 negatives; a random model gives about log(6)
    assert log[0]["loss"] == pytest.approx(math.log(6), abs=0.6)

    texts = [queries["q01"], docs["s001"], docs["s010"], "a short text"]
    ours = BiEncoder(folder, device="cpu").encode(texts)
    theirs = SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_numpy=True)
    assert np.allclose(ours, theirs, atol=1e-5)
    assert np.allclose(np.linalg.norm(theirs, axis=1), 1.0, atol=1e-5)
    start = BiEncoder(tiny_model, device="cpu").encode(texts)
    assert not np.allclose(ours, start, atol=1e-6)  # training moved the embeddings
    # regression: rankkit wrote old-style module names and no config_sentence_transformers.json
    assert json.loads((folder / "config_sentence_transformers.json").read_text())["model_type"] == "SentenceTransformer"
    assert [m["type"] for m in json.loads((folder / "modules.json").read_text())] == [
        "sentence_transformers.base.modules.transformer.Transformer",
        "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
        "sentence_transformers.base.modules.normalize.Normalize",
    ]


def test_biencoder_losses_on_one_batch(tiny_model, sample):
    queries, _, docs, _, mined = sample
    groups = epoch_groups(mined, docs, 2, 0, 0)[:2]
    encoder = BiEncoder(tiny_model, device="cpu", max_length=32)
    encoder.model.eval()
    with torch.no_grad():
        q = encoder.embed([g.query for g in groups])
        d = encoder.embed([t for g in groups for t in (g.positive, *g.negatives)]).view(2, 3, -1)
        infonce = BiEncoderTask(encoder, 0.1, LR).loss(groups)["model"]
        pairwise = BiEncoderTask(encoder, 0.1, LR, "pairwise").loss(groups)["model"]
    # InfoNCE: each query against both positives and all 4 mined negatives, its own positive the label
    documents = torch.cat([d[:, 0], d[:, 1:].reshape(4, -1)])
    assert float(infonce) == pytest.approx(
        float(torch.nn.functional.cross_entropy(q @ documents.T / 0.1, torch.arange(2))), abs=1e-5
    )
    # pairwise: mean over (positive, own negative) pairs of softplus(s_neg - s_pos), s = cos / 0.1
    scores = (q.unsqueeze(1) * d).sum(-1) / 0.1
    assert float(pairwise) == pytest.approx(
        float(torch.nn.functional.softplus(scores[:, 1:] - scores[:, :1]).mean()), abs=1e-5
    )
    with pytest.raises(RankkitError, match="unknown bi-encoder loss"):
        BiEncoderTask(encoder, 0.1, LR, "triplet")  # type: ignore[arg-type]


def test_biencoder_resume_after_ctrl_c_matches_an_uninterrupted_run(tmp_path, tiny_model, sample, monkeypatch):
    _, _, docs, _, mined = sample
    cfg = dict(max_steps=3)  # no periodic checkpoints: the one Ctrl-C saves is all there is
    whole = train_biencoder(mined, docs, config(tmp_path / "whole", tiny_model, **cfg))
    expected = weights(BiEncoder(whole, device="cpu").model)

    stopped = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        fail_at_call(patch, BiEncoderTask, 3, KeyboardInterrupt, after_forward=True)  # Ctrl-C during step 3
        with pytest.raises(RankkitError, match="interrupted at step 2.*run the same command again"):
            train_biencoder(mined, docs, config(stopped, tiny_model, **cfg))
    assert (stopped / CHECKPOINTS / "step-2" / "state.pt").is_file()
    resumed = train_biencoder(mined, docs, config(stopped, tiny_model, **cfg))
    assert_same_weights(weights(BiEncoder(resumed, device="cpu").model), expected)
    assert_same_log(log_of(stopped), log_of(tmp_path / "whole"))


# --- training precision ----------------------------------------------------------------------------


def _recording_task(vectors: dict[str, torch.Tensor]) -> tuple[LinearTask, list[tuple[bool, torch.dtype]]]:
    """A LinearTask that records, per loss call, whether CPU autocast was on and its output's dtype."""
    task, seen = LinearTask(vectors), []
    original = task.loss

    def loss(batch):
        seen.append((torch.is_autocast_enabled("cpu"), task.module(torch.ones(4)).dtype))
        return original(batch)

    task.loss = loss  # type: ignore[method-assign]
    return task, seen


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_cpu_training_is_fp32_unless_bf16_is_asked_for(tmp_path, precision):
    vectors, groups = _linear_groups()
    task, seen = _recording_task(vectors)
    fit(task, lambda epoch: batches(groups, 4), TrainConfig(output=str(tmp_path), max_steps=2, precision=precision))
    assert seen == [(False, torch.float32)] * 2


@pytest.mark.usefixtures("native_bf16")
def test_bf16_training_runs_the_forward_pass_under_autocast_and_keeps_fp32_weights(tmp_path):
    vectors, groups = _linear_groups()
    task, seen = _recording_task(vectors)
    fit(
        task,
        lambda epoch: batches(groups, 4),
        TrainConfig(output=str(tmp_path / "bf16"), max_steps=3, warmup_ratio=0.0, precision="bf16"),
    )
    assert seen == [(True, torch.bfloat16)] * 3
    assert task.module.weight.dtype is torch.float32
    fp32 = LinearTask(vectors)
    fit(
        fp32,
        lambda epoch: batches(groups, 4),
        TrainConfig(output=str(tmp_path / "fp32"), max_steps=3, warmup_ratio=0.0, precision="fp32"),
    )
    assert not torch.equal(task.module.weight, LinearTask(vectors).module.weight)  # it did train
    # the same steps up to bfloat16 rounding (8 bits of mantissa: about 0.4% relative)
    assert torch.allclose(task.module.weight, fp32.module.weight, rtol=0.02, atol=2e-3)
    losses = [(a["loss"], b["loss"]) for a, b in zip(log_of(tmp_path / "bf16"), log_of(tmp_path / "fp32"))]
    assert all(a == pytest.approx(b, rel=0.02) for a, b in losses) and any(a != b for a, b in losses)


def test_bf16_training_refused_where_it_would_be_emulated(tmp_path, monkeypatch):
    from rankkit.encode import precision as precision_module

    monkeypatch.setattr(precision_module, "bf16_supported", lambda device: False)
    vectors, groups = _linear_groups()
    with pytest.raises(
        RankkitError,
        match=r"--precision bf16: cpu has no native bfloat16.*Fix: use "
        r"--precision auto or fp32",
    ):
        fit(
            LinearTask(vectors),
            lambda epoch: batches(groups, 4),
            TrainConfig(output=str(tmp_path), max_steps=1, precision="bf16"),
        )
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("native, autocast", [(True, torch.bfloat16), (False, None)])
def test_auto_training_precision_is_bf16_autocast_where_native(monkeypatch, native, autocast):
    from rankkit.encode import precision as precision_module

    monkeypatch.setattr(precision_module, "bf16_supported", lambda device: native)
    assert precision_module.training_autocast_dtype("auto", torch.device("cpu")) is autocast


def test_unknown_training_precision_names_the_choices(tmp_path):
    vectors, groups = _linear_groups()
    with pytest.raises(RankkitError, match=r"unknown precision 'fp16'. Fix: use one of auto, fp32, bf16"):
        fit(
            LinearTask(vectors),
            lambda epoch: batches(groups, 4),
            TrainConfig(output=str(tmp_path), max_steps=1, precision="fp16"),
        )
