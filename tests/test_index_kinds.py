"""Index kinds through the registry: a kind registered here (one module's worth of code, in this
test) is built, verified, searched, fused and served without touching any other module; `index
build` takes only the options of the kind it builds."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Mapping

import pytest
from test_cli import fails, ok

from rankkit.data.corpus import read_corpus
from rankkit.data.runs import Hit, Run
from rankkit.errors import RankkitError
from rankkit.index.kinds import IndexKind, index_kind, register, registered
from rankkit.index.kinds import registry as kind_registry
from rankkit.index.manifest import CorpusInfo, Manifest
from rankkit.index.options import IndexBuild
from rankkit.retrieve.options import QueryOptions

WORDS_FILE = "words.json"


class WordRetriever:
    """Scores a document by how many of the query's words it holds."""

    def __init__(self, folder: Path):
        self.words = {docid: Counter(words) for docid, words in json.loads((folder / WORDS_FILE).read_text()).items()}
        self.name = f"words:{folder.name}"

    def search(self, query: str, k: int = 10) -> list[Hit]:
        terms = query.lower().split()
        scored = [Hit(docid, float(sum(words[t] for t in terms))) for docid, words in self.words.items()]
        return sorted((hit for hit in scored if hit.score > 0), key=lambda hit: (-hit.score, hit.docid))[:k]

    def batch_search(self, queries: Mapping[str, str], k: int = 10) -> Run:
        return {qid: self.search(text, k) for qid, text in queries.items()}


def build_words(config: IndexBuild) -> tuple[Manifest, Path]:
    out = config.folder()
    out.mkdir(parents=True)
    words = {doc.docid: doc.contents.lower().split() for doc in read_corpus(config.corpus)}
    (out / WORDS_FILE).write_text(json.dumps(words))
    manifest = Manifest(kind="words", count=len(words), corpus=CorpusInfo.of(config.corpus, "tsv"), index_type="json")
    return manifest.write(out), out


def verify_words(folder: Path, manifest: Manifest) -> list[str]:
    if len(json.loads((folder / WORDS_FILE).read_text())) != manifest.count:
        raise RankkitError(f"{folder}: the count differs. Fix: rebuild")
    return []


WORDS = IndexKind(
    name="words",
    description="a word count per document",
    required_files=(WORDS_FILE,),
    open=lambda folder, query: WordRetriever(folder),
    verify=verify_words,
    build=build_words,
    verified="word lists read",
)


@pytest.fixture
def words_kind():
    register(WORDS)
    yield WORDS
    kind_registry._KINDS.pop(WORDS.name)


@pytest.fixture
def words_index(words_kind, tmp_path, sample_dir) -> Path:
    ok("index", "build", sample_dir / "collection.tsv", "--kind", "words", "-o", tmp_path / "words")
    return tmp_path / "words"


def test_a_registered_kind_is_built_verified_and_searched(words_index):
    assert json.loads(ok("index", "info", words_index).stdout)["kind"] == "words"
    assert "ok: words index" in ok("index", "verify", words_index).stdout
    assert "word lists read" in ok("index", "verify", words_index).stdout
    found = ok("search", "-i", words_index, "-q", "stars", "-k", "3").stdout
    assert "words:words: stars" in found


def test_a_registered_kind_is_fused_with_bm25(words_index, tmp_path, sample_dir):
    ok("index", "build", sample_dir / "collection.tsv", "--kind", "bm25", "-o", tmp_path / "bm25")
    run = tmp_path / "hybrid.trec"
    queries = sample_dir / "queries.tsv"
    ok("search", "-i", words_index, "-i", tmp_path / "bm25", "--queries", queries, "-o", run)
    assert run.read_text().count("\n") > 0


def test_a_registered_kind_layout_and_damage_go_through_the_registry(words_index):
    (words_index / WORDS_FILE).unlink()
    fails("index", "verify", words_index, expect="words.json: missing: the manifest says this is a words index")
    fails("index", "verify", words_index, expect="rankkit index build")


def test_a_registered_kind_is_served_with_its_own_mode(words_index, tmp_path, sample_dir):
    from fastapi.testclient import TestClient

    from rankkit.serve.app import create_app
    from rankkit.serve.config import ServeConfig

    ok("index", "build", sample_dir / "collection.tsv", "--kind", "bm25", "-o", tmp_path / "bm25")
    config = ServeConfig(indexes=(str(words_index), str(tmp_path / "bm25")), texts=False)
    with TestClient(create_app(config)) as client:
        deadline = time.monotonic() + 60
        while (health := client.get("/health").json())["status"] != "ready":
            assert health["status"] == "loading" and time.monotonic() < deadline, health
            time.sleep(0.05)
        assert health["modes"] == ["words", "bm25", "hybrid"]
        words = client.post("/search", json={"query": "stars", "k": 3}).json()
        assert words["mode"] == "words" and words["hits"][0]["docid"] in {
            h.docid for h in WordRetriever(words_index).search("stars")
        }
        hybrid = client.post("/search", json={"query": "stars", "k": 3, "mode": "hybrid"}).json()
        assert hybrid["mode"] == "hybrid" and len(hybrid["hits"]) == 3
        unknown = client.post("/search", json={"query": "stars", "mode": "dense"})
        assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "mode_unavailable"


def test_unknown_kind_names_the_registered_ones(sample_dir, tmp_path):
    fails("index", "build", sample_dir / "collection.tsv", "--kind", "nosuch", expect="unknown index kind 'nosuch'")
    fails(
        "index",
        "build",
        sample_dir / "collection.tsv",
        "--kind",
        "nosuch",
        expect="bm25 (Lucene through pyserini, BM25 and RM3); dense",
    )
    with pytest.raises(RankkitError, match="dense-shard"):
        from rankkit.index.build import build_index

        build_index(IndexBuild(corpus=str(sample_dir / "collection.tsv"), kind="dense-shard", output=str(tmp_path)))


@pytest.mark.parametrize(
    "kind, option",
    [
        ("bm25", ["--factory", "HNSW32"]),
        ("bm25", ["--model", "other"]),
        ("bm25", ["--precision", "bf16"]),
        ("dense", ["--threads", "4"]),
        ("splade", ["--factory", "HNSW32"]),
        ("splade", ["--shard", "0/2"]),
    ],
)
def test_index_build_refuses_the_options_of_other_kinds(sample_dir, tmp_path, kind, option):
    fails(
        "index",
        "build",
        sample_dir / "collection.tsv",
        "--kind",
        kind,
        *option,
        "-o",
        tmp_path / "x",
        expect=f"{option[0]} does not apply to a {kind} index",
    )
    assert not (tmp_path / "x").exists()


def test_each_built_in_kind_declares_its_files_and_options():
    assert set(registered()) >= {"bm25", "dense", "dense-shard", "splade"}
    assert index_kind("bm25").required_files == ("lucene",)
    assert index_kind("dense").query_model and not index_kind("bm25").query_model
    assert index_kind("dense-shard").open is None


def test_query_options_give_each_kind_its_group():
    from rankkit.mining.recipe import MiningRecipe
    from rankkit.retrieve.options import BM25Params, DenseQuery

    recipe = MiningRecipe(output="x", nprobe=4)
    query = QueryOptions(recipe, BM25Params(k1=2.0))
    assert query.get(DenseQuery) is recipe  # a recipe is a DenseQuery
    assert query.get(BM25Params).k1 == 2.0
    assert QueryOptions().get(BM25Params) == BM25Params()
