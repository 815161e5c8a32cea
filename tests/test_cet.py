"""CET: the coupled losses on fixed scores (by hand), detached weights, recovery of planted false
negatives on a synthetic pooled collection, train_cet on the sample with the tiny model, the
suspects report, the missing-provenance error, and the CLI."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.data.corpus import read_doc_texts
from rankkit.data.qrels import read_qrels, write_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.errors import RankkitError
from rankkit.mining import Candidate, MinedQuery, MinedSet, TopN, candidates_from_run, mine
from rankkit.train import TrainConfig
from rankkit.train.cet import CET_FILE, CETConfig, CETTask, false_negative_probability, train_cet
from rankkit.train.examples import Group, batches, epoch_groups
from rankkit.train.loop import LOG_FILE, fit
from rankkit.train.scorers import BiEncoderScorer, CrossEncoderScorer
from rankkit.train.selection import ProvenanceFeatures, ProvenanceScorer
from rankkit.train.suspects import load_cet_models, score_suspects, suspect_precision, write_suspects

e = math.e


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# --- CETTask on fixed scores -----------------------------------------------------------------------


class FixedScorer:
    """Scores every batch with one fixed [B, 1 + n] parameter."""

    kind = "fixed"

    def __init__(self, scores: list[list[float]]):
        self.module = torch.nn.Module()
        self.module.scores = torch.nn.Parameter(torch.tensor(scores))
        self.device = torch.device("cpu")

    def group_scores(self, batch: list[Group]) -> torch.Tensor:
        return self.module.scores

    def score_documents(self, qid, queries, docids, passages) -> np.ndarray:
        return np.zeros(len(docids), dtype=np.float32)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.module.state_dict(), folder / "fixed.pt")


RELEVANCE = [[1.0, 0.0, 2.0]]  # positive 1; negatives 0 and 2
SELECTION = [[0.0, 2.0, -2.0]]  # positive 0; negatives 2 and -2


def test_cet_task_losses_by_hand():
    task = CETTask(FixedScorer(RELEVANCE), FixedScorer(SELECTION), debias_ratio=2.0, relevance_lr=0.1, selection_lr=0.2)
    losses = {name: loss.detach() for name, loss in task.loss([]).items()}
    # relevance pairs weighted by the selection model's negatives: w = 1 + exp(s / 2) = [1 + e, 1 + 1/e]
    #   softplus(0 - 1) = ln(1 + 1/e), softplus(2 - 1) = ln(1 + e)
    relevance = ((1 + e) * softplus(-1) + (1 + 1 / e) * softplus(1)) / 2
    # selection pairs weighted by the relevance model's negatives: w = 1 + exp(r / 2) = [2, 1 + e]
    #   softplus(2 - 0) = ln(1 + e^2), softplus(-2 - 0) = ln(1 + e^-2)
    selection = (2 * softplus(2) + (1 + e) * softplus(-2)) / 2
    assert float(losses["relevance"]) == pytest.approx(relevance, abs=1e-6)
    assert float(losses["selection"]) == pytest.approx(selection, abs=1e-6)
    assert task.learning_rates == {"relevance": 0.1, "selection": 0.2}
    assert set(task.parts) == {"relevance", "selection"}


def test_each_cet_part_gets_no_gradient_from_the_other_parts_loss():
    relevance, selection = FixedScorer(RELEVANCE), FixedScorer(SELECTION)
    task = CETTask(relevance, selection, debias_ratio=2.0, relevance_lr=0.1, selection_lr=0.1)
    task.loss([])["relevance"].backward()
    assert selection.module.scores.grad is None  # the weights it took from selection are detached
    # d/dn_j of mean_j(w_j softplus(n_j - p)) = w_j sigmoid(n_j - p) / 2
    w = torch.tensor([1 + e, 1 + 1 / e])
    negative_grad = w * torch.sigmoid(torch.tensor([-1.0, 1.0])) / 2
    expected = torch.cat([-negative_grad.sum().view(1), negative_grad])
    assert torch.allclose(relevance.module.scores.grad[0], expected, atol=1e-6)

    relevance.module.scores.grad = None
    task.loss([])["selection"].backward()
    assert relevance.module.scores.grad is None

    # summed (as the loop does), each part's gradient is that of its own loss alone
    total = sum(task.loss([]).values())
    total.backward()
    assert torch.allclose(relevance.module.scores.grad[0], expected, atol=1e-6)


def test_cet_with_huge_temperature_is_plain_pairwise_training_times_two():
    from rankkit.train.losses import weighted_pairwise_softmax_loss

    relevance = [[1.0, 0.0, 2.0], [-1.0, 3.0, 0.5]]
    selection = [[0.0, 2.0, -2.0], [4.0, -3.0, 9.0]]
    losses = {
        name: loss.detach()
        for name, loss in CETTask(FixedScorer(relevance), FixedScorer(selection), 1e9, 0.1, 0.1).loss([]).items()
    }
    r, s = torch.tensor(relevance), torch.tensor(selection)
    assert float(losses["relevance"]) == pytest.approx(
        2 * float(weighted_pairwise_softmax_loss(r[:, 0], r[:, 1:])), rel=1e-6
    )
    assert float(losses["selection"]) == pytest.approx(
        2 * float(weighted_pairwise_softmax_loss(s[:, 0], s[:, 1:])), rel=1e-6
    )


def test_cet_temperature_must_be_positive():
    with pytest.raises(RankkitError, match="debias ratio.*Fix: pass e.g. --debias-ratio 2"):
        CETTask(FixedScorer(RELEVANCE), FixedScorer(SELECTION), 0.0, 0.1, 0.1)


def test_false_negative_probability_by_hand():
    # p_r = sigmoid(0) = 1/2, p_s = sigmoid(0) = 1/2: (1/2 * 1/2) / (1 - 1/4) = 1/3
    # p_r = sigmoid(2 ln 3 / 2) = 3/4, p_s = sigmoid(-2 ln 3 / 2) = 1/4: (3/4 * 3/4) / (1 - 3/16) = 9/13
    ln3 = math.log(3)
    got = false_negative_probability(np.array([0.0, 2 * ln3]), np.array([0.0, -2 * ln3]), 2.0)
    assert got == pytest.approx([1 / 3, 9 / 13])


# --- planted false negatives -----------------------------------------------------------------------


class LinearScorer:
    """A relevance model: a linear function of each document's (synthetic) feature vector."""

    kind = "linear"

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors
        self.module = torch.nn.Linear(len(next(iter(vectors.values()))), 1, bias=False)
        self.device = torch.device("cpu")

    def _score(self, docids) -> torch.Tensor:
        return self.module(torch.from_numpy(np.array([self.vectors[d] for d in docids]))).squeeze(-1)

    def group_scores(self, batch: list[Group]) -> torch.Tensor:
        return torch.stack([self._score((g.positive_id, *g.negative_ids)) for g in batch])

    def score_documents(self, qid, queries, docids, passages) -> np.ndarray:
        with torch.no_grad():
            return self._score(docids).numpy()

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.module.state_dict(), folder / "linear.pt")


def planted_collection(queries: int = 60, docs: int = 30, relevant: int = 5, pool: int = 10, seed: int = 0):
    """Per query, `docs` documents of which `relevant` are relevant. Relevance shows in feature 0 of
    a document's vector; a noisy pooling retriever ranks the documents, and only relevant documents
    in its top `pool` are judged. Relevant documents deeper than the pool are unlabeled, so mining
    every unjudged document puts them among the negatives: planted false negatives."""
    rng = np.random.default_rng(seed)
    vectors, truth, qrels, candidates = {}, {}, {}, {}
    for q in range(queries):
        qid = f"q{q:02d}"
        docids = [f"{qid}-d{j:02d}" for j in range(docs)]
        is_relevant = np.zeros(docs, dtype=bool)
        is_relevant[rng.choice(docs, size=relevant, replace=False)] = True
        retrieval = 1.0 * is_relevant + rng.normal(size=docs)  # the pooling retriever: noisy
        order = np.argsort(-retrieval)
        for docid, rel in zip(docids, is_relevant):
            vector = rng.normal(size=6).astype(np.float32)
            vector[0] += 2.0 * rel
            vectors[docid], truth[qid, docid] = vector, bool(rel)
        candidates[qid] = [
            Candidate(docids[i], "pool", rank, float(retrieval[i])) for rank, i in enumerate(order, start=1)
        ]
        qrels[qid] = {docids[i]: 1 for i in order[:pool] if is_relevant[i]}
    queries_text = {f"q{q:02d}": f"query {q}" for q in range(queries)}
    mined = mine(queries_text, qrels, candidates, [])
    return mined, vectors, truth


def test_cet_finds_planted_false_negatives(tmp_path):
    mined, vectors, truth = planted_collection()
    negatives = [(q.qid, c.docid) for q in mined.queries for c in q.negatives]
    planted = [key for key in negatives if truth[key]]
    base_rate = len(planted) / len(negatives)
    assert 30 <= len(planted) and base_rate < 0.15  # a minority of the negatives, as pooling bias gives
    assert all(c.rank > 10 for q in mined.queries for c in q.negatives if truth[q.qid, c.docid])

    torch.manual_seed(0)
    relevance = LinearScorer(vectors)
    selection = ProvenanceScorer(ProvenanceFeatures(mined))
    task = CETTask(relevance, selection, debias_ratio=2.0, relevance_lr=0.05, selection_lr=0.01)
    doc_texts = {d: d for d in vectors}
    config = TrainConfig(
        output=str(tmp_path), max_steps=150, batch_size=8, negatives=4, warmup_ratio=0.05, weight_decay=0.0
    )
    folder = fit(task, lambda epoch: batches(epoch_groups(mined, doc_texts, 4, 0, epoch), 8), config)

    log = [json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert len(log) == 150
    assert {"loss_relevance", "loss_selection", "grad_norm_relevance", "grad_norm_selection"} <= set(log[0])
    first, last = np.mean([r["loss"] for r in log[:10]]), np.mean([r["loss"] for r in log[-10:]])
    assert last < first
    assert (folder / "relevance" / "linear.pt").is_file() and (folder / "selection" / "selection.pt").is_file()
    assert json.loads((folder / CET_FILE).read_text())["debias_ratio"] == 2.0

    # the relevance model learned the relevance feature; the selection model learned the pool depth
    weight = relevance.module.weight.detach()[0]
    assert weight[0] > 0 and weight[0] > 2 * weight[1:].abs().max()
    sel_pool, sel_deep = [], []
    for q in mined.queries:
        ranks = np.array([c.rank for c in q.negatives])
        scores = selection.score_documents(q.qid, [], [c.docid for c in q.negatives], [])
        sel_pool += list(scores[ranks <= 10])
        sel_deep += list(scores[ranks > 10])
    assert np.mean(sel_pool) > np.mean(sel_deep)

    suspects = score_suspects(mined, doc_texts, relevance, selection, 2.0)
    assert len(suspects) == len(negatives)
    assert [s.probability for s in suspects] == sorted((s.probability for s in suspects), reverse=True)
    top = suspects[: len(planted)]
    precision = sum(truth[s.qid, s.docid] for s in top) / len(top)
    print(f"planted {len(planted)} of {len(negatives)} negatives; top-{len(planted)} precision {precision:.3f}")
    assert precision >= 3 * base_rate, (precision, base_rate)
    # the same through the qrels-based report
    full = {qid: {d: 1 for (q, d), rel in truth.items() if q == qid and rel} for qid in {q for q, _ in truth}}
    assert suspect_precision(top, full) == pytest.approx(precision)

    # the saved selection model scores as the trained one did
    loaded = ProvenanceScorer.load(folder / "selection", mined)
    q = mined.queries[0]
    docids = [c.docid for c in q.negatives]
    assert np.allclose(
        loaded.score_documents(q.qid, [], docids, []), selection.score_documents(q.qid, [], docids, []), atol=1e-6
    )


def test_suspects_skip_queries_without_negatives():
    """Regression: a MinedSet query with no negatives (the file format allows it; training skips
    such queries) made score_suspects crash inside the provenance scorer on an empty batch."""
    mined, vectors, truth = planted_collection(queries=4)
    doc_texts = {d: d for d in vectors}
    torch.manual_seed(0)
    relevance, selection = LinearScorer(vectors), ProvenanceScorer(ProvenanceFeatures(mined))
    expected = score_suspects(mined, doc_texts, relevance, selection, 2.0)
    q = mined.queries[0]
    mined.queries.append(MinedQuery("q-empty", "no negatives", q.positives, [], {}))
    assert score_suspects(mined, doc_texts, relevance, selection, 2.0) == expected


# --- train_cet on the sample with the tiny model ---------------------------------------------------


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.fixture(scope="module")
def shallow(sample_dir, tmp_path_factory):
    """The sample mined against shallow judgments (only each query's top-graded documents), so the
    other relevant documents are hidden among the negatives; the full qrels reveal them."""
    docs = read_doc_texts(sample_dir / "collection.tsv")
    queries = read_queries(sample_dir / "queries.tsv")
    full = read_qrels(sample_dir / "qrels.txt")
    judged = {qid: {d: g for d, g in grades.items() if g == max(grades.values())} for qid, grades in full.items()}
    run = {
        qid: sorted((Hit(d, float(len(_words(text) & _words(docs[d])))) for d in sorted(docs)), key=lambda h: -h.score)
        for qid, text in queries.items()
    }
    mined = mine(queries, judged, candidates_from_run(run, "overlap"), [TopN(6)], doc_texts=docs)
    folder = tmp_path_factory.mktemp("shallow")
    mined.write(folder / "mined.jsonl")
    write_qrels(judged, folder / "shallow_qrels.txt")
    hidden = sum(full[q.qid].get(c.docid, 0) >= 1 for q in mined.queries for c in q.negatives)
    assert hidden > 0  # relevant documents planted among the negatives
    return mined, docs, queries, full, folder


def tiny_config(output: Path, model: Path, **changes) -> TrainConfig:
    return TrainConfig(
        **{
            **dict(
                output=str(output),
                model=str(model),
                max_steps=2,
                batch_size=2,
                negatives=2,
                lr=1e-4,
                device="cpu",
                max_length=32,
            ),
            **changes,
        }
    )


def check_report(suspects, mined, temperature, relevance, selection, docs):
    assert len(suspects) == sum(len(q.negatives) for q in mined.queries)
    probabilities = [s.probability for s in suspects]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 < p < 1.0 for p in probabilities)
    q = mined.queries[0]
    docids = [c.docid for c in q.negatives]
    texts = [docs[d] for d in docids]
    rel = relevance.score_documents(q.qid, [q.query] * len(docids), docids, texts)
    sel = selection.score_documents(q.qid, [q.query] * len(docids), docids, texts)
    expected = dict(zip(docids, false_negative_probability(rel, sel, temperature)))
    got = {s.docid: s.probability for s in suspects if s.qid == q.qid}
    assert got == pytest.approx(expected, abs=1e-5)


def test_train_cet_cross_encoder_relevance_with_provenance_selection(tmp_path, tiny_model, shallow):
    mined, docs, queries, full, _ = shallow
    folder = train_cet(mined, docs, tiny_config(tmp_path, tiny_model), CETConfig(debias_ratio=3.0))
    log = [json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    for record in log:
        assert record["loss"] == pytest.approx(record["loss_relevance"] + record["loss_selection"])
        assert record["grad_norm_relevance"] > 0 and record["grad_norm_selection"] > 0
    # the relevance model's (the first part's) learning rate: no warm-up in 2 steps, then decay (2 - 1) / 2
    assert [r["lr"] for r in log] == pytest.approx([1e-4, 5e-5])
    assert json.loads((folder / CET_FILE).read_text()) == {
        "relevance": "cross-encoder",
        "selection": "provenance",
        "debias_ratio": 3.0,
        "temperature": None,
    }
    assert (folder / "relevance" / "config.json").is_file() and (folder / "selection" / "provenance.json").is_file()

    relevance, selection, temperature = load_cet_models(folder, mined, device="cpu")
    assert isinstance(relevance, CrossEncoderScorer) and isinstance(selection, ProvenanceScorer)
    assert temperature == 3.0
    suspects = score_suspects(mined, docs, relevance, selection, temperature)
    check_report(suspects, mined, temperature, relevance, selection, docs)

    tsv = tmp_path / "suspects.tsv"
    write_suspects(suspects[:10], tsv, queries, docs, full)
    with open(tsv, newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0] == [
        "qid",
        "query",
        "docid",
        "passage",
        "fn_probability",
        "relevance_score",
        "selection_score",
        "source",
        "rank",
        "full_qrels_grade",
    ]
    assert len(rows) == 11 and all(len(row) == 10 for row in rows)
    for row, s in zip(rows[1:], suspects):
        assert row[0] == s.qid and row[2] == s.docid and row[1] == queries[s.qid]
        assert float(row[4]) == pytest.approx(s.probability, abs=1e-4) and row[7] == "overlap"
        assert row[9] == str(full[s.qid].get(s.docid, ""))
    write_suspects(suspects[:3], tmp_path / "plain.tsv", queries, docs)
    assert "full_qrels_grade" not in (tmp_path / "plain.tsv").read_text().splitlines()[0]


def test_train_cet_bi_encoder_relevance_with_cross_encoder_selection(tmp_path, tiny_model, shallow):
    mined, docs, _, _, _ = shallow
    folder = train_cet(
        mined,
        docs,
        tiny_config(tmp_path, tiny_model),
        CETConfig(relevance="bi-encoder", selection="cross-encoder", temperature=0.1),
    )
    meta = json.loads((folder / CET_FILE).read_text())
    assert meta == {"relevance": "bi-encoder", "selection": "cross-encoder", "debias_ratio": 2.0, "temperature": 0.1}
    relevance, selection, temperature = load_cet_models(folder, mined, device="cpu")
    assert isinstance(relevance, BiEncoderScorer) and relevance.temperature == 0.1
    assert isinstance(selection, CrossEncoderScorer)
    check_report(
        score_suspects(mined, docs, relevance, selection, temperature), mined, temperature, relevance, selection, docs
    )


def test_cet_cross_encoder_heads_learn_at_head_lr(tiny_model, shallow):
    mined, _, _, _, _ = shallow
    head = {"classifier.weight": 1e-2, "classifier.bias": 1e-2}
    relevance = CrossEncoderScorer(CrossEncoder(tiny_model, device="cpu"))
    selection = CrossEncoderScorer(CrossEncoder(tiny_model, device="cpu"))
    task = CETTask(relevance, selection, 2.0, 1e-4, 1e-4, head_lr=1e-2)
    assert task.parameter_rates == {"relevance": head, "selection": head}
    provenance = ProvenanceScorer(ProvenanceFeatures(mined))
    assert CETTask(relevance, provenance, 2.0, 1e-4, 1e-3, head_lr=1e-2).parameter_rates == {"relevance": head}
    assert CETTask(relevance, selection, 2.0, 1e-4, 1e-4).parameter_rates == {}


def test_load_cet_models_needs_a_cet_folder(tmp_path, shallow):
    with pytest.raises(RankkitError, match="not a CET model folder"):
        load_cet_models(tmp_path, shallow[0])


# --- missing provenance ----------------------------------------------------------------------------


def test_negatives_without_rank_or_score_are_refused(shallow):
    mined, _, _, _, _ = shallow
    q = mined.queries[0]
    bare = MinedSet(
        [
            MinedQuery(
                q.qid,
                q.query,
                q.positives,
                [Candidate(c.docid, c.source, None, None) for c in q.negatives],
                q.positive_provenance,
            )
        ]
    )
    with pytest.raises(RankkitError) as caught:
        ProvenanceFeatures(bare)
    message = str(caught.value)
    assert "negatives[].rank" in message and "negatives[].score" in message and "re-mine" in message
    assert "negatives[].source" not in message and "positives[].retrieved" not in message


# --- the CLI ---------------------------------------------------------------------------------------


def test_cli_train_cet_and_suspects(tmp_path, tiny_model, shallow, sample_dir):
    mined, _, _, full, folder = shallow
    runner = CliRunner()
    output = tmp_path / "cet"
    result = runner.invoke(
        app,
        [
            "train",
            "cet",
            "--mined",
            str(folder / "mined.jsonl"),
            "--corpus",
            str(sample_dir / "collection.tsv"),
            "--output",
            str(output),
            "--model",
            str(tiny_model),
            "--max-steps",
            "2",
            "--batch-size",
            "2",
            "--negatives",
            "2",
            "--debias-ratio",
            "10",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "saved the trained cet" in result.output
    assert json.loads((output / "model" / CET_FILE).read_text())["debias_ratio"] == 10.0
    assert json.loads((output / "config.json").read_text())["max_steps"] == 2

    tsv = tmp_path / "suspects.tsv"
    result = runner.invoke(
        app,
        [
            "cet",
            "suspects",
            "--mined",
            str(folder / "mined.jsonl"),
            "--corpus",
            str(sample_dir / "collection.tsv"),
            "--model",
            str(output / "model"),
            "--output",
            str(tsv),
            "--top",
            "8",
            "--full-qrels",
            str(sample_dir / "qrels.txt"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    assert rows[0][-1] == "full_qrels_grade" and len(rows) == 9
    share = sum(row[-1] != "" and int(row[-1]) >= 1 for row in rows[1:]) / 8
    match = re.search(r"precision of the top 8 suspects against the full qrels: ([0-9.]+)", result.output)
    assert match and float(match.group(1)) == pytest.approx(share, abs=1e-4)


def test_cli_cet_without_provenance_exits_2(tmp_path, tiny_model, shallow, sample_dir):
    _, _, _, _, folder = shallow
    lines = (folder / "mined.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines[1:]]
    for record in records:
        for n in record["negatives"]:
            n["rank"] = None
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], *map(json.dumps, records)]) + "\n")
    result = CliRunner().invoke(
        app,
        [
            "train",
            "cet",
            "--mined",
            str(bad),
            "--corpus",
            str(sample_dir / "collection.tsv"),
            "--output",
            str(tmp_path / "o"),
            "--model",
            str(tiny_model),
            "--max-steps",
            "1",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "error:" in result.stderr and "negatives[].rank" in result.stderr and "re-mine" in result.stderr
    assert "Traceback" not in result.output


def test_cli_debias_ratio_zero_names_the_flag(tmp_path, tiny_model, shallow, sample_dir):
    _, _, _, _, folder = shallow
    result = CliRunner().invoke(
        app,
        [
            "train",
            "cet",
            "--mined",
            str(folder / "mined.jsonl"),
            "--corpus",
            str(sample_dir / "collection.tsv"),
            "--output",
            str(tmp_path / "o"),
            "--model",
            str(tiny_model),
            "--max-steps",
            "1",
            "--device",
            "cpu",
            "--debias-ratio",
            "0",
        ],
    )
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "--debias-ratio" in result.stderr and "Traceback" not in result.output
