"""A folder of the user's own text files (.txt, .md) is a corpus wherever a corpus file is: read,
detected, indexed (BM25 and dense), searched with the hits' texts shown, and quickstarted (which,
without queries, builds both indexes and says how to search them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankkit.data.corpus import detect_corpus_format, read_corpus, read_doc_texts
from rankkit.encode import BiEncoder
from rankkit.errors import RankkitError
from rankkit.index.dense import DenseIndex, build_dense_index
from rankkit.index.manifest import CorpusInfo, Manifest
from rankkit.retrieve.dense import DenseRetriever

runner = CliRunner()


def needs_pyserini() -> None:
    pytest.importorskip("pyserini", reason="BM25 needs the bm25 extra (pyserini)")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.fixture
def notes(tmp_path) -> Path:
    """A small folder of notes: markdown with and without headings, text files, a subfolder, and
    files that are no documents (another extension, hidden)."""
    root = tmp_path / "notes"
    write(root / "stars.md", "# How stars form\n\nStars form when clouds of hydrogen collapse under gravity.\n")
    write(root / "bread.txt", "Yeast makes bread rise.\nKnead the dough for ten minutes.\n")
    write(root / "kitchen" / "soup.md", "\n## Tomato soup ##\r\nSimmer tomatoes with onions and garlic.\r\n")
    write(root / "kitchen" / "tea.TXT", "Green tea steeps for two minutes at 80 degrees.")
    write(root / "kitchen" / "photo.jpg", b"\xff\xd8\xff\xe0 not text")
    write(root / ".obsidian" / "config.md", "# hidden settings")
    write(root / ".draft.md", "# hidden draft")
    return root


# --- reading ------------------------------------------------------------------------------------


def test_a_folder_is_detected_as_a_folder_corpus(notes):
    assert detect_corpus_format(notes) == "folder"


def test_folder_documents_ids_titles_and_texts(notes):
    docs = {d.docid: d for d in read_corpus(notes)}
    assert list(docs) == ["bread.txt", "kitchen/soup.md", "kitchen/tea.TXT", "stars.md"]  # sorted, POSIX paths
    assert (docs["stars.md"].title, docs["stars.md"].text) == (
        "How stars form",
        "Stars form when clouds of hydrogen collapse under gravity.",
    )
    assert (docs["kitchen/soup.md"].title, docs["kitchen/soup.md"].text) == (
        "Tomato soup",
        "Simmer tomatoes with onions and garlic.",
    )  # closing #s, CRLF and a blank first line
    assert docs["bread.txt"].title == ""  # no heading: no title, the whole file is the text
    assert docs["bread.txt"].text == "Yeast makes bread rise.\nKnead the dough for ten minutes."
    assert docs["stars.md"].contents == "How stars form Stars form when clouds of hydrogen collapse under gravity."


def test_a_hash_without_a_space_is_no_heading(tmp_path):
    write(tmp_path / "tags.md", "#todo buy milk\nand eggs")
    (doc,) = read_corpus(tmp_path)
    assert (doc.title, doc.text) == ("", "#todo buy milk\nand eggs")


def test_byte_order_mark_is_dropped(tmp_path):
    write(tmp_path / "a.md", b"\xef\xbb\xbf# Title\nbody")
    (doc,) = read_corpus(tmp_path)
    assert (doc.title, doc.text) == ("Title", "body")


def test_read_doc_texts_opens_only_the_wanted_files(notes):
    write(notes / "broken.txt", b"caf\xe9 latin-1")  # would fail if it were read
    assert read_doc_texts(notes, docids={"stars.md", "kitchen/tea.TXT", "missing.md", "../outside.md"}) == {
        "stars.md": "How stars form Stars form when clouds of hydrogen collapse under gravity.",
        "kitchen/tea.TXT": "Green tea steeps for two minutes at 80 degrees.",
    }


# --- errors -------------------------------------------------------------------------------------


def test_empty_folder_is_one_clear_error(tmp_path):
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(tmp_path))
    message = str(excinfo.value)
    assert str(tmp_path) in message and "no .txt or .md files" in message and "Fix:" in message


def test_folder_without_text_files_names_what_it_holds(tmp_path):
    write(tmp_path / "paper.pdf", b"%PDF-1.4")
    with pytest.raises(RankkitError, match=r"no \.txt or \.md files \(it holds 1 other files, e\.g\. paper\.pdf\)"):
        list(read_corpus(tmp_path))


def test_undecodable_file_names_the_file_and_the_fix(notes):
    bad = write(notes / "kitchen" / "old.txt", b"line one\ncaf\xe9 au lait\n")
    with pytest.raises(RankkitError) as excinfo:
        list(read_corpus(notes))
    message = str(excinfo.value)
    assert f"{bad}:2" in message and "not valid UTF-8" in message and "Fix: re-encode the file as UTF-8" in message


def test_a_collection_folder_is_not_read_as_text_files(sample_dir):
    with pytest.raises(RankkitError, match="collection.tsv"):
        list(read_corpus(sample_dir))


def test_a_file_format_for_a_folder_is_refused(notes):
    with pytest.raises(RankkitError, match="drop --format"):
        list(read_corpus(notes, "tsv"))


def test_file_names_with_spaces_are_refused_for_indexes(tmp_path):
    write(tmp_path / "my notes.md", "# Notes\nsome text")
    assert [d.docid for d in read_corpus(tmp_path)] == ["my notes.md"]  # reading is fine
    with pytest.raises(RankkitError, match="rename it without spaces"):
        list(read_corpus(tmp_path, word_ids=True))


def test_manifest_checksum_follows_the_folders_files(notes):
    before = CorpusInfo.of(notes, "folder")
    assert before.path == str(notes.resolve()) and before.size_bytes > 0
    assert CorpusInfo.of(notes, "folder") == before
    write(notes / "stars.md", "# How stars form\n\nedited")
    assert CorpusInfo.of(notes, "folder").sha256 != before.sha256


# --- indexes and search -------------------------------------------------------------------------


def test_dense_index_of_a_folder(notes, tmp_path, tiny_model):
    encoder = BiEncoder(tiny_model, device="cpu")
    manifest = build_dense_index(notes, tmp_path / "dense", encoder)
    assert (manifest.count, manifest.corpus.format) == (4, "folder")
    hits = DenseRetriever(DenseIndex(tmp_path / "dense"), encoder).search("tomato soup", 4)
    assert {h.docid for h in hits} == {"bread.txt", "kitchen/soup.md", "kitchen/tea.TXT", "stars.md"}


def test_bm25_index_of_a_folder(notes, tmp_path):
    needs_pyserini()
    from rankkit.index.bm25 import build_bm25_index
    from rankkit.retrieve.bm25 import BM25Retriever

    manifest = build_bm25_index(notes, tmp_path / "bm25")
    assert (manifest.count, manifest.corpus.format) == (4, "folder")
    assert BM25Retriever(tmp_path / "bm25").search("hydrogen gravity", 2)[0].docid == "stars.md"
    assert BM25Retriever(tmp_path / "bm25").search("tomato", 2)[0].docid == "kitchen/soup.md"  # title indexed


def cli(*args: str | Path):
    from rankkit.cli.app import app

    return runner.invoke(app, [str(a) for a in args])


def test_cli_index_build_and_search_a_folder(notes, tmp_path, tiny_model, monkeypatch):
    needs_pyserini()
    # in the default place, indexes/FOLDER-KIND; a process of its own, as Lucene resolves relative
    # paths against the folder its JVM started in
    built = subprocess.run(
        [sys.executable, "-m", "rankkit.cli", "index", "build", str(notes), "--kind", "bm25"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    assert "notes-bm25" in built.stdout and "4 documents" in built.stdout
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "indexes"
    built = cli("index", "build", notes, "--kind", "dense", "--model", tiny_model, "--device", "cpu")
    assert built.exit_code == 0, built.output
    assert Manifest.read(out / "notes-dense").corpus.format == "folder"
    found = cli("search", "-i", out / "notes-bm25", "-q", "hydrogen gravity", "-k", "2")
    assert found.exit_code == 0, found.output
    assert "stars.md" in found.stdout and "How stars form Stars form when clouds" in found.stdout
    found = cli("search", "-i", out / "notes-dense", "-q", "tea", "-k", "4", "--device", "cpu")
    assert found.exit_code == 0, found.output
    assert "Green tea steeps for two minutes" in found.stdout


# --- quickstart ---------------------------------------------------------------------------------


def test_quickstart_on_a_folder_builds_both_indexes_and_says_how_to_search(notes, tmp_path, tiny_model):
    needs_pyserini()
    from rankkit.quickstart import QuickstartConfig, run_quickstart

    result = run_quickstart(
        QuickstartConfig(data=str(notes), output=str(tmp_path / "qs"), model=str(tiny_model), device="cpu")
    )
    assert result.evaluations == {}
    assert set(result.indexes) == {"bm25", "dense"}
    for kind, folder in result.indexes.items():
        manifest = Manifest.read(folder)
        assert (manifest.kind, manifest.count, manifest.corpus.path) == (kind, 4, str(notes.resolve()))
    bm25, dense = result.indexes["bm25"], result.indexes["dense"]
    assert result.search_commands == [
        f"rankkit search -i {bm25} -q 'Tomato soup'",
        f"rankkit search -i {dense} -q 'Tomato soup'",
        f"rankkit search -i {bm25} -i {dense} -q 'Tomato soup'",
    ]
    assert not (tmp_path / "qs" / "report.json").exists()
    assert json.loads((tmp_path / "qs" / "config.json").read_text())["collection"] == str(notes)


def test_cli_quickstart_on_a_folder_prints_the_search_commands(notes, tmp_path, tiny_model):
    needs_pyserini()
    out = tmp_path / "qs"
    result = cli("quickstart", "--data", notes, "--output", out, "--model", tiny_model, "--device", "cpu")
    assert result.exit_code == 0, result.output
    command = f"rankkit search -i {out / 'indexes' / 'notes-bm25'} -q 'Tomato soup'"
    assert command in result.stdout
    found = cli(*command.split(" -q ")[0].split()[1:], "-q", "Tomato soup")
    assert found.exit_code == 0 and "kitchen/soup.md" in found.stdout


def test_quickstart_on_an_empty_folder_names_both_layouts(tmp_path):
    from rankkit.quickstart import QuickstartConfig, run_quickstart

    (tmp_path / "empty").mkdir()
    with pytest.raises(RankkitError) as excinfo:
        run_quickstart(QuickstartConfig(data=str(tmp_path / "empty"), output=str(tmp_path / "qs")))
    message = str(excinfo.value)
    assert "no .txt or .md files" in message and "collection.tsv" in message and "BEIR" in message
    assert not (tmp_path / "qs").exists()


def test_a_server_of_a_folder_index_returns_its_texts(notes, tmp_path, tiny_model):
    # regression: the server loaded texts only from a corpus *file*, so a folder index served none
    from rankkit.serve.config import ServeConfig
    from rankkit.serve.engine import SearchEngine

    build_dense_index(notes, tmp_path / "dense", BiEncoder(tiny_model, device="cpu"))
    engine = SearchEngine(ServeConfig(indexes=(str(tmp_path / "dense"),), device="cpu"))
    assert engine.doc_texts == read_doc_texts(notes) and engine.doc_texts
