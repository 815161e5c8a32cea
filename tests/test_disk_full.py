"""A full disk: one error naming the output and the fix, wherever it strikes (rankkit's atomic
writers, libraries that report it without an errno, the CLI), with the earlier output kept and the
temporary files removed.

The disk is filled by injection: the temporary file of an atomic write is opened on /dev/full
(every write to it fails with the kernel's ENOSPC), or the disk reports no space left while a
library raises its own error (torch.save's RuntimeError). test_bm25_index_build_on_a_real_full_disk
fills a real (tmpfs) disk, where unprivileged mount namespaces allow it."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import temp_leftovers
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.data import files
from rankkit.data.files import DiskFullError, atomic_dir, atomic_write

runner = CliRunner()


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def hidden_leftovers(folder: Path) -> list[str]:
    """Temporary files and folders (.NAME.*.tmp), lock files and .old folders left in `folder`."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def fill_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on every atomic write's temporary file is /dev/full, and the disk reports no space left."""
    real_mkstemp = tempfile.mkstemp

    def mkstemp_on_dev_full(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp_on_dev_full)
    monkeypatch.setattr(files, "free_bytes", lambda folder: 0)


@pytest.fixture
def full_disk(monkeypatch):
    fill_disk(monkeypatch)


def assert_disk_full(message: str, output: Path, kept: str) -> None:
    assert message.startswith(f"{output}: no space left on the disk"), message
    assert kept in message and "Fix: free space on that disk" in message, message
    assert ".tmp" not in message  # names the output, not its temporary sibling


# --- the writers ------------------------------------------------------------------------------------


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, full_disk):
    path = tmp_path / "run.trec"
    path.write_text("old\n")
    with pytest.raises(DiskFullError) as caught:
        with atomic_write(path) as out:
            out.write("new\n")
    assert_disk_full(str(caught.value), path, "the earlier one is unchanged; temporary files removed")
    assert path.read_text() == "old\n" and temp_leftovers(tmp_path) == []


def test_atomic_write_of_a_new_file_on_a_full_disk_writes_nothing(tmp_path):
    path = tmp_path / "new.trec"
    with pytest.raises(DiskFullError) as caught:
        with atomic_write(path):
            raise no_space()  # the errno alone says it, whatever space the disk reports
    assert_disk_full(str(caught.value), path, "nothing was written")
    assert list(tmp_path.iterdir()) == []


def test_a_library_error_on_a_full_disk_is_the_disk_full_error(tmp_path, monkeypatch):
    # torch.save on a full disk raises RuntimeError("[enforce fail ...] unexpected pos"), no errno
    output = tmp_path / "index"
    with atomic_dir(output) as folder:
        (folder / "a").write_text("old")
    monkeypatch.setattr(files, "free_bytes", lambda folder: 0)
    with pytest.raises(DiskFullError) as caught:
        with atomic_dir(output, overwrite=True) as folder:
            (folder / "a").write_text("new")
            raise RuntimeError("basic_ios::clear: iostream error")
    assert_disk_full(str(caught.value), output, "the earlier one is unchanged")
    assert (output / "a").read_text() == "old" and hidden_leftovers(tmp_path) == []


def test_a_library_error_with_space_left_stays_itself(tmp_path):
    with pytest.raises(RuntimeError, match="iostream error"):
        with atomic_dir(tmp_path / "out"):
            raise RuntimeError("basic_ios::clear: iostream error")


def test_an_interrupt_on_a_full_disk_stays_an_interrupt(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "free_bytes", lambda folder: 0)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(tmp_path / "out"):
            raise KeyboardInterrupt
    assert hidden_leftovers(tmp_path) == []


def test_a_full_disk_inside_a_nested_output_names_the_outer_output(tmp_path):
    # train --overwrite: checkpoints and config.json are written inside the temporary output
    output = tmp_path / "out"
    with pytest.raises(DiskFullError) as caught:
        with atomic_dir(output, overwrite=True) as work:
            with atomic_write(work / "config.json"):
                raise no_space()
    assert_disk_full(str(caught.value), output, "nothing was written")
    assert list(tmp_path.iterdir()) == []


def test_no_room_for_the_temporary_folder_names_the_output(tmp_path, monkeypatch):
    def mkdtemp(*args, **kwargs):
        raise no_space()

    monkeypatch.setattr(files.tempfile, "mkdtemp", mkdtemp)
    with pytest.raises(DiskFullError, match="out: no space left"):
        with atomic_dir(tmp_path / "out"):
            raise AssertionError("must not start")


# --- training (fit: train, sentiment train with a transformer) -------------------------------------


def test_train_overwrite_on_a_full_disk_keeps_the_trained_model(tmp_path, monkeypatch):
    from test_data_loss import _fit

    output = tmp_path / "out"
    _fit(output)
    fill_disk(monkeypatch)
    model = (output / "model" / "linear.pt").read_bytes()
    with pytest.raises(DiskFullError) as caught:
        _fit(output, overwrite=True, lr=1e-3)
    assert_disk_full(str(caught.value), output, "the earlier one is unchanged")
    assert (output / "model" / "linear.pt").read_bytes() == model and hidden_leftovers(tmp_path) == []


def test_a_checkpoint_on_a_full_disk_names_the_checkpoint(tmp_path, monkeypatch):
    import torch
    from test_data_loss import _fit

    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        if Path(path).name == "state.pt":  # a checkpoint, not the model
            real_save(obj, path, *args, **kwargs)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 7923776 vs 7923728")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(files, "free_bytes", lambda folder: 0)
    output = tmp_path / "out"
    with pytest.raises(DiskFullError) as caught:
        _fit(output, checkpoint_every=1)
    assert_disk_full(str(caught.value), output / "checkpoints" / "step-1", "nothing was written")
    # a new output with no checkpoint to resume from is removed (config.json, the log, checkpoints/)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_keeps_the_checkpoint_it_can_resume_from(tmp_path, monkeypatch):
    from test_data_loss import _interrupted

    state = _interrupted(tmp_path / "out", monkeypatch)  # a RankkitError after step-2 was saved
    assert state.is_file() and (tmp_path / "out" / "config.json").is_file()


def test_a_failed_run_into_an_existing_output_leaves_it(tmp_path, monkeypatch):
    import json
    from dataclasses import asdict

    from test_data_loss import _fit
    from test_training import LinearTask

    from rankkit.train.config import TrainConfig

    output = tmp_path / "out"
    output.mkdir()
    earlier = json.dumps(asdict(TrainConfig(output=str(output))))  # an earlier run's unfinished output
    (output / "config.json").write_text(earlier)
    monkeypatch.setattr(LinearTask, "loss", lambda self, batch: (_ for _ in ()).throw(RuntimeError("diverged")))
    with pytest.raises(RuntimeError, match="diverged"):
        _fit(output)
    assert (output / "config.json").is_file()


# --- the commands -------------------------------------------------------------------------------------


def disk_full_exit(result, output: Path, kept: str) -> None:
    """Exit 2 with one 'error:' line naming `output` (after the progress bars), no traceback."""
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and result.stderr.count("error:") == 1, result.stderr
    assert_disk_full(last[len("error: ") :], output, kept)


def invoke(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def dense_index(tmp_path_factory, tiny_model, sample_dir) -> Path:
    out = tmp_path_factory.mktemp("disk-full") / "dense"
    result = invoke(
        "index", "build", sample_dir / "collection.tsv", "--kind", "dense", "--model", tiny_model, "-o", out
    )
    assert result.exit_code == 0, result.output
    return out


def test_search_o_on_a_full_disk_keeps_the_old_run(tmp_path, dense_index, monkeypatch, sample_dir):
    run = tmp_path / "run.trec"
    args = ("search", "--index", dense_index, "--queries", sample_dir / "queries.tsv", "-o", run)
    assert invoke(*args).exit_code == 0
    before = run.read_bytes()
    fill_disk(monkeypatch)
    disk_full_exit(invoke(*args, "-k", "3"), run, "the earlier one is unchanged")
    assert run.read_bytes() == before and hidden_leftovers(tmp_path) == []


def test_mine_o_on_a_full_disk(tmp_path, dense_index, sample_dir, full_disk):
    out = tmp_path / "mined.jsonl"
    result = invoke(
        "mine",
        "--queries",
        sample_dir / "queries.tsv",
        "--qrels",
        sample_dir / "qrels.txt",
        "--corpus",
        sample_dir / "collection.tsv",
        "-i",
        dense_index,
        "-o",
        out,
    )
    disk_full_exit(result, out, "nothing was written")
    assert hidden_leftovers(tmp_path) == [] and not out.exists()


def test_index_build_overwrite_on_a_full_disk_keeps_the_old_index(
    tmp_path, dense_index, tiny_model, sample_dir, monkeypatch
):
    out = Path(shutil.copytree(dense_index, tmp_path / "dense"))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    fill_disk(monkeypatch)
    result = invoke(
        "index",
        "build",
        sample_dir / "collection.tsv",
        "--kind",
        "dense",
        "--model",
        tiny_model,
        "-o",
        out,
        "--overwrite",
    )
    disk_full_exit(result, out, "the earlier one is unchanged")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and hidden_leftovers(tmp_path) == []


def test_export_beir_on_a_full_disk(tmp_path, full_disk, monkeypatch):
    from rankkit.data import beir

    def open_on_dev_full(path, mode="r", *args, **kwargs):  # the BEIR files, written into atomic_dir's folder
        if "w" not in mode:
            return open(path, mode, *args, **kwargs)
        Path(path).touch()
        return open("/dev/full", mode, *args, **kwargs)

    monkeypatch.setattr(beir, "open", open_on_dev_full, raising=False)
    out = tmp_path / "beir"
    disk_full_exit(invoke("export", "beir", "-o", out, "--split", "dev"), out, "nothing was written")
    assert list(tmp_path.iterdir()) == []


def test_sentiment_train_on_a_full_disk(tmp_path, full_disk):
    reviews = Path(files.__file__).parents[1] / "sentiment" / "sample" / "reviews.csv"
    out = tmp_path / "sentiment"
    result = invoke(
        "sentiment", "train", "--reviews", reviews, "--rating-column", "rating", "--method", "tfidf", "-o", out
    )
    disk_full_exit(result, out, "nothing was written")
    assert list(tmp_path.iterdir()) == []


def test_a_bare_full_disk_error_anywhere_is_one_line_too(capsys):
    # a write outside rankkit's atomic writers (a training log line) raises a bare ENOSPC
    import typer

    from rankkit.cli.errors import friendly_errors

    @friendly_errors
    def command() -> None:
        raise no_space()

    with pytest.raises(typer.Exit) as exited:
        command()
    error = capsys.readouterr().err
    assert exited.value.exit_code == 2 and error.startswith("error: no space left on the disk. Fix:"), error


def test_other_os_errors_are_not_taken_for_a_full_disk():
    from rankkit.cli.errors import friendly_errors

    @friendly_errors
    def command() -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with pytest.raises(OSError, match="Input/output error"):
        command()


# --- a real full disk ------------------------------------------------------------------------------


def _tmpfs_available() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt || mount -t tmpfs -o size=4k tmpfs /tmp"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _tmpfs_available(), reason="needs unprivileged mount namespaces (unshare -rm) for a tmpfs")
def test_bm25_index_build_on_a_real_full_disk(tmp_path, sample_dir):
    # Lucene's SimpleIndexer logs its IOException and commits nothing: the build must not pass
    pytest.importorskip("pyserini", reason="BM25 needs pyserini")
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "bm25"
    script = 'mount -t tmpfs -o size=12k tmpfs "$0" && exec "$1" -m rankkit.cli index build "$2" --kind bm25 -o "$3"; '
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, disk, sys.executable, sample_dir / "collection.tsv", out],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"error: {out}: no space left on the disk" in " ".join(done.stderr.split()), done.stderr[-3000:]
