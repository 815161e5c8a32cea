"""Concurrent runs into one output: `train`, `index build`, `sentiment train` and `distill` hold the
output's lock (.NAME.lock beside it, flock'd) while they run, so a second run into the same output
is refused with the fix instead of silently replacing the first one's work; the lock goes when a
run ends, fails, or is stopped by SIGTERM (and the system drops it when a run is killed)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Iterator

import pytest
from test_data_loss import _fit, _sentiment

from rankkit.data.files import atomic_dir, output_lock
from rankkit.errors import RankkitError
from rankkit.index.dense import build_dense_index

REFUSED = (
    r"another run \(process \d+\) is writing this output now. Fix: wait for it to finish, or choose another output"
)


def _python(script: str, ready: str) -> subprocess.Popen:
    """Run `script` in another Python process; returns once it printed the line `ready`."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n" + textwrap.dedent(script)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == ready
    return process


def _holder(output: Path) -> subprocess.Popen:
    """Another process holding `output`'s lock, stopped by SIGTERM as the CLI is."""
    return _python(
        f"""
        import signal, time
        from rankkit.data.files import output_lock
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
        with output_lock({str(output)!r}):
            print("held", flush=True)
            time.sleep(60)
        """,
        "held",
    )


@pytest.fixture
def held(tmp_path) -> Iterator[Path]:
    output = tmp_path / "out"
    process = _holder(output)
    yield output
    process.kill()
    process.wait()


def test_train_into_an_output_another_run_is_writing_is_refused(held):
    for overwrite in (False, True):
        with pytest.raises(RankkitError, match=f"{held}: {REFUSED}"):
            _fit(held, overwrite=overwrite)
    assert not held.exists()


def test_index_build_into_an_output_another_run_is_writing_is_refused(held, sample_dir, tiny_model):
    from rankkit.encode import BiEncoder

    with pytest.raises(RankkitError, match=REFUSED):
        build_dense_index(sample_dir / "collection.tsv", held, BiEncoder(tiny_model, device="cpu"), overwrite=True)
    assert not held.exists()


@pytest.mark.parametrize("method", ["tfidf", "transformer"])
def test_sentiment_train_into_an_output_another_run_is_writing_is_refused(held, method, tiny_model):
    with pytest.raises(RankkitError, match=REFUSED):
        _sentiment(held, method, model=str(tiny_model), overwrite=True)
    assert not held.exists()


def test_distill_into_an_output_another_run_is_writing_is_refused_before_it_scores(held, monkeypatch):
    from rankkit.distill import pipeline
    from rankkit.distill.config import DistillConfig

    monkeypatch.setattr(pipeline, "_distill", lambda config: pytest.fail("ran without the lock"))
    with pytest.raises(RankkitError, match=REFUSED):
        pipeline.distill(DistillConfig(teacher="t", queries="q", corpus="c", output=str(held), overwrite=True))


def test_two_trainings_at_once_into_one_output_one_is_refused(tmp_path):
    """A real first run: a training slowed down inside the loop, in another process."""
    output = tmp_path / "out"
    first = _python(
        f"""
        import time
        from pathlib import Path
        import test_data_loss
        from test_training import LinearTask
        def slow(self, batch):
            print("training", flush=True)
            time.sleep(60)
        LinearTask.loss = slow
        test_data_loss._fit(Path({str(output)!r}), overwrite=True)
        """,
        "training",
    )
    try:
        with pytest.raises(RankkitError, match=REFUSED.replace(r"\d+", str(first.pid))):
            _fit(output, overwrite=True)
    finally:
        first.kill()
        first.wait()
    _fit(output, overwrite=True)  # the system released the killed run's lock
    assert (output / "model").is_dir()


def test_the_lock_is_released_on_success_errors_and_sigterm(tmp_path):
    output = tmp_path / "out"
    lock = tmp_path / ".out.lock"
    with atomic_dir(output) as folder:
        assert lock.read_text().strip().isdigit()
        (folder / "f").write_text("x")
    assert not lock.exists()
    with pytest.raises(RuntimeError, match="failed"):
        with output_lock(output):
            raise RuntimeError("failed")
    assert not lock.exists()
    process = _holder(output)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 143
    assert not lock.exists()
    with output_lock(output):  # free again
        pass


def test_nested_blocks_of_one_run_share_the_lock_and_other_threads_are_refused(tmp_path):
    output = tmp_path / "out"
    errors: list[Exception] = []

    def other_thread() -> None:
        try:
            with output_lock(output):
                pass
        except RankkitError as exc:
            errors.append(exc)

    with output_lock(output):
        with atomic_dir(output) as folder:  # a trainer's run around the training loop's
            (folder / "f").write_text("x")
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "another run in this process" in str(errors[0])
    assert (output / "f").read_text() == "x"
