"""Smaller reliability fixes: a manifest whose dimension contradicts the index file; a FIFO or a
device in place of an index file (said as such, never read); default index folders stay inside
indexes/; --negatives above what the MinedSet holds is said; a BOM in a sentiment CSV; trained
model files follow the umask."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from rankkit.data.files import _umask, atomic_dir
from rankkit.errors import RankkitError
from rankkit.index.dense import INDEX_FILE, DenseIndex, build_dense_index
from rankkit.index.manifest import MANIFEST, Manifest
from rankkit.index.options import DEFAULT_INDEX_DIR, IndexBuild
from rankkit.index.verify import verify
from rankkit.mining.candidates import Candidate
from rankkit.mining.minedset import MinedQuery, MinedSet
from rankkit.sentiment.data import LabelSpec, read_reviews
from rankkit.train.examples import check_mined


@pytest.fixture(scope="module")
def dense(tmp_path_factory, sample_dir, tiny_model) -> Path:
    from rankkit.encode import BiEncoder

    out = tmp_path_factory.mktemp("smaller") / "dense"
    build_dense_index(sample_dir / "collection.tsv", out, BiEncoder(tiny_model, device="cpu"))
    return out


def _copy(folder: Path, into: Path) -> Path:
    return Path(shutil.copytree(folder, into / folder.name))


def test_a_manifest_whose_dimension_contradicts_the_index_is_refused(dense, tmp_path):
    folder = _copy(dense, tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    real = manifest["dimension"]
    manifest["dimension"] = real + 1
    (folder / MANIFEST).write_text(json.dumps(manifest))
    problem = rf"{MANIFEST}: the manifest says {real + 1} dimensions, but {INDEX_FILE} holds {real}.*Fix: rebuild"
    with pytest.raises(RankkitError, match=problem):
        verify(folder)
    with pytest.raises(RankkitError, match=problem):
        DenseIndex(folder)  # search and serve open it so


@pytest.mark.parametrize("what", ["fifo", "device", "folder"])
@pytest.mark.parametrize("name", [INDEX_FILE, MANIFEST])
def test_a_fifo_or_device_in_place_of_an_index_file_is_named_and_never_read(dense, tmp_path, what, name):
    folder = _copy(dense, tmp_path)
    (folder / name).unlink()
    if what == "fifo":
        os.mkfifo(folder / name)  # opening it to read would block for ever
    elif what == "device":
        (folder / name).symlink_to("/dev/zero")
    else:
        (folder / name).mkdir()
    said = {"fifo": "a named pipe (FIFO), not a file", "device": "a device (/dev/zero), not a file"}
    said["folder"] = "a folder, not a file"
    for check in (verify, DenseIndex) + ((Manifest.read,) if name == MANIFEST else ()):
        with pytest.raises(RankkitError, match=re.escape(f"{folder / name}: {said[what]}") + ".*Fix"):
            check(folder)


@pytest.mark.parametrize("corpus", ["../x.tsv", "irds:../../etc/passwd", "data/..", "..", "/", "irds:", "a/b/."])
def test_the_default_index_folder_is_always_inside_indexes(corpus):
    folder = IndexBuild(corpus=corpus, kind="bm25").folder()
    assert folder.parent == DEFAULT_INDEX_DIR and folder.name not in ("", ".", "..")


def _mined(counts: list[int]) -> MinedSet:
    return MinedSet(
        [
            MinedQuery(f"q{i}", f"query {i}", {"pos": 1}, [Candidate(f"d{j}", "bm25", j + 1, 1.0) for j in range(n)])
            for i, n in enumerate(counts)
        ]
    )


def test_negatives_above_what_the_minedset_holds_are_said(capsys):
    texts = {"pos": "p", **{f"d{j}": "n" for j in range(5)}}
    check_mined(_mined([5, 2, 3, 0]), texts, negatives=4)
    warning = capsys.readouterr().err
    assert "warning: 2 of 3 queries of the MinedSet hold fewer than --negatives 4 negatives (fewest 2)" in warning
    assert "with replacement" in warning and "Fix: pass --negatives 2" in warning
    check_mined(_mined([5, 4]), texts, negatives=4)
    assert capsys.readouterr().err == ""


def test_a_bom_in_a_sentiment_csv_is_stripped(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nvalo,1\nbaje,0\n")
    reviews = read_reviews(path, LabelSpec())
    assert reviews.texts == ["valo", "baje"] and reviews.labels == [1, 0]


def test_files_written_private_inside_an_output_follow_the_umask(tmp_path):
    with atomic_dir(tmp_path / "out") as folder:
        handle, _ = tempfile.mkstemp(dir=folder)  # as transformers' save_pretrained writes weights: 0600
        os.close(handle)
        (folder / "sub").mkdir(mode=0o700)
    for path in (tmp_path / "out").rglob("*"):
        usual = (0o777 if path.is_dir() else 0o666) & ~_umask()
        assert path.stat().st_mode & 0o777 == usual, path


def test_a_trained_model_safetensors_follows_the_umask(tmp_path, tiny_model):
    from test_data_loss import _sentiment

    model = _sentiment(tmp_path / "out", "transformer", model=str(tiny_model))
    weights = model / "model.safetensors"
    assert weights.stat().st_mode & 0o777 == 0o666 & ~_umask()


DAMAGED_MODELS = {
    "no weights file": lambda f: (f / "model.safetensors").unlink(),
    "garbage weights": lambda f: (f / "model.safetensors").write_bytes(b"garbage" * 100),
    "truncated weights": lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:-9]),
    "header length 2^62": lambda f: (f / "model.safetensors").write_bytes(
        (2**62).to_bytes(8, "little") + (f / "model.safetensors").read_bytes()[8:]
    ),
    "invalid config.json": lambda f: (f / "config.json").write_text("{not json"),
}


@pytest.mark.parametrize("case", list(DAMAGED_MODELS))
def test_a_damaged_model_folder_is_one_error_naming_the_file(tmp_path, tiny_model, case):
    from rankkit.encode import BiEncoder
    from rankkit.encode.crossencoder import CrossEncoder

    folder = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    DAMAGED_MODELS[case](folder)
    for load in (BiEncoder, CrossEncoder):  # index build, search, rerank, train and serve load so
        with pytest.raises(RankkitError, match=re.escape(str(folder)) + r".*Fix: save the model again"):
            load(folder, device="cpu")
