"""Papercuts a new user hit, each fixed and kept fixed: search shows each hit's text (from the
corpus the index's manifest records), `search -q -o` writes a run, eval's depth warning gives
advice that helps, eval says which measures it used, /sentiment without a model names the flag,
the search page names its default mode and keeps the search in its address, sentiment plots
carry the model's name, and long searches show progress."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankkit.data.corpus import read_corpus
from rankkit.data.runs import Hit, read_run
from rankkit.encode import BiEncoder
from rankkit.index.dense import build_dense_index

runner = CliRunner()


def cli(*args: str | Path):
    from rankkit.cli.app import app

    return runner.invoke(app, [str(a) for a in args])


def one_line(text: str) -> str:
    """Rich's help panels as one line: borders gone, wrapping undone."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_dir) -> Path:
    """A copy of the sample corpus, so a test may move or change it."""
    path = tmp_path_factory.mktemp("corpus") / "collection.tsv"
    shutil.copy(sample_dir / "collection.tsv", path)
    return path


@pytest.fixture(scope="module")
def texts(corpus) -> dict[str, str]:
    return {doc.docid: doc.contents for doc in read_corpus(corpus)}


@pytest.fixture(scope="module")
def dense_index(tmp_path_factory, corpus, tiny_model) -> Path:
    out = tmp_path_factory.mktemp("indexes") / "dense"
    build_dense_index(corpus, out, BiEncoder(tiny_model, device="cpu"))
    return out


@pytest.fixture(scope="module")
def bm25_index(tmp_path_factory, corpus) -> Path:
    pytest.importorskip("pyserini", reason="BM25 needs the bm25 extra (pyserini)")
    from rankkit.index.bm25 import build_bm25_index

    out = tmp_path_factory.mktemp("indexes") / "bm25"
    build_bm25_index(corpus, out)
    return out


def moved_corpus_index(tmp_path: Path, sample_dir: Path, tiny_model: Path) -> Path:
    """A dense index whose corpus was deleted after the build."""
    corpus = tmp_path / "gone.tsv"
    shutil.copy(sample_dir / "collection.tsv", corpus)
    build_dense_index(corpus, tmp_path / "dense", BiEncoder(tiny_model, device="cpu"))
    corpus.unlink()
    return tmp_path / "dense"


# --- hit texts (the library) --------------------------------------------------------------------


def test_shorten():
    from rankkit.retrieve.texts import shorten

    assert shorten("  short\n text ") == "short text"
    long = "word " * 40
    cut = shorten(long, 30)
    assert len(cut) <= 30 and cut.endswith("word…")
    assert shorten("x" * 200, 50) == "x" * 49 + "…"  # one long word is cut inside it


def test_find_documents_reads_only_until_all_are_found(tmp_path):
    from rankkit.data.corpus import find_documents

    tsv = tmp_path / "c.tsv"
    tsv.write_text("a\tfirst\nb\tsecond\nc\tthird\nnot a document line\n")  # the bad line is never reached
    assert [(d.docid, d.text) for d in find_documents(tsv, {"b", "a", "zz"})] == [("a", "first"), ("b", "second")]
    assert [d.docid for d in find_documents(tsv, {"c"})] == ["c"]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(
        '{"_id": "caf\\u00e9", "title": "T", "text": "x"}\n{"_id": "d2", "title": "", "text": "y"}\n'
        '{"_id": "d3", broken\n'
    )
    assert [(d.docid, d.contents) for d in find_documents(jsonl, ["café", "d2"])] == [("café", "T x"), ("d2", "y")]
    assert list(find_documents(jsonl, [])) == []


def test_hit_texts_of_a_dense_index(dense_index, texts):
    from rankkit.retrieve.texts import hit_texts

    found = hit_texts(dense_index, ["s001", "s042"])
    assert found.texts == {"s001": texts["s001"], "s042": texts["s042"]} and found.warning is None


def test_hit_texts_of_a_bm25_index(bm25_index, texts):
    from rankkit.retrieve.texts import hit_texts

    found = hit_texts([bm25_index], ["s080"])
    assert found.texts == {"s080": texts["s080"]} and found.warning is None


def test_hit_texts_when_the_corpus_is_gone(tmp_path, sample_dir, tiny_model):
    from rankkit.retrieve.texts import hit_texts

    found = hit_texts(moved_corpus_index(tmp_path, sample_dir, tiny_model), ["s001"])
    assert found.texts == {}
    assert "gone.tsv" in found.warning and "is gone" in found.warning and "Fix:" in found.warning


def test_hit_texts_when_the_corpus_changed(tmp_path, sample_dir, tiny_model):
    from rankkit.retrieve.texts import hit_texts

    corpus = tmp_path / "c.tsv"
    shutil.copy(sample_dir / "collection.tsv", corpus)
    build_dense_index(corpus, tmp_path / "dense", BiEncoder(tiny_model, device="cpu"))
    corpus.write_text("s001\tother text\n")
    found = hit_texts(tmp_path / "dense", ["s001", "s002"])
    assert found.texts == {"s001": "other text"}
    assert "changed since the index was built" in found.warning


# --- search -q: texts and -o ----------------------------------------------------------------------


def test_search_query_prints_each_hits_text(dense_index, texts):
    result = cli("search", "-i", dense_index, "-q", "how do stars form", "-k", "3", "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if re.search(r"\bs\d{3}\b", line)]
    assert len(rows) == 3
    for row in rows:
        docid = re.search(r"\b(s\d{3})\b", row).group(1)
        assert " ".join(texts[docid].split())[:40] in row  # the text's start, beside its docid


def test_search_query_on_bm25_prints_texts(bm25_index, texts):
    result = cli("search", "-i", bm25_index, "-q", "protostar hydrogen fusion", "-k", "2")
    assert result.exit_code == 0, result.output
    docid = re.search(r"\b(s\d{3})\b", result.stdout).group(1)
    assert " ".join(texts[docid].split())[:40] in result.stdout


def test_search_query_without_the_corpus_warns_once(tmp_path, sample_dir, tiny_model):
    index = moved_corpus_index(tmp_path, sample_dir, tiny_model)
    result = cli("search", "-i", index, "-q", "stars", "-k", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "text" not in result.stdout.split("\n", 3)[2]  # no text column
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "gone.tsv" in warnings[0] and "is gone" in warnings[0]


def test_search_query_with_output_writes_a_run(dense_index, tmp_path):
    out = tmp_path / "one.trec"
    result = cli("search", "-i", dense_index, "-q", "stars", "-k", "4", "-o", out, "--device", "cpu", "--tag", "t")
    assert result.exit_code == 0, result.output
    run = read_run(out)
    assert list(run) == ["1"] and len(run["1"]) == 4
    assert f"wrote 4 hits for the query (query id 1) to {out}" in result.stdout
    assert out.read_text().split("\n")[0].split()[-1] == "t"


# --- eval ---------------------------------------------------------------------------------------


def write_run_file(path: Path, hits_per_query: dict[str, int]) -> Path:
    lines = [f"{qid} Q0 d{rank} {rank} {100 - rank} x" for qid, n in hits_per_query.items() for rank in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def eval_files(tmp_path):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("".join(f"{q} 0 d{r} 1\n" for q in ("q1", "q2", "q3", "q4") for r in (1, 40)))
    deep = write_run_file(tmp_path / "dense.trec", {q: 100 for q in ("q1", "q2", "q3", "q4")})
    return qrels, deep


def test_depth_warning_when_bm25_matched_fewer_than_k(eval_files, tmp_path):
    qrels, deep = eval_files
    # searched with -k 100, BM25 matched at most 26 passages (fewer for most queries)
    matched = write_run_file(tmp_path / "bm25.trec", {"q1": 26, "q2": 9, "q3": 14, "q4": 3})
    result = cli("eval", matched, deep, qrels, "-m", "R@100", "-m", "RR@10")
    assert result.exit_code == 0, result.output
    warning = one_line(result.stderr)
    assert "bm25.trec: 26, dense.trec: 100" in warning
    assert "-k 26" not in warning  # the run already went deeper than it matched
    assert "fewer hits than the cutoff because the retriever matched fewer documents" in warning
    assert "Fix: compare with cutoffs up to 26" in warning


def test_depth_warning_when_a_run_was_cut_by_k(eval_files, tmp_path):
    qrels, deep = eval_files
    cut = write_run_file(tmp_path / "cut.trec", {q: 20 for q in ("q1", "q2", "q3", "q4")})
    warning = one_line(cli("eval", cut, deep, qrels, "-m", "R@100").stderr)
    assert "search it again with -k 100" in warning and "cutoffs up to 20" in warning


def test_eval_says_which_measures_it_used_by_default(eval_files):
    qrels, deep = eval_files
    result = cli("eval", deep, qrels)
    assert result.exit_code == 0, result.output
    assert "measures: RR@10, R@1000 (the msmarco preset; choose others with --preset or -m)" in one_line(result.stderr)
    assert "measures:" not in cli("eval", deep, qrels, "-m", "P@5").stderr


def test_eval_help_says_m_replaces_the_default_preset():
    text = one_line(cli("eval", "--help").stdout)
    assert "Alone, -m replaces the default preset's measures (msmarco: RR@10, R@1000)" in text
    assert "Default: msmarco, unless -m is given" in text


# --- /sentiment without a model -----------------------------------------------------------------


def test_sentiment_without_a_model_names_the_flag():
    pytest.importorskip("fastapi", reason="serving needs the serve extra (fastapi)")
    from fastapi.testclient import TestClient

    from rankkit.serve.app import create_app
    from rankkit.serve.config import ServeConfig

    app = create_app(ServeConfig())
    client = TestClient(app)  # no lifespan: nothing loads, /sentiment does not need it
    response = client.post("/sentiment", json={"texts": ["valo"]})
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "this server has no sentiment model, so it does not serve /sentiment",
            "fix": "start the server with --sentiment-model FOLDER (a folder `rankkit sentiment train` wrote)",
        }
    }
    assert "/sentiment" not in app.openapi()["paths"]


# --- the search page ----------------------------------------------------------------------------

PAGE_HARNESS = r"""
const vm = require("vm");
const fs = require("fs");
const [script, search, health] = [fs.readFileSync(process.argv[2], "utf8"), process.argv[3], process.argv[4]];
class Element {
  constructor(tag, id) { this.tag = tag; this.id = id; this.children = []; this.value = ""; this.checked = false;
                         this.textContent = ""; this.className = ""; this.listeners = {}; }
  addEventListener(type, listener) { this.listeners[type] = listener; }
  replaceChildren(...items) { this.children = items; if (this.tag === "select") this.value = items.length ? items[0].value : ""; }
  append(...items) { this.children.push(...items); }
  get options() { return this.children; }
}
const elements = {};
for (const [id, tag] of [["search-form", "form"], ["query", "input"], ["mode", "select"], ["k", "input"],
                         ["rerank", "input"], ["api-key", "input"], ["status", "p"], ["results", "div"],
                         ["reranker-note", "span"]]) {
  elements[id] = new Element(tag, id);
}
elements.k.value = "10";
const calls = [], urls = [];
const context = {
  document: { getElementById: (id) => elements[id], createElement: (tag) => new Element(tag) },
  window: { location: { search } },
  history: { replaceState: (state, title, url) => urls.push(url) },
  performance: { now: () => 0 },
  URLSearchParams, JSON, Math, Number, Array, console,
  fetch: async (url, init) => {
    calls.push({ url, body: init && init.body ? JSON.parse(init.body) : null });
    if (url === "/health") return { ok: true, json: async () => JSON.parse(health) };
    return { ok: true, json: async () => ({ hits: [{ rank: 1, docid: "s1", score: 1, text: "t" }], mode: "bm25",
                                           reranked: false }) };
  },
};
vm.createContext(context);
vm.runInContext(script, context);
setTimeout(async () => {
  const labels = elements.mode.children.map((o) => [o.value, o.textContent]);
  const before = calls.length;
  elements.query.value = "sky blue"; elements.mode.value = "hybrid"; elements.k.value = "5";
  await elements["search-form"].listeners.submit({ preventDefault() {} });
  console.log(JSON.stringify({ labels, onLoad: calls.slice(0, before), submitted: calls.slice(before), urls,
                               status: elements.status.textContent, note: elements["reranker-note"].textContent,
                               noteClass: elements["reranker-note"].className }));
}, 50);
"""


def run_page(tmp_path: Path, search: str, modes: list[str], **health_fields) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("the page's script runs under Node.js, which is not installed")
    from rankkit.serve.page import SCRIPT

    (tmp_path / "page.js").write_text(SCRIPT)
    (tmp_path / "harness.js").write_text(PAGE_HARNESS)
    health = json.dumps({"status": "ready", "modes": modes, **health_fields})
    done = subprocess.run(
        [node, str(tmp_path / "harness.js"), str(tmp_path / "page.js"), search, health],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_page_names_the_default_mode():
    from rankkit.serve.page import SEARCH_PAGE

    assert '<option value="">default</option>' not in SEARCH_PAGE
    assert "default (the first index)" in SEARCH_PAGE  # before /health answers


def test_page_labels_the_servers_modes(tmp_path):
    page = run_page(tmp_path, "", ["dense", "bm25", "hybrid"])
    assert page["labels"] == [["dense", "dense (default)"], ["bm25", "bm25"], ["hybrid", "hybrid"]]
    page = run_page(tmp_path, "", ["bm25"])
    assert page["labels"] == [["bm25", "bm25 (default)"]]


DEV = {"measure": "nDCG@10", "reranker": 0.702, "first_stage": 0.676, "queries": 100, "improves": True}


@pytest.mark.parametrize(
    "health, note, warns",
    [
        ({"reranker": False, "reranker_dev": None}, "(no reranker)", False),
        ({"reranker": True, "reranker_dev": None}, "(reranker without a dev record: its quality is unknown)", False),
        ({"reranker": True, "reranker_dev": DEV}, "(dev nDCG@10 0.702 vs 0.676 first stage)", False),
        (
            {"reranker": True, "reranker_dev": {**DEV, "reranker": 0.199, "improves": False}},
            "(WORSE on dev: nDCG@10 0.199 vs 0.676 first stage)",
            True,
        ),
    ],
)
def test_page_shows_the_rerankers_dev_record(tmp_path, health, note, warns):
    page = run_page(tmp_path, "", ["bm25"], **health)
    assert page["note"] == note and ("warn" in page["noteClass"]) is warns
    assert page["labels"] == [["bm25", "bm25 (default)"]]


def test_page_runs_the_search_in_its_address_and_keeps_new_ones_there(tmp_path):
    page = run_page(tmp_path, "?q=why+is+the+sky+blue&mode=bm25&rerank=1", ["dense", "bm25", "hybrid"])
    assert page["onLoad"][0]["url"] == "/health"
    assert page["onLoad"][1] == {
        "url": "/search",
        "body": {"query": "why is the sky blue", "k": 10, "rerank": True, "text": True, "mode": "bm25"},
    }
    assert page["status"].startswith("1 results (bm25)")
    assert page["submitted"][0]["body"]["query"] == "sky blue"
    assert page["urls"] == ["?q=sky+blue&mode=hybrid&k=5&rerank=1"]


def test_page_without_a_query_in_its_address_does_not_search(tmp_path):
    page = run_page(tmp_path, "", ["dense"])
    assert [call["url"] for call in page["onLoad"]] == ["/health"]


# --- sentiment plots ----------------------------------------------------------------------------


def test_sentiment_plots_carry_the_models_name(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from rankkit.sentiment.metrics import plot_curves

    titles, legends = [], []
    original = Figure.savefig

    def recording_savefig(self, *args, **kwargs):
        for axis in self.axes:
            titles.append(axis.get_title())
            legend = axis.get_legend()
            legends.extend(t.get_text() for t in legend.get_texts()) if legend else None
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording_savefig)
    plot_curves([0, 1, 0, 1, 1, 0], [0.1, 0.9, 0.4, 0.6, 0.8, 0.3], tmp_path, name="contrastive (all-MiniLM-L6-v2)")
    assert titles == [
        "contrastive (all-MiniLM-L6-v2): ROC curve",
        "contrastive (all-MiniLM-L6-v2): precision-recall curve",
        "contrastive (all-MiniLM-L6-v2): reliability",
    ]
    assert not any("Classifier" in text for text in legends)
    assert any("contrastive (all-MiniLM-L6-v2)" in text for text in legends)


@pytest.mark.parametrize(
    "meta, name",
    [
        ({"kind": "tfidf"}, "tfidf"),
        ({"kind": "transformer", "method": "contrastive", "base_model": "default"}, "contrastive (all-MiniLM-L6-v2)"),
        ({"kind": "transformer", "method": "plain", "base_model": "/m/my-encoder"}, "plain (my-encoder)"),
    ],
)
def test_sentiment_model_name(tmp_path, meta, name):
    from rankkit.sentiment.metrics import model_name

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "sentiment.json").write_text(json.dumps({"format": "rankkit-sentiment", **meta}))
    assert model_name(tmp_path) == name


# --- progress -----------------------------------------------------------------------------------


class CountingRetriever:
    name = "fake:counting"

    def __init__(self) -> None:
        self.batches: list[int] = []

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self.batch_search({"q": query}, k)["q"]

    def batch_search(self, queries, k=10):
        self.batches.append(len(queries))
        return {qid: [Hit(f"d{len(text)}", 1.0)][:k] for qid, text in queries.items()}


def test_search_with_progress_shows_a_bar_over_many_queries(capsys):
    from rankkit.retrieve.progress import search_with_progress

    queries = {f"q{i}": "x" * i for i in range(300)}
    retriever = CountingRetriever()
    run = search_with_progress(retriever, queries, 5, chunk_size=128)
    assert run == CountingRetriever().batch_search(queries, 5)  # the same run as one batch
    assert retriever.batches == [128, 128, 44]
    err = capsys.readouterr().err
    assert "searching: 100%" in err and "300/300" in err


def test_search_with_progress_is_silent_for_a_few_queries(capsys):
    from rankkit.retrieve.progress import search_with_progress

    retriever = CountingRetriever()
    search_with_progress(retriever, {"q1": "a", "q2": "b"}, 5)
    assert retriever.batches == [2] and capsys.readouterr().err == ""


def test_mining_candidates_show_progress(capsys):
    from rankkit.mining.candidates import candidates_from_retriever

    candidates = candidates_from_retriever(CountingRetriever(), {f"q{i}": "x" * i for i in range(100)}, 3)
    assert len(candidates) == 100
    assert "retrieving candidates: 100%" in capsys.readouterr().err


def test_cli_search_over_a_queries_file_shows_progress(dense_index, tmp_path):
    queries = tmp_path / "queries.tsv"
    queries.write_text("".join(f"{i}\tstars and galaxies number {i}\n" for i in range(60)))
    result = cli("search", "-i", dense_index, "--queries", queries, "-o", tmp_path / "run.trec", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "searching: 100%" in result.stderr and len(read_run(tmp_path / "run.trec")) == 60
