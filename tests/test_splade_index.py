"""The splade index kind on a tiny random SPLADE model: build, verify, search (the same top 10 as
pyserini's own LuceneImpactSearcher given the same query weights), the model check, damage,
mining and the quickstart; and BM25 with RM3 against pyserini's RM3 on the same index."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from test_cli import fails, ok

from rankkit.data.corpus import read_doc_texts
from rankkit.data.queries import read_queries
from rankkit.encode.splade import SpladeEncoder, quantize
from rankkit.index.java import configure_java
from rankkit.index.manifest import Manifest
from rankkit.mining.minedset import MinedSet


@pytest.fixture(scope="module")
def splade_index(tmp_path_factory, tiny_splade, sample_dir) -> Path:
    folder = tmp_path_factory.mktemp("splade") / "index"
    ok(
        "index",
        "build",
        sample_dir / "collection.tsv",
        "--kind",
        "splade",
        "--model",
        tiny_splade,
        "-o",
        folder,
        "--precision",
        "fp32",
    )
    return folder


@pytest.fixture(scope="module")
def bm25_index(tmp_path_factory, sample_dir) -> Path:
    folder = tmp_path_factory.mktemp("bm25") / "index"
    ok("index", "build", sample_dir / "collection.tsv", "--kind", "bm25", "-o", folder)
    return folder


def test_splade_index_records_its_model_and_verifies(splade_index, tiny_splade):
    manifest = Manifest.read(splade_index)
    assert (manifest.kind, manifest.count, manifest.index_type) == ("splade", 80, "lucene-impact")
    assert manifest.model_fingerprint == SpladeEncoder(tiny_splade, device="cpu").fingerprint
    assert manifest.settings["quantization"] == "round(weight / 5 * 256)"
    assert not (splade_index / "vectors").exists()  # the JsonVectorCollection is gone once indexed
    assert "ok: splade index" in ok("index", "verify", splade_index).stdout


def test_splade_search_matches_pyserinis_impact_searcher(splade_index, tiny_splade, sample_dir, tmp_path):
    """pyserini's LuceneImpactSearcher, opened on the index folder and given the query weights
    rankkit computed, returns rankkit's top 10 for every sample query, with the same scores.
    pyserini drops query terms whose idf is not above min_idf (0 by default: terms in every
    passage, which this random model gives plenty of); rankkit keeps every term, as min_idf -1 does."""
    configure_java()
    from pyserini.search.lucene import LuceneImpactSearcher

    from rankkit.retrieve import open_retriever
    from rankkit.retrieve.options import DenseQuery

    queries = read_queries(sample_dir / "queries.tsv")
    retriever = open_retriever([splade_index], DenseQuery(device="cpu", precision="fp32"))
    ours = retriever.batch_search(queries, 10)
    encoder = SpladeEncoder(tiny_splade, device="cpu")
    weights = {text: quantize(w) for text, w in zip(queries.values(), encoder.encode(list(queries.values()), "query"))}

    class SameWeights:  # pyserini's QueryEncoder protocol: text -> {term: impact}
        def encode(self, text: str) -> dict[str, int]:
            return weights[text]

    theirs = LuceneImpactSearcher(str(splade_index / "lucene"), SameWeights(), min_idf=-1)
    for qid, text in queries.items():
        expected = [(h.docid, round(h.score, 3)) for h in theirs.search(text, 10)]
        assert [(h.docid, round(h.score, 3)) for h in ours[qid]] == expected, qid
    assert sum(len(hits) for hits in ours.values()) > 0
    texts = read_doc_texts(sample_dir / "collection.tsv")
    top = [(text, ours[qid][0]) for qid, text in queries.items() if ours[qid]]
    scores = retriever.score_pairs([text for text, _ in top], [texts[hit.docid] for _, hit in top])
    assert scores == pytest.approx([hit.score for _, hit in top])  # what mining scores positives with
    cli = ok("search", "-i", splade_index, "--queries", sample_dir / "queries.tsv", "-o", tmp_path / "run.trec")
    assert "hits for" in cli.stdout


def test_a_splade_index_refuses_a_changed_model(splade_index, tiny_splade, tmp_path):
    from conftest import make_tiny_splade

    copy = Path(shutil.copytree(splade_index, tmp_path / "index"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model"] = str(make_tiny_splade(tmp_path / "other", seed=1))
    (copy / "manifest.json").write_text(json.dumps(manifest))
    fails("search", "-i", copy, "-q", "stars", expect="but that folder now holds another model")


def test_a_damaged_splade_index_names_its_rebuild(splade_index, tmp_path):
    copy = Path(shutil.copytree(splade_index, tmp_path / "index"))
    next((copy / "lucene").glob("*.si")).unlink()
    fails("index", "verify", copy, expect="--kind splade")
    fails("index", "verify", copy, expect=f"--model {Manifest.read(copy).model}")


def test_an_empty_query_weight_map_finds_nothing(splade_index):
    from rankkit.index.splade import open_impact_searcher

    searcher, _ = open_impact_searcher(splade_index)
    assert searcher.search({}, 10) == []
    assert searcher.batch_search([{}, {}], ["1", "2"], 10, 1) == {}


def test_mining_and_fusion_take_a_splade_index(splade_index, bm25_index, sample_dir, tmp_path):
    mined = tmp_path / "mined.jsonl"
    ok("mine", "--data", sample_dir, "-i", splade_index, "-o", mined, "--depth", "20", "--max-rank", "20")
    mined_set = MinedSet.read(mined)
    assert mined_set.queries and all(q.negatives for q in mined_set.queries)
    assert {n.source for q in mined_set.queries for n in q.negatives} == {"splade:index"}
    found = ok("search", "-i", splade_index, "-i", bm25_index, "-q", "how do stars form").stdout
    assert "hybrid:splade:index+bm25:index" in found


def test_quickstart_with_a_sparse_model(tiny_model, tiny_splade, sample_dir, tmp_path):
    out = tmp_path / "qs"
    ok("quickstart", "--model", tiny_model, "--sparse-model", tiny_splade, "-o", out, "--device", "cpu")
    report = json.loads((out / "report.json").read_text())
    assert set(report) == {"bm25", "dense", "splade", "hybrid"}
    assert Manifest.read(next((out / "indexes").glob("*-splade"))).kind == "splade"


def test_bm25_rm3_matches_pyserinis_rm3(bm25_index, sample_dir, tmp_path):
    """rankkit's --rm3 gives pyserini's LuceneSearcher.set_rm3 top 10 (same index, its defaults)."""
    configure_java()
    from pyserini.search.lucene import LuceneSearcher

    from rankkit.retrieve.bm25 import BM25Retriever
    from rankkit.retrieve.options import BM25Params

    theirs = LuceneSearcher(str(bm25_index / "lucene"))
    theirs.set_bm25(0.9, 0.4)
    theirs.set_rm3(10, 10, 0.5)
    ours = BM25Retriever(bm25_index, BM25Params(rm3=True))
    plain = BM25Retriever(bm25_index)
    queries = read_queries(sample_dir / "queries.tsv")
    differs = 0
    for text in queries.values():
        expected = [(h.docid, round(h.score, 4)) for h in theirs.search(text, 10)]
        assert [(h.docid, round(h.score, 4)) for h in ours.search(text, 10)] == expected
        differs += [h.docid for h in plain.search(text, 10)] != [docid for docid, _ in expected]
    assert differs > 0  # RM3 changed some rankings: the flag reached Lucene
    run = tmp_path / "rm3.trec"
    ok("search", "-i", bm25_index, "--rm3", "--rm3-fb-docs", "3", "--queries", sample_dir / "queries.tsv", "-o", run)
    assert run.read_text()


def test_mine_and_serve_take_rm3(bm25_index, sample_dir, tmp_path):
    from fastapi.testclient import TestClient

    from rankkit.retrieve.bm25 import BM25Retriever
    from rankkit.retrieve.options import BM25Params
    from rankkit.serve.app import create_app
    from rankkit.serve.config import ServeConfig

    mined = tmp_path / "mined.jsonl"
    ok(
        "mine",
        "--data",
        sample_dir,
        "-i",
        bm25_index,
        "--rm3",
        "--rm3-fb-docs",
        "3",
        "-o",
        mined,
        "--depth",
        "20",
        "--max-rank",
        "20",
    )
    assert MinedSet.read(mined).config["bm25"] == {**BM25Params().__dict__, "rm3": True, "rm3_fb_docs": 3}
    rm3 = BM25Params(rm3=True, rm3_fb_docs=3)
    expected = [(h.docid, round(h.score, 4)) for h in BM25Retriever(bm25_index, rm3).search("how do stars form", 5)]
    with TestClient(create_app(ServeConfig(indexes=(str(bm25_index),), bm25=rm3, texts=False))) as client:
        while client.get("/health").json()["status"] == "loading":
            time.sleep(0.05)
        hits = client.post("/search", json={"query": "how do stars form", "k": 5}).json()["hits"]
    assert [(h["docid"], round(h["score"], 4)) for h in hits] == expected
    plain = BM25Retriever(bm25_index).search("how do stars form", 5)
    assert expected != [(h.docid, round(h.score, 4)) for h in plain]  # RM3's expanded query scores otherwise
