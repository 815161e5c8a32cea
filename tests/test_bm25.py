"""BM25 through pyserini on the bundled sample corpus. The JVM starts once (a few seconds), so
these tests are not marked slow."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankkit.data.files import sha256_file
from rankkit.data.queries import read_queries
from rankkit.encode import BiEncoder
from rankkit.errors import RankkitError
from rankkit.index.bm25 import LUCENE_DIR, build_bm25_index, open_lucene_searcher
from rankkit.index.dense import build_dense_index
from rankkit.index.manifest import MANIFEST, Manifest
from rankkit.retrieve import HybridRetriever, open_retriever
from rankkit.retrieve.base import MAX_K
from rankkit.retrieve.bm25 import BM25Retriever
from rankkit.retrieve.dense import DenseRetriever
from rankkit.retrieve.options import BM25Params, DenseQuery

pytest.importorskip("pyserini", reason="BM25 needs the bm25 extra (pyserini)")


@pytest.fixture(scope="module")
def corpus(sample_dir) -> Path:
    return sample_dir / "collection.tsv"


@pytest.fixture(scope="module")
def bm25_index(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("bm25") / "sample-bm25"
    build_bm25_index(corpus, out)
    return out


@pytest.fixture(scope="module")
def bm25(bm25_index) -> BM25Retriever:
    return BM25Retriever(bm25_index)


@pytest.fixture(scope="module")
def queries(sample_dir) -> dict[str, str]:
    return read_queries(sample_dir / "queries.tsv")


def test_manifest(bm25_index, corpus):
    manifest = Manifest.read(bm25_index)
    assert manifest.kind == "bm25"
    assert manifest.count == 80
    assert manifest.index_type == "lucene"
    assert manifest.model is None and manifest.dimension is None
    assert manifest.corpus.sha256 == sha256_file(corpus)
    assert manifest.corpus.format == "tsv"
    assert sorted(p.name for p in bm25_index.iterdir()) == sorted([LUCENE_DIR, MANIFEST])
    assert not [p for p in bm25_index.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_search_returns_scored_hits(bm25):
    hits = bm25.search("how do stars form", 5)
    assert 1 <= len(hits) <= 5
    assert all(isinstance(h.docid, str) and h.docid.startswith("s") for h in hits)
    assert all(type(h.score) is float and h.score > 0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_relevant_document_ranks_high(bm25):
    # s001 is about stellar birth: "stars form" must find the star-formation passages
    top = [h.docid for h in bm25.search("protostar hydrogen fusion molecular cloud", 3)]
    assert "s001" in top


def test_batch_search_equals_search(bm25, queries):
    run = bm25.batch_search(queries, 10)
    assert set(run) == set(queries)
    for qid, text in queries.items():
        single = bm25.search(text, 10)
        assert [h.docid for h in run[qid]] == [h.docid for h in single], qid
        assert [h.score for h in run[qid]] == pytest.approx([h.score for h in single])
    qid, text = next(iter(queries.items()))  # a batch of one takes the single-query path
    assert bm25.batch_search({qid: text}, 10) == {qid: bm25.search(text, 10)}


def test_query_without_matching_terms(bm25):
    assert bm25.search("zzzxqv", 10) == []
    assert bm25.batch_search({"q": "zzzxqv"}, 10) == {"q": []}


def test_k1_and_b_change_scores(bm25_index, bm25):
    query = "what causes the phases of the moon"
    default = bm25.search(query, 10)
    other = BM25Retriever(bm25_index, BM25Params(k1=2.0, b=1.0)).search(query, 10)
    assert [h.score for h in default] != pytest.approx([h.score for h in other])
    again = BM25Retriever(bm25_index, BM25Params()).search(query, 10)
    assert again == default


def test_b_controls_length_normalisation(bm25_index):
    """'harpsichord' occurs once in s076 (49 words) and once in s077 (64 words): with b=0 length
    is ignored and both score the same; with b=1 the shorter document scores higher."""
    flat = {h.docid: h.score for h in BM25Retriever(bm25_index, BM25Params(k1=1.2, b=0.0)).search("harpsichord", 10)}
    assert set(flat) == {"s076", "s077"}
    assert flat["s076"] == pytest.approx(flat["s077"])
    normalised = {
        h.docid: h.score for h in BM25Retriever(bm25_index, BM25Params(k1=1.2, b=1.0)).search("harpsichord", 10)
    }
    assert normalised["s076"] > normalised["s077"]


@pytest.mark.parametrize("k", [0, -3, MAX_K + 1])
def test_k_out_of_range(bm25, k):
    with pytest.raises(RankkitError, match="Fix:"):
        bm25.search("stars", k)
    with pytest.raises(RankkitError, match="Fix:"):
        bm25.batch_search({"q": "stars"}, k)


def test_empty_query(bm25):
    with pytest.raises(RankkitError, match="empty"):
        bm25.search("  ", 10)
    with pytest.raises(RankkitError, match="empty"):
        bm25.batch_search({"q": ""}, 10)


def test_dense_index_to_lucene_searcher(tmp_path, corpus, tiny_model):
    dense = tmp_path / "dense"
    build_dense_index(corpus, dense, BiEncoder(tiny_model, device="cpu"))
    with pytest.raises(RankkitError, match="not a BM25 one") as info:
        open_lucene_searcher(dense)
    assert "Fix:" in str(info.value)


def test_existing_folder_without_overwrite(bm25_index, corpus):
    with pytest.raises(RankkitError, match="overwrite"):
        build_bm25_index(corpus, bm25_index)


def test_malformed_corpus_leaves_nothing(tmp_path, corpus):
    bad = tmp_path / "bad.tsv"
    bad.write_text(corpus.read_text(encoding="utf-8") + "no tab on this line\n", encoding="utf-8")
    root = tmp_path / "indexes"
    with pytest.raises(RankkitError, match=r"bad\.tsv:81"):
        build_bm25_index(bad, root / "bad-bm25")
    assert list(root.iterdir()) == []


def test_open_retriever_chooses_bm25(bm25_index, tmp_path, corpus, tiny_model):
    assert isinstance(open_retriever([bm25_index]), BM25Retriever)
    dense = tmp_path / "dense"
    build_dense_index(corpus, dense, BiEncoder(tiny_model, device="cpu"))
    hybrid = open_retriever([bm25_index, dense], DenseQuery(device="cpu"), BM25Params(k1=1.5, b=0.6))
    assert isinstance(hybrid, HybridRetriever)
    assert isinstance(hybrid.retrievers[0], BM25Retriever)
    assert isinstance(hybrid.retrievers[1], DenseRetriever)
    hits = hybrid.search("how does yeast make bread rise", 10)
    assert len(hits) == 10
    expected = BM25Retriever(bm25_index, BM25Params(k1=1.5, b=0.6)).search("how does yeast make bread rise", 10)
    assert hybrid.retrievers[0].search("how does yeast make bread rise", 10) == expected


def test_query_syntax_characters_are_plain_text(bm25):
    """Queries are bags of words, not Lucene query syntax: operators and brackets do not fail."""
    hits = bm25.search('what is c++? "quoted" (paren) AND OR NOT: ~ * [x] {y} stars^2 -moon', 5)
    assert hits


def test_query_with_too_many_terms(bm25):
    """Lucene refuses a query of more than 1024 clauses; once a JavaException with a traceback."""
    long_query = " ".join(f"term{i}x" for i in range(1100)) + " stars"
    with pytest.raises(RankkitError, match="Fix: shorten the query"):
        bm25.search(long_query, 10)
    with pytest.raises(RankkitError, match="query q2 has more distinct terms") as info:
        bm25.batch_search({"q1": "how do stars form", "q2": long_query}, 10)
    assert "Fix:" in str(info.value)
    with pytest.raises(RankkitError, match="Fix: shorten the query"):  # a batch of one
        bm25.batch_search({"q2": long_query}, 10)
    assert bm25.search("how do stars form", 3)  # the searcher still works afterwards


def test_documents_without_text_are_left_out_with_a_note(tmp_path, capsys):
    # regression: Anserini skips a document without text, and the committed-count check refused the
    # whole index (cranfield has two such documents)
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("a\tfirst doc\nb\t\nc\tthird doc\nd\t   \n")
    manifest = build_bm25_index(corpus, tmp_path / "index")
    assert manifest.count == 2
    assert manifest.settings["documents_without_text"] == 2
    assert "2 documents without text are not in the index: b, d" in capsys.readouterr().err
    hits = BM25Retriever(tmp_path / "index").search("third doc", k=10)
    assert [hit.docid for hit in hits] == ["c", "a"]


def test_corpus_without_any_text_is_refused(tmp_path):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("a\t\nb\t \n")
    with pytest.raises(RankkitError, match="no documents with text"):
        build_bm25_index(corpus, tmp_path / "index")
    assert not (tmp_path / "index").exists()
