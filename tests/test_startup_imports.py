"""Start-up: a BM25-only search imports neither torch nor transformers nor sentence-transformers nor
faiss (seconds of start-up a BM25 query does not need). Each check runs in a fresh interpreter.

The fast test follows the library's code path of `rankkit search -i BM25_INDEX -q TEXT` up to the
point where pyserini's JVM would start (start_jvm is replaced by a stub), so it needs neither
pyserini nor Java; the slow one runs a real BM25 search and compares its hits with pyserini's own
LuceneSearcher on the same index."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "sentence_transformers", "faiss")
ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def heavy_modules_after(code: str, *args: str) -> tuple[list[str], list[str]]:
    """The heavy modules in sys.modules once `code` has run, and the lines `code` printed."""
    listing = f"\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    result = run_python(code + listing, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    *printed, heavy = result.stdout.strip().splitlines()
    return json.loads(heavy), printed


def test_the_data_index_and_retrieve_modules_import_no_heavy_module():
    code = (
        "import rankkit.retrieve, rankkit.index.manifest, rankkit.data.corpus, rankkit.data.queries, "
        "rankkit.data.runs, rankkit.data.qrels, rankkit.data.collection, rankkit.index.bm25, rankkit.index.verify, "
        "rankkit.retrieve.bm25, rankkit.retrieve.fusion, rankkit.retrieve.hybrid, rankkit.retrieve.texts, "
        "rankkit.retrieve.progress, rankkit.quickstart"
    )
    assert heavy_modules_after(code)[0] == []


BM25_SEARCH_UP_TO_THE_JVM = r"""
import sys
from pathlib import Path

from rankkit.data.queries import read_queries
from rankkit.data.runs import write_run
from rankkit.index.manifest import CorpusInfo, Manifest
from rankkit.retrieve import open_retriever
from rankkit.retrieve.texts import hit_texts
import rankkit.index.lucene

folder = Path(sys.argv[1]) / "bm25"
(folder / "lucene").mkdir(parents=True)
(folder / "lucene" / "segments_1").write_bytes(b"not a real segment: the JVM never opens it")
corpus = Path(sys.argv[1]) / "corpus.tsv"
corpus.write_text("d1\thow stars form\n")
Manifest(kind="bm25", count=1, corpus=CorpusInfo.of(corpus, "tsv"), index_type="lucene").write(folder)


class JvmNeeded(Exception):
    pass


def start_jvm():
    raise JvmNeeded


rankkit.index.lucene.start_jvm = start_jvm
try:
    open_retriever([folder])
except JvmNeeded:
    pass
else:
    raise SystemExit("open_retriever reached no JVM start: the test no longer follows the BM25 path")
"""


def test_bm25_search_up_to_the_jvm_imports_no_heavy_module(tmp_path):
    assert heavy_modules_after(BM25_SEARCH_UP_TO_THE_JVM, str(tmp_path))[0] == []


@pytest.mark.slow  # a fresh JVM, twice
def test_bm25_search_imports_no_heavy_module_and_matches_pyserini(tmp_path, sample_dir):
    pytest.importorskip("pyserini", reason="BM25 needs the bm25 extra")
    from rankkit.index.bm25 import build_bm25_index

    folder = tmp_path / "bm25"
    build_bm25_index(sample_dir / "collection.tsv", folder)
    ours = (
        "import sys\nfrom rankkit.retrieve import open_retriever\n"
        "retriever = open_retriever([sys.argv[1]])\n"
        "one = retriever.search('how do stars form', 5)\n"
        "batch = retriever.batch_search({'a': 'how do stars form', 'b': 'bread yeast'}, 5)\n"
        "print([(h.docid, h.score) for h in one], [(h.docid, h.score) for h in batch['b']])"
    )
    heavy, ours_printed = heavy_modules_after(ours, str(folder))
    assert heavy == []
    theirs = (
        "import sys\nfrom rankkit.index.java import configure_java\nconfigure_java()\n"
        "from pyserini.search.lucene import LuceneSearcher\n"
        "searcher = LuceneSearcher(sys.argv[1] + '/lucene')\nsearcher.set_bm25(0.9, 0.4)\n"
        "one = searcher.search('how do stars form', 5)\n"
        "batch = searcher.batch_search(['how do stars form', 'bread yeast'], ['a', 'b'], 5)\n"
        "print([(h.docid, h.score) for h in one], [(h.docid, h.score) for h in batch['b']])"
    )
    result = run_python(theirs, str(folder))
    assert result.returncode == 0, result.stderr[-2000:]
    assert ours_printed == result.stdout.strip().splitlines() and "s0" in ours_printed[0]
