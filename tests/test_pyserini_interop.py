"""pyserini interop: configure_java() is the one call that makes pyserini's LuceneSearcher open a
rankkit BM25 index; importing rankkit changes no environment variable; Java's log lines stay off
stdout. Each check runs in a fresh interpreter, since a JVM starts once per process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rankkit.index.java import temporary_environ

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"} | env
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def bm25_folder(tmp_path_factory, sample_dir) -> Path:
    from rankkit.index.bm25 import build_bm25_index

    out = tmp_path_factory.mktemp("interop") / "bm25"
    build_bm25_index(sample_dir / "collection.tsv", out)
    return out


def test_importing_rankkit_sets_no_environment_variable():
    # regression: importing rankkit's BM25 code set a dummy OPENAI_API_KEY in the user's environment
    result = run_python(
        "import os; before = dict(os.environ)\n"
        "import rankkit, rankkit.index.bm25, rankkit.retrieve, rankkit.cli.app\n"
        "print(sorted(set(os.environ.items()) ^ set(before.items())))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow  # a fresh JVM
def test_lucene_searcher_opens_a_rankkit_index_and_the_environment_is_kept(bm25_folder):
    code = (
        "import os\nfrom rankkit.index.java import configure_java\n"
        "java_home = os.environ.get('JAVA_HOME')\nconfigure_java()\n"
        "from pyserini.search.lucene import LuceneSearcher\n"
        f"hits = LuceneSearcher({str(bm25_folder / 'lucene')!r}).search('stars', k=3)\n"
        "from rankkit.retrieve.bm25 import BM25Retriever\n"
        f"ours = BM25Retriever({str(bm25_folder)!r}).search('stars', 3)\n"
        "assert [h.docid for h in hits] == [h.docid for h in ours], (hits, ours)\n"
        "assert 'OPENAI_API_KEY' not in os.environ and os.environ.get('JAVA_HOME') == java_home\n"
        "print('hits', [h.docid for h in hits])"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("hits ['")


@pytest.mark.slow  # a fresh JVM
def test_java_log_lines_stay_off_stdout(sample_dir, tmp_path):
    # regression: Anserini's INFO lines were printed on stdout by every BM25 command
    rankkit = Path(sys.executable).parent / "rankkit"
    result = subprocess.run(
        [
            str(rankkit),
            "index",
            "build",
            str(sample_dir / "collection.tsv"),
            "--kind",
            "bm25",
            "-o",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("built bm25 index"), result.stdout
    assert "INFO" not in result.stdout + result.stderr and "MMapDirectory" not in result.stdout + result.stderr


def test_temporary_environ_restores_exactly(monkeypatch):
    monkeypatch.setenv("RANKKIT_KEPT", "1")
    monkeypatch.delenv("RANKKIT_ABSENT", raising=False)
    with temporary_environ(RANKKIT_KEPT="2", RANKKIT_ABSENT="x"):
        assert (os.environ["RANKKIT_KEPT"], os.environ["RANKKIT_ABSENT"]) == ("2", "x")
    assert os.environ["RANKKIT_KEPT"] == "1" and "RANKKIT_ABSENT" not in os.environ
