"""Index integrity (issue 13): manifests record each file's size and SHA-256; opening checks sizes,
`verify` checksums and counts; FAISS and Lucene load errors become one message naming the file
and the rebuild."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.data.files import sha256_file
from rankkit.errors import RankkitError
from rankkit.index.dense import DOCIDS_FILE, INDEX_FILE, DenseIndex, build_dense_index
from rankkit.index.manifest import MANIFEST, Manifest
from rankkit.index.verify import verify


@pytest.fixture(scope="module")
def built_dense(tmp_path_factory, sample_dir, tiny_model) -> Path:
    from rankkit.encode import BiEncoder

    out = tmp_path_factory.mktemp("integrity") / "dense"
    build_dense_index(sample_dir / "collection.tsv", out, BiEncoder(tiny_model, device="cpu"))
    return out


@pytest.fixture(scope="module")
def built_bm25(tmp_path_factory, sample_dir) -> Path:
    pytest.importorskip("pyserini", reason="BM25 needs the bm25 extra")
    from rankkit.index.bm25 import build_bm25_index

    out = tmp_path_factory.mktemp("integrity") / "bm25"
    build_bm25_index(sample_dir / "collection.tsv", out)
    return out


def _copy(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / source.name))


def _edit_manifest(folder: Path, **changes) -> None:
    data = json.loads((folder / MANIFEST).read_text())
    data.update(changes)
    (folder / MANIFEST).write_text(json.dumps(data))


def _largest_segment_file(folder: Path) -> Path:
    return max((p for p in (folder / "lucene").iterdir() if p.is_file()), key=lambda p: p.stat().st_size)


def test_manifest_records_every_file_with_size_and_checksum(built_dense, built_bm25):
    dense = Manifest.read(built_dense)
    assert set(dense.files) == {INDEX_FILE, DOCIDS_FILE}
    for name, record in dense.files.items():
        assert record == {"size": (built_dense / name).stat().st_size, "sha256": sha256_file(built_dense / name)}
    bm25 = Manifest.read(built_bm25)
    assert bm25.files and all(name.startswith("lucene/") for name in bm25.files)


def test_verify_passes_a_good_index(built_dense, built_bm25):
    for folder in (built_dense, built_bm25):
        report = verify(folder)
        assert report.checksums and report.files_checked == len(Manifest.read(folder).files) and not report.notes


def _damage(folder: Path, damage: str) -> str:
    """Damage a dense index; returns the file the error must name."""
    faiss_file, docids = folder / INDEX_FILE, folder / DOCIDS_FILE
    if damage == "faiss missing":
        faiss_file.unlink()
    elif damage == "faiss truncated":
        faiss_file.write_bytes(faiss_file.read_bytes()[:200])
    elif damage == "faiss garbage":
        faiss_file.write_bytes(
            b"\x00garbage" * (faiss_file.stat().st_size // 8) + b"\x00" * (faiss_file.stat().st_size % 8)
        )
    elif damage == "docids missing":
        docids.unlink()
    elif damage == "docids changed":
        lines = docids.read_text().splitlines()
        docids.write_text("\n".join(reversed(lines)) + "\n")  # same size, other content
        return DOCIDS_FILE
    return INDEX_FILE if damage.startswith("faiss") else DOCIDS_FILE


@pytest.mark.parametrize(
    "damage", ["faiss missing", "faiss truncated", "faiss garbage", "docids missing", "docids changed"]
)
def test_damaged_dense_index_names_the_file_and_the_rebuild(built_dense, tmp_path, damage):
    folder = _copy(built_dense, tmp_path)
    name = _damage(folder, damage)
    with pytest.raises(RankkitError) as info:
        verify(folder)
    assert str(folder / name) in str(info.value) and "Fix: rebuild the index (rankkit index build" in str(info.value)
    if damage != "docids changed":  # same size: only the checksum sees it
        with pytest.raises(RankkitError, match="rebuild"):
            DenseIndex(folder)


def test_garbage_faiss_file_is_caught_at_the_faiss_boundary(built_dense, tmp_path):
    folder = _copy(built_dense, tmp_path)
    size = (folder / INDEX_FILE).stat().st_size
    (folder / INDEX_FILE).write_bytes((b"garbage" * size)[:size])  # the recorded size: only FAISS sees it
    with pytest.raises(RankkitError, match=f"{INDEX_FILE}: FAISS cannot read it"):
        DenseIndex(folder)


def test_manifest_kind_that_does_not_match_the_files(built_dense, built_bm25, tmp_path):
    dense = _copy(built_dense, tmp_path)
    _edit_manifest(dense, kind="bm25")
    with pytest.raises(RankkitError, match="lucene: missing: the manifest says this is a bm25 index"):
        verify(dense)
    bm25 = _copy(built_bm25, tmp_path)
    _edit_manifest(bm25, kind="dense")
    with pytest.raises(RankkitError, match="index.faiss: missing.*dense index"):
        DenseIndex(bm25)


def test_document_count_that_disagrees(built_dense, built_bm25, tmp_path):
    from rankkit.index.bm25 import open_lucene_searcher

    dense = _copy(built_dense, tmp_path)
    _edit_manifest(dense, count=81)
    with pytest.raises(RankkitError, match="the manifest says 81 documents, but index.faiss holds 80"):
        DenseIndex(dense)
    bm25 = _copy(built_bm25, tmp_path)
    _edit_manifest(bm25, count=79)
    with pytest.raises(RankkitError, match="the manifest says 79 documents, but the Lucene index holds 80"):
        open_lucene_searcher(bm25)


@pytest.mark.parametrize("damage", ["segment missing", "segment truncated", "segment garbage", "lucene missing"])
def test_damaged_bm25_index(built_bm25, tmp_path, damage):
    from rankkit.index.bm25 import open_lucene_searcher

    folder = _copy(built_bm25, tmp_path)
    segment = _largest_segment_file(folder)
    if damage == "segment missing":
        segment.unlink()
    elif damage == "segment truncated":
        segment.write_bytes(segment.read_bytes()[:10])
    elif damage == "segment garbage":
        segment.write_bytes(bytes(segment.stat().st_size))
    else:
        shutil.rmtree(folder / "lucene")
    with pytest.raises(RankkitError) as info:
        verify(folder)
    named = folder / "lucene" if damage == "lucene missing" else segment
    assert str(named) in str(info.value) and "rebuild" in str(info.value)
    if damage != "segment garbage":
        with pytest.raises(RankkitError, match="rebuild"):
            open_lucene_searcher(folder)


def test_lucene_errors_are_caught_at_the_boundary(built_bm25, tmp_path):
    from rankkit.index.bm25 import open_lucene_searcher

    folder = _copy(built_bm25, tmp_path)
    files = Manifest.read(folder).files  # unrecorded segments_N files: no size check sees them go
    _edit_manifest(
        folder, files={name: record for name, record in files.items() if not Path(name).name.startswith("segments_")}
    )
    for segment in (folder / "lucene").glob("segments_*"):
        segment.unlink()
    with pytest.raises(RankkitError, match="lucene: Lucene cannot open it.*rebuild"):
        open_lucene_searcher(folder)


def test_manifest_that_records_no_files_is_refused(built_dense, tmp_path):
    folder = _copy(built_dense, tmp_path)
    _edit_manifest(folder, files={})
    for check in (DenseIndex, verify):
        with pytest.raises(RankkitError, match="manifest.json: records no files.*Fix: rebuild the index"):
            check(folder)


def test_index_verify_command(built_dense, tmp_path):
    runner = CliRunner()
    good = runner.invoke(app, ["index", "verify", str(built_dense)])
    assert good.exit_code == 0 and "ok: dense index" in good.output and "SHA-256" in good.output
    folder = _copy(built_dense, tmp_path)
    (folder / INDEX_FILE).write_bytes(b"x")
    bad = runner.invoke(app, ["index", "verify", str(folder)])
    assert bad.exit_code == 2 and "error:" in bad.stderr and "rebuild" in bad.stderr
    assert "Traceback" not in bad.output
