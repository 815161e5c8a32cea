"""No data loss (issue 13): --overwrite replaces only folders rankkit wrote, and only once the new
output is complete; stale temporaries of killed runs go; resume refuses other options; checkpoints
load safely and a damaged one names its file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_training import LinearTask, _linear_groups

from rankkit.data.files import atomic_dir, atomic_write, remove_stale_temp_dirs
from rankkit.errors import RankkitError
from rankkit.index.dense import DenseBuildConfig, build_dense_index
from rankkit.index.manifest import is_index_folder
from rankkit.train.config import TrainConfig
from rankkit.train.examples import batches
from rankkit.train.loop import CHECKPOINTS, STATE_FILE, fit, is_training_output


def _foreign_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work")
    return path


def test_atomic_dir_refuses_to_overwrite_a_folder_it_cannot_recognise(tmp_path):
    target = _foreign_folder(tmp_path / "mine")
    with pytest.raises(RankkitError, match="not a rankkit index.*Fix"):
        with atomic_dir(target, overwrite=True, replaceable=is_index_folder, what="a rankkit index"):
            raise AssertionError("must not start")
    assert (target / "thesis.tex").read_text() == "years of work"


def test_atomic_dir_replaces_an_empty_folder_and_a_recognised_one(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with atomic_dir(target, overwrite=True, replaceable=lambda p: False) as folder:
        (folder / "a").write_text("new")
    with atomic_dir(target, overwrite=True, replaceable=lambda p: (p / "a").exists()) as folder:
        (folder / "b").write_text("newer")
    assert sorted(p.name for p in target.iterdir()) == ["b"]


def test_atomic_dir_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(RankkitError, match="is a file"):
        with atomic_dir(tmp_path / "out", overwrite=True):
            pass


def test_dense_build_overwrite_refuses_the_corpus_folder(tmp_path, sample_dir, tiny_model):
    from rankkit.encode import BiEncoder

    data = tmp_path / "data"
    data.mkdir()
    corpus = data / "collection.tsv"
    corpus.write_bytes((sample_dir / "collection.tsv").read_bytes())
    with pytest.raises(RankkitError, match="not a rankkit index"):
        build_dense_index(corpus, data, BiEncoder(tiny_model, device="cpu"), overwrite=True)
    assert corpus.read_bytes() == (sample_dir / "collection.tsv").read_bytes()


def test_dense_build_overwrite_keeps_the_old_index_when_the_new_build_fails(tmp_path, sample_dir, tiny_model):
    from rankkit.encode import BiEncoder

    encoder = BiEncoder(tiny_model, device="cpu")
    out = tmp_path / "idx"
    build_dense_index(sample_dir / "collection.tsv", out, encoder)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RankkitError, match="FAISS cannot build"):
        build_dense_index(
            sample_dir / "collection.tsv", out, encoder, DenseBuildConfig(factory="Nonsense12"), overwrite=True
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    stale = tmp_path / f".idx.{dead}.abcd1234.tmp"
    live = tmp_path / f".idx.{os.getpid()}.live0000.tmp"
    other = tmp_path / f".other.{dead}.abcd1234.tmp"
    for folder in (stale, live, other):
        folder.mkdir()
    assert [p.name for p in remove_stale_temp_dirs(tmp_path / "idx")] == [stale.name]
    assert live.exists() and other.exists()
    with atomic_dir(tmp_path / "idx") as folder:  # a build clears them too
        (folder / "f").write_text("x")
    assert live.exists()


def test_atomic_write_to_an_existing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(RankkitError, match="is a folder.*Fix: name a file"):
        with atomic_write(tmp_path) as out:
            out.write("x")


# --- training --------------------------------------------------------------------------------------


def _fit(output: Path, **changes) -> Path:
    vectors, groups = _linear_groups()
    config = TrainConfig(**{"output": str(output), "batch_size": 2, "max_steps": 4, **changes})
    return fit(LinearTask(vectors), lambda epoch: batches(groups, 2), config, options={"loss": "softmax"})


def test_train_overwrite_refuses_a_folder_of_other_files(tmp_path):
    target = _foreign_folder(tmp_path / "out")
    with pytest.raises(RankkitError, match="not a rankkit training output"):
        _fit(target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["thesis.tex"]


def test_train_without_overwrite_refuses_a_folder_of_other_files(tmp_path):
    target = _foreign_folder(tmp_path / "out")
    with pytest.raises(RankkitError, match="not a rankkit training output"):
        _fit(target)
    assert sorted(p.name for p in target.iterdir()) == ["thesis.tex"]


def test_a_failed_overwrite_keeps_the_trained_model(tmp_path, monkeypatch):
    output = tmp_path / "out"
    _fit(output)
    assert is_training_output(output)
    model = (output / "model" / "linear.pt").read_bytes()

    def broken(self, batch):
        raise RuntimeError("diverged")

    monkeypatch.setattr(LinearTask, "loss", broken)
    with pytest.raises(RuntimeError, match="diverged"):
        _fit(output, overwrite=True, lr=1e-3)
    assert (output / "model" / "linear.pt").read_bytes() == model
    assert json.loads((output / "config.json").read_text())["lr"] == TrainConfig(output="").lr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_overwrite_replaces_a_training_output_when_complete(tmp_path):
    output = tmp_path / "out"
    _fit(output, max_steps=2)
    _fit(output, overwrite=True, max_steps=3)
    assert json.loads((output / "config.json").read_text())["max_steps"] == 3
    assert (output / "model" / "linear.pt").is_file()


def _interrupted(output: Path, monkeypatch, **changes) -> Path:
    """Train with checkpoints every step and stop at the third step's loss: leaves step-2."""
    calls = []
    original = LinearTask.loss

    def loss(self, batch):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(LinearTask, "loss", loss)
        with pytest.raises(RankkitError, match="interrupted at step 2"):
            _fit(output, checkpoint_every=1, **changes)
    return output / CHECKPOINTS / "step-2" / STATE_FILE


def test_resume_with_other_options_is_refused_naming_them(tmp_path, monkeypatch):
    state = _interrupted(tmp_path / "out", monkeypatch)
    with pytest.raises(RankkitError) as info:
        _fit(tmp_path / "out", checkpoint_every=1, lr=1e-3, seed=7)
    message = str(info.value)
    assert str(state) in message and "lr: 2e-05 in the checkpoint, 0.001 now" in message
    assert "seed: 0 in the checkpoint, 7 now" in message and "--overwrite" in message
    _fit(tmp_path / "out", checkpoint_every=1, lr=1e-3, seed=7, overwrite=True)  # starts afresh
    assert json.loads((tmp_path / "out" / "config.json").read_text())["seed"] == 7


def test_resume_with_the_same_options_still_works_and_ignores_logging_options(tmp_path, monkeypatch):
    _interrupted(tmp_path / "out", monkeypatch)
    _fit(tmp_path / "out", checkpoint_every=2, plot=False, eval_every=3)
    steps = [json.loads(line)["step"] for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_checkpoints_load_with_weights_only(tmp_path, monkeypatch):
    state = _interrupted(tmp_path / "out", monkeypatch)
    loaded = torch.load(state, weights_only=True)  # raises if anything but tensors and plain values
    assert loaded["step"] == 2 and loaded["options"]["loss"] == "softmax"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickled code"])
def test_a_damaged_checkpoint_names_the_file_and_the_fix(tmp_path, monkeypatch, damage):
    state = _interrupted(tmp_path / "out", monkeypatch)
    if damage == "truncated":
        state.write_bytes(state.read_bytes()[:100])
    elif damage == "garbage":
        state.write_bytes(b"not a checkpoint" * 10)
    else:  # weights_only=True refuses to run the pickled call
        torch.save({"step": 2, "hook": subprocess.Popen}, state)
    with pytest.raises(RankkitError) as info:
        _fit(tmp_path / "out", checkpoint_every=1)
    assert f"{state}: damaged checkpoint" in str(info.value) and "--overwrite" in str(info.value)


# --- sentiment train: the rule of train, index build and export beir -----------------------------

REVIEWS = ["valo product", "khub kharap", "darun jinis", "baje quality", "very good", "very bad"] * 5
STARS = [1, 0, 1, 0, 1, 0] * 5


def _sentiment(output: Path, method: str = "tfidf", **changes) -> Path:
    from rankkit.sentiment.config import SentimentConfig
    from rankkit.sentiment.train import train_sentiment

    config = SentimentConfig(output=str(output), method=method, epochs=1, batch_size=4, device="cpu", **changes)
    return train_sentiment(REVIEWS, STARS, config, val=(REVIEWS, STARS))


def _project_folder(path: Path, own_model: bool = True) -> dict[str, bytes]:
    """A user's folder, with a model/ folder and a sentiment_config.json of their own."""
    _foreign_folder(path)
    if own_model:
        (path / "model").mkdir()
        (path / "model" / "weights.bin").write_bytes(b"my own model")
        (path / "sentiment_config.json").write_text("my own settings")
    return _tree(path)


def _tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("overwrite", [True, False])
@pytest.mark.parametrize("own_model", [True, False])
def test_sentiment_train_refuses_a_folder_it_did_not_write(tmp_path, overwrite, own_model):
    target = tmp_path / "project"
    before = _project_folder(target, own_model)
    with pytest.raises(RankkitError, match="project.*Fix"):
        _sentiment(target, overwrite=overwrite)
    assert _tree(target) == before


def test_sentiment_train_overwrite_refuses_a_link_to_a_foreign_folder(tmp_path, tiny_model):
    foreign = tmp_path / "foreign"
    before = _project_folder(foreign)
    link = tmp_path / "out"
    link.symlink_to(foreign)
    for method in ("tfidf", "transformer"):
        with pytest.raises(RankkitError, match="not a rankkit sentiment output.*Fix"):
            _sentiment(link, method, model=str(tiny_model), overwrite=True)
    assert _tree(foreign) == before and link.is_symlink()


def test_sentiment_train_overwrite_replaces_its_own_output_only_once_complete(tmp_path, monkeypatch):
    from rankkit.sentiment.model import TfidfSentiment

    output = tmp_path / "out"
    _sentiment(output)
    before = _tree(output)
    with pytest.raises(RankkitError, match="already exists.*--overwrite"):
        _sentiment(output)
    with monkeypatch.context() as patch:
        patch.setattr(TfidfSentiment, "save", lambda self, folder: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError, match="disk full"):
            _sentiment(output, overwrite=True, seed=3)
    assert _tree(output) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    _sentiment(output, overwrite=True, seed=3)
    assert json.loads((output / "sentiment_config.json").read_text())["seed"] == 3


def test_sentiment_train_overwrite_replaces_a_transformer_output_with_a_tfidf_one(tmp_path, tiny_model):
    output = tmp_path / "out"
    _sentiment(output, "transformer", model=str(tiny_model))
    _sentiment(output, overwrite=True)
    assert json.loads((output / "sentiment_config.json").read_text())["method"] == "tfidf"
    assert (output / "val_metrics.json").is_file() and not (output / "config.json").exists()
    _sentiment(output, "transformer", model=str(tiny_model), overwrite=True)
    assert json.loads((output / "sentiment_config.json").read_text())["method"] == "transformer"
