"""MinedSet exports for other trainers: sentence-transformers (anchor/positive/negative_i),
FlagEmbedding (query/pos/neg/pos_scores/neg_scores) and Tevatron (query_id/query/positive_passages/
negative_passages); by hand on a small MinedSet, through `rankkit mine --export`, and read back by
the libraries that own the formats (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.data.runs import Hit, write_run
from rankkit.errors import RankkitError
from rankkit.mining.candidates import Candidate
from rankkit.mining.export import EXPORT_FORMATS, export_minedset, export_path
from rankkit.mining.minedset import MinedQuery, MinedSet

TEXTS = {
    "p1": "positive one",
    "p2": "positive two",
    "n1": "negative one",
    "n2": "negative two",
    "n3": "negative three",
    "p3": "another positive",
}


def mined(teacher: bool = True) -> MinedSet:
    def neg(docid: str, score: float) -> Candidate:
        return Candidate(docid, "bm25", 1, 1.0, score if teacher else None, "top")

    return MinedSet(
        [
            MinedQuery(
                "q1",
                "first query",
                {"p1": 2, "p2": 1},
                [neg("n1", 0.5), neg("n2", -1.0)],
                {
                    "p1": Candidate("p1", "bm25", 1, 3.0, 4.0 if teacher else None, "positive"),
                    "p2": Candidate("p2", "bm25", 5, 2.0, 3.5 if teacher else None, "positive"),
                },
            ),
            MinedQuery(
                "q2",
                "second query",
                {"p3": 1},
                [neg("n3", 0.25)],
                {"p3": Candidate("p3", "bm25", 2, 1.0, 2.0 if teacher else None, "positive")},
            ),
        ]
    )


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sentence_transformers_n_tuples(tmp_path):
    counts = export_minedset(mined(), TEXTS, "st", tmp_path / "st.jsonl")
    assert rows(tmp_path / "st.jsonl") == [
        {
            "anchor": "first query",
            "positive": "positive one",
            "negative_1": "negative one",
            "negative_2": "negative two",
        },
        {
            "anchor": "first query",
            "positive": "positive two",
            "negative_1": "negative one",
            "negative_2": "negative two",
        },
    ]
    assert (counts["rows"], counts["queries_left_out"]) == (2, 1)  # q2 has 1 negative, not 2


def test_flagembedding_with_teacher_scores(tmp_path):
    counts = export_minedset(mined(), TEXTS, "flagembedding", tmp_path / "fe.jsonl")
    assert rows(tmp_path / "fe.jsonl") == [
        {
            "query": "first query",
            "pos": ["positive one", "positive two"],
            "neg": ["negative one", "negative two"],
            "pos_scores": [4.0, 3.5],
            "neg_scores": [0.5, -1.0],
        },
        {
            "query": "second query",
            "pos": ["another positive"],
            "neg": ["negative three"],
            "pos_scores": [2.0],
            "neg_scores": [0.25],
        },
    ]
    assert counts["scores"] == "teacher_score"


def test_flagembedding_without_teacher_has_no_scores(tmp_path):
    counts = export_minedset(mined(teacher=False), TEXTS, "flagembedding", tmp_path / "fe.jsonl")
    assert all(set(row) == {"query", "pos", "neg"} for row in rows(tmp_path / "fe.jsonl"))
    assert counts["scores"].startswith("none")


def test_tevatron_passages(tmp_path):
    export_minedset(mined(), TEXTS, "tevatron", tmp_path / "tv.jsonl")
    first = rows(tmp_path / "tv.jsonl")[0]
    assert first == {
        "query_id": "q1",
        "query": "first query",
        "positive_passages": [
            {"docid": "p1", "title": "", "text": "positive one"},
            {"docid": "p2", "title": "", "text": "positive two"},
        ],
        "negative_passages": [
            {"docid": "n1", "title": "", "text": "negative one"},
            {"docid": "n2", "title": "", "text": "negative two"},
        ],
    }


def test_missing_text_and_unknown_format_are_refused(tmp_path):
    with pytest.raises(RankkitError, match="no text.*Fix:"):
        export_minedset(mined(), {"p1": "x"}, "st", tmp_path / "x.jsonl")
    with pytest.raises(RankkitError, match="unknown export format.*Fix:"):
        export_minedset(mined(), TEXTS, "dpr", tmp_path / "x.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_export_path_is_beside_the_minedset():
    assert export_path("out/mined.jsonl", "st") == Path("out/mined.st.jsonl")


@pytest.fixture(scope="module")
def exported(sample_dir, tmp_path_factory) -> dict[str, Path]:
    """`rankkit mine --export` for every format, from a run listing the whole sample corpus per query."""
    folder = tmp_path_factory.mktemp("export")
    docids = [line.split("\t", 1)[0] for line in (sample_dir / "collection.tsv").read_text().splitlines()]
    qids = [line.split("\t", 1)[0] for line in (sample_dir / "queries.tsv").read_text().splitlines()]
    write_run({q: [Hit(d, float(-i)) for i, d in enumerate(docids)] for q in qids}, folder / "run.trec")
    output = folder / "mined.jsonl"
    args = [
        "mine",
        "--queries",
        sample_dir / "queries.tsv",
        "--qrels",
        sample_dir / "qrels.txt",
        "--corpus",
        sample_dir / "collection.tsv",
        "--run",
        folder / "run.trec",
        "-o",
        output,
        "--count",
        "3",
    ]
    for fmt in EXPORT_FORMATS:
        args += ["--export", fmt]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "exported" in result.output
    return {fmt: export_path(output, fmt) for fmt in EXPORT_FORMATS}


def test_cli_writes_every_export(exported):
    st = rows(exported["st"])
    assert st and set(st[0]) == {"anchor", "positive", "negative_1", "negative_2", "negative_3"}
    assert rows(exported["tevatron"])[0]["query_id"]
    assert set(rows(exported["flagembedding"])[0]) == {"query", "pos", "neg"}  # no teacher: no scores


@pytest.mark.slow
def test_sentence_transformers_trains_on_the_export(exported, tiny_model, tmp_path):
    from datasets import load_dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    dataset = load_dataset("json", data_files=str(exported["st"]), split="train")
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]
    model = SentenceTransformer(str(tiny_model), device="cpu")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=MultipleNegativesRankingLoss(model)
    )
    assert trainer.train().training_loss > 0


@pytest.mark.slow
def test_flagembedding_and_tevatron_exports_load_as_their_datasets(exported):
    from datasets import load_dataset

    flag = load_dataset("json", data_files=str(exported["flagembedding"]), split="train")
    assert {"query", "pos", "neg"} <= set(flag.column_names)
    tevatron = load_dataset("json", data_files=str(exported["tevatron"]), split="train")
    assert set(tevatron[0]["positive_passages"][0]) == {"docid", "title", "text"}
