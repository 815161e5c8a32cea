"""BEIR folders and fusion through the CLI (Typer's CliRunner): quickstart --data BEIR --split,
index build from corpus.jsonl, search --queries queries.jsonl with --fusion/--alpha/--fusion-config,
eval against qrels/SPLIT.tsv, and `rankkit tune fusion`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import usage_error
from test_cli import fails, invoke, ok

from rankkit.data.collection import collection, export_beir
from rankkit.data.qrels import read_qrels
from rankkit.data.runs import read_run
from rankkit.encode.dev_record import RECORD_FILE
from rankkit.retrieve.fusion import FusionConfig, normalised_fuse

pytest.importorskip("pyserini", reason="BM25 through pyserini (bm25 extra)")


@pytest.fixture(scope="module")
def beir(tmp_path_factory) -> Path:
    """The bundled sample written in BEIR's layout, with a dev split of four of its queries and a
    train split of the others."""
    out = export_beir(collection(), tmp_path_factory.mktemp("beir") / "sample-beir")
    test = read_qrels(out / "qrels" / "test.tsv")
    for split, qids in (("dev", sorted(test)[:4]), ("train", sorted(test)[4:])):
        (out / "qrels" / f"{split}.tsv").write_bytes(
            b"query-id\tcorpus-id\tscore\r\n"
            + "".join(f"{q}\t{d}\t{g}\r\n" for q in qids for d, g in test[q].items()).encode()
        )
    return out


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, beir, tiny_model) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("beir-indexes")
    ok("index", "build", beir / "corpus.jsonl", "--kind", "bm25", "-o", out / "bm25")
    ok("index", "build", beir / "corpus.jsonl", "--model", tiny_model, "-o", out / "dense", "--device", "cpu")
    return out / "bm25", out / "dense"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, beir, indexes) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("beir-runs")
    bm25, dense = indexes
    for name, index in (("bm25", bm25), ("dense", dense)):
        ok(
            "search",
            "-i",
            index,
            "--queries",
            beir / "queries.jsonl",
            "-o",
            folder / f"{name}.trec",
            "-k",
            "50",
            "--device",
            "cpu",
            "--tag",
            name,
        )
    return folder / "dense.trec", folder / "bm25.trec"


def test_quickstart_on_a_beir_folder_and_split(tmp_path, beir, tiny_model):
    out = tmp_path / "qs"
    result = ok(
        "quickstart",
        "--data",
        beir,
        "--split",
        "dev",
        "--model",
        tiny_model,
        "--output",
        out,
        "--device",
        "cpu",
        "--fusion",
        "convex",
        "--alpha",
        "0.3",
    )
    assert "nDCG@10" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert set(report) == {"bm25", "dense", "hybrid"}
    for name in report:
        assert set(read_run(out / "runs" / f"{name}.trec")) == set(read_qrels(beir / "qrels" / "dev.tsv"))
    config = json.loads((out / "config.json").read_text())
    assert (config["split"], config["fusion"]["method"], config["fusion"]["alpha"]) == ("dev", "convex", 0.3)
    assert config["precision"] == "auto"
    hybrid = read_run(out / "runs" / "hybrid.trec")
    bm25, dense = read_run(out / "runs" / "bm25.trec"), read_run(out / "runs" / "dense.trec")
    qid = next(iter(hybrid))
    expected = normalised_fuse([bm25[qid], dense[qid]], [0.7, 0.3], 1000, "convex")
    assert [h.docid for h in hybrid[qid]] == [h.docid for h in expected]


def test_quickstart_unknown_split(tmp_path, beir):
    fails("quickstart", "--data", beir, "--split", "validation", "--output", tmp_path / "qs", expect="--split")


def test_a_split_of_a_collection_tsv_folder_is_refused(tmp_path):
    """A collection.tsv folder has one qrels.txt: a --split there would be silently ignored."""
    fails(
        "quickstart", "--data", collection().root, "--split", "dev", "--output", tmp_path / "qs", expect="drop --split"
    )


def test_eval_against_beir_qrels(runs, beir):
    result = ok("eval", runs[1], beir / "qrels" / "test.tsv", "-m", "nDCG@10")
    assert "nDCG@10" in result.stdout


def test_eval_headerless_beir_qrels_names_the_fix(runs, tmp_path):
    qrels = tmp_path / "test.tsv"
    qrels.write_text("q01\ts001\t1\n")
    fails("eval", runs[1], qrels, expect="header")


@pytest.mark.parametrize("fusion", ["rrf", "convex", "zscore"])
def test_search_fusion_flags(indexes, beir, tmp_path, fusion):
    out = tmp_path / "hybrid.trec"
    ok(
        "search",
        "-i",
        indexes[0],
        "-i",
        indexes[1],
        "--queries",
        beir / "queries.jsonl",
        "-o",
        out,
        "-k",
        "10",
        "--fusion",
        fusion,
        "--alpha",
        "0.25",
        "--fusion-depth",
        "50",
        "--device",
        "cpu",
    )
    run = read_run(out)
    assert len(run) == 16 and all(len(hits) == 10 for hits in run.values())


def test_search_alpha_moves_the_ranking_to_one_side(indexes, runs, beir, tmp_path):
    dense_run, bm25_run = read_run(runs[0]), read_run(runs[1])
    for alpha, side in (("1", dense_run), ("0", bm25_run)):
        out = tmp_path / f"alpha{alpha}.trec"
        ok(
            "search",
            "-i",
            indexes[0],
            "-i",
            indexes[1],
            "--queries",
            beir / "queries.jsonl",
            "-o",
            out,
            "-k",
            "5",
            "--fusion",
            "convex",
            "--alpha",
            alpha,
            "--fusion-depth",
            "50",
            "--device",
            "cpu",
        )
        fused = read_run(out)
        agree = sum([h.docid for h in fused[q]][:3] == [h.docid for h in side[q]][:3] for q in fused)
        assert agree >= len(fused) - 2  # only ties among a list's own scores may reorder


def test_tune_fusion_from_runs_writes_what_search_reads(runs, beir, indexes, tmp_path):
    config_path = tmp_path / "fusion.json"
    result = ok(
        "tune",
        "fusion",
        "--dev-queries",
        beir / "queries.jsonl",
        "--dev-qrels",
        beir / "qrels" / "dev.tsv",
        "--dense-run",
        runs[0],
        "--bm25-run",
        runs[1],
        "-o",
        config_path,
        "--fusion-depth",
        "50",
    )
    assert "best:" in result.stdout
    written = json.loads(config_path.read_text())
    assert written["tuned_on"]["judged_queries"] == 4
    config = FusionConfig.read(config_path)
    assert config.depth == 50
    out = tmp_path / "tuned.trec"
    ok(
        "search",
        "-i",
        indexes[0],
        "-i",
        indexes[1],
        "--queries",
        beir / "queries.jsonl",
        "-o",
        out,
        "--fusion-config",
        config_path,
        "--device",
        "cpu",
    )
    assert len(read_run(out)) == 16


def test_tune_fusion_from_indexes(indexes, beir, tmp_path):
    ok(
        "tune",
        "fusion",
        "--dev-queries",
        beir / "queries.jsonl",
        "--dev-qrels",
        beir / "qrels" / "dev.tsv",
        "-i",
        indexes[0],
        "-i",
        indexes[1],
        "-o",
        tmp_path / "fusion.json",
        "--method",
        "convex",
        "--fusion-depth",
        "20",
        "--device",
        "cpu",
    )
    assert FusionConfig.read(tmp_path / "fusion.json").method == "convex"


def test_tune_fusion_errors(indexes, runs, beir, tmp_path):
    dev = ("--dev-queries", beir / "queries.jsonl", "--dev-qrels", beir / "qrels" / "dev.tsv")
    fails("tune", "fusion", *dev, "-o", tmp_path / "f.json", expect="--index")
    fails("tune", "fusion", *dev, "-i", indexes[0], "-i", indexes[0], expect="one dense and one BM25")
    fails("tune", "fusion", *dev, "-i", indexes[0], "--dense-run", runs[0], expect="not both")


def test_search_bad_alpha_and_bad_config(indexes, tmp_path):
    usage_error(
        invoke("search", "-i", indexes[0], "-i", indexes[1], "-q", "bread", "--alpha", "2"), "--alpha", "<= 1"
    )  # refused at parse time, before any index is opened
    bad = tmp_path / "fusion.json"
    bad.write_text('{"method": "max"}')
    fails(
        "search",
        "-i",
        indexes[0],
        "-i",
        indexes[1],
        "-q",
        "bread",
        "--fusion-config",
        bad,
        "--device",
        "cpu",
        expect=str(bad),
    )


def test_recipe_mine_and_train_on_a_beir_split(beir, indexes, runs, tmp_path, tiny_model):
    """The README's fine-tuning recipe, small: mine the train split of a BEIR folder (--data --split)
    from BM25 and dense candidates (labelled positives excluded), train a bi-encoder and a reranker
    on it, with the dev split (--dev-split) and its BM25 run for dev evaluation."""
    mined = tmp_path / "mined.jsonl"
    ok(
        "mine",
        "--data",
        beir,
        "--split",
        "train",
        "-i",
        indexes[0],
        "-i",
        indexes[1],
        "--depth",
        "30",
        "--max-rank",
        "30",
        "--count",
        "3",
        "-o",
        mined,
        "--device",
        "cpu",
    )
    records = [json.loads(line) for line in mined.read_text().splitlines()[1:]]  # after the _meta line
    train, dev = read_qrels(beir / "qrels" / "train.tsv"), read_qrels(beir / "qrels" / "dev.tsv")
    assert records and {r["qid"] for r in records} <= set(train)
    for record in records:
        positives = {d for d, g in train[record["qid"]].items() if g >= 1}
        assert not positives & {n["docid"] for n in record["negatives"]}
    stats = json.loads(mined.with_suffix(".stats.json").read_text())
    assert stats["skipped_no_positive"] == 0  # the dev (and other) queries were never retrieved
    for kind in ("biencoder", "reranker"):
        result = ok(
            "train",
            kind,
            "--mined",
            mined,
            "--data",
            beir,
            "--dev-split",
            "dev",
            "--dev-run",
            runs[1],
            "-o",
            tmp_path / kind,
            "--model",
            tiny_model,
            "--max-steps",
            "2",
            "--batch-size",
            "2",
            "--negatives",
            "2",
            "--eval-every",
            "2",
            "--device",
            "cpu",
        )
        assert f"saved the trained {kind}" in result.stdout
        assert "are also training queries" not in result.stderr  # the dev split was kept out of training
        log = [json.loads(line) for line in (tmp_path / kind / "train_log.jsonl").read_text().splitlines()]
        assert any("nDCG@10" in json.dumps(entry) for entry in log)
    assert (tmp_path / "reranker" / "model" / RECORD_FILE).is_file()  # its dev record, read on the dev split
    assert set(dev).isdisjoint(train)


def test_train_warns_when_the_dev_queries_were_trained_on(beir, indexes, runs, tmp_path, tiny_model):
    mined = tmp_path / "mined.jsonl"
    ok(
        "mine",
        "--data",
        beir,
        "--split",
        "test",
        "-i",
        indexes[0],
        "--depth",
        "30",
        "--max-rank",
        "30",
        "--count",
        "3",
        "-o",
        mined,
    )
    result = ok(
        "train",
        "biencoder",
        "--mined",
        mined,
        "--data",
        beir,
        "--dev-split",
        "dev",
        "--dev-run",
        runs[1],
        "-o",
        tmp_path / "bi",
        "--model",
        tiny_model,
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--negatives",
        "1",
        "--device",
        "cpu",
    )
    assert "4 dev queries" in result.stderr and "--split train" in result.stderr


def test_mine_and_train_name_the_missing_inputs(beir, indexes, tmp_path):
    fails("mine", "--split", "train", "-i", indexes[0], "-o", tmp_path / "m.jsonl", expect="--data")
    fails(
        "mine",
        "--qrels",
        beir / "qrels" / "train.tsv",
        "-i",
        indexes[0],
        "-o",
        tmp_path / "m.jsonl",
        expect="--queries and --corpus",
    )
    fails(
        "mine",
        "--data",
        beir,
        "--split",
        "validation",
        "-i",
        indexes[0],
        "-o",
        tmp_path / "m.jsonl",
        expect="validation",
    )
    fails("train", "biencoder", "--mined", tmp_path / "m.jsonl", "-o", tmp_path / "bi", expect="--corpus")
    fails(
        "train",
        "biencoder",
        "--mined",
        tmp_path / "m.jsonl",
        "--corpus",
        beir / "corpus.jsonl",
        "--dev-split",
        "dev",
        "-o",
        tmp_path / "bi",
        expect="--data",
    )


def test_serve_checks_the_fusion_settings_before_binding_the_port(indexes, tmp_path):
    bm25, dense = indexes
    usage_error(invoke("serve", "--index", dense, "--index", bm25, "--alpha", "2"), "--alpha", "<= 1")
    bad = tmp_path / "fusion.json"
    bad.write_text('{"depth": 0}')
    fails("serve", "--index", dense, "--index", bm25, "--fusion-config", bad, "--device", "cpu", expect="depth")


def test_export_beir_writes_a_folder_every_command_reads(tmp_path):
    out = tmp_path / "sample-beir"
    result = ok("export", "beir", "-o", out, "--split", "dev")
    assert "BEIR" in result.stdout
    sample, exported = collection(), collection(out, "dev")
    assert read_qrels(exported.qrels) == read_qrels(sample.qrels)
    assert (out / "qrels" / "dev.tsv").read_bytes().startswith(b"query-id\tcorpus-id\tscore\r\n")
    fails("export", "beir", "-o", out, expect="--overwrite")
    ok("export", "beir", "-o", out, "--overwrite")  # a BEIR folder may be replaced
    assert sorted(p.name for p in (out / "qrels").iterdir()) == ["test.tsv"]
    fails("export", "beir", out, "-o", tmp_path / "again", expect="already a BEIR folder")


def test_export_beir_never_overwrites_other_files_or_escapes_qrels(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    fails("export", "beir", "-o", notes, "--overwrite", expect="not BEIR folder")
    assert (notes / "keep.txt").read_text() == "mine"
    fails("export", "beir", "-o", tmp_path / "x", "--split", "../../escape", expect="split name")
    assert not (tmp_path / "x").exists() and not (tmp_path / "escape.tsv").exists()


def test_train_takes_the_corpus_of_a_beir_folder_without_a_test_split(beir, indexes, tmp_path, tiny_model):
    """--data alone gives the corpus, whatever splits the folder has (SciFact has train and dev only)."""
    import shutil

    folder = tmp_path / "no-test"
    shutil.copytree(beir, folder)
    (folder / "qrels" / "test.tsv").unlink()
    mined = tmp_path / "mined.jsonl"
    ok(
        "mine",
        "--data",
        folder,
        "--split",
        "train",
        "-i",
        indexes[0],
        "--depth",
        "30",
        "--max-rank",
        "30",
        "--count",
        "2",
        "-o",
        mined,
    )
    result = ok(
        "train",
        "biencoder",
        "--mined",
        mined,
        "--data",
        folder,
        "-o",
        tmp_path / "bi",
        "--model",
        tiny_model,
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--negatives",
        "1",
        "--device",
        "cpu",
    )
    assert "saved the trained biencoder" in result.stdout
    fails("train", "biencoder", "--mined", mined, "--data", tmp_path, "-o", tmp_path / "bi2", expect="corpus.jsonl")
