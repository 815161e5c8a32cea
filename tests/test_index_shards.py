"""Sharded dense encoding: `index build --shard I/N` (and `--shard auto` under torchrun) and
`index merge`, on the bundled sample corpus with the tiny model. Merged shards must give the index
a one-process build gives; shards that do not belong together are refused with the fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import temp_leftovers
from test_cli import fails, ok

from rankkit.encode import BiEncoder
from rankkit.encode.device import launcher_device
from rankkit.errors import RankkitError
from rankkit.index.dense import (
    DOCIDS_FILE,
    EMBEDDINGS_FILE,
    DenseBuildConfig,
    DenseIndex,
    build_dense_index,
    load_embeddings,
)
from rankkit.index.manifest import MANIFEST, Manifest, Shard
from rankkit.index.shards import build_dense_shard, launcher_shard, merge_dense_shards, parse_shard, resolve_shard
from rankkit.index.verify import verify

QUERIES = ["how do stars form", "why does bread rise", "phases of the moon", "ocean tides"]
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@pytest.fixture(autouse=True)
def outside_torchrun(monkeypatch):
    """Tests run as one plain process, whatever launched pytest."""
    for variable in LAUNCHER_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="module")
def corpus(sample_dir) -> Path:
    return sample_dir / "collection.tsv"


@pytest.fixture(scope="module")
def encoder(tiny_model) -> BiEncoder:
    return BiEncoder(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("shards")


@pytest.fixture(scope="module")
def single(built, corpus, encoder) -> Path:
    """The one-process build the merged shards must equal (embeddings kept to compare)."""
    build_dense_index(corpus, built / "single", encoder, DenseBuildConfig(save_embeddings=True))
    return built / "single"


@pytest.fixture(scope="module")
def shards(built, corpus, encoder) -> list[Path]:
    for index in range(2):
        build_dense_shard(corpus, built / f"shard-{index}", encoder, Shard(index, 2))
    return [built / "shard-0", built / "shard-1"]


def assert_same_index(merged: Path, single: Path, encoder: BiEncoder) -> None:
    """Same docids line for line, vectors within 1e-6, same manifest but for its dates and
    checksums, same search results."""
    assert (merged / DOCIDS_FILE).read_text() == (single / DOCIDS_FILE).read_text()
    np.testing.assert_allclose(load_embeddings(merged), load_embeddings(single), rtol=0, atol=1e-6)
    one, other = Manifest.read(merged), Manifest.read(single)
    assert {**vars(one), "created": None, "files": None} == {**vars(other), "created": None, "files": None}
    queries = encoder.encode(QUERIES, role="query")
    for got, expected in zip(DenseIndex(merged).search(queries, 10), DenseIndex(single).search(queries, 10)):
        assert [hit.docid for hit in got] == [hit.docid for hit in expected]
        np.testing.assert_allclose([hit.score for hit in got], [hit.score for hit in expected], atol=1e-5)


# --- the split ----------------------------------------------------------------------------------


@pytest.mark.parametrize("documents", [1, 7, 80, 101])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_shards_are_contiguous_and_concatenate_to_the_corpus(documents, count):
    rows = [Shard(index, count).rows(documents) for index in range(count)]
    assert [row for shard in rows for row in shard] == list(range(documents))
    assert max(map(len, rows)) - min(map(len, rows)) <= 1


def test_parse_shard():
    assert parse_shard("0/2") == Shard(0, 2) and parse_shard(" 1/2 ") == Shard(1, 2)
    assert str(Shard(1, 2)) == "1/2"


@pytest.mark.parametrize("text", ["3/2", "2/2", "a/b", "-1/2", "1/0", "1", "1/2/3", ""])
def test_parse_shard_refuses_what_is_no_shard(text):
    with pytest.raises(RankkitError, match="Fix: pass --shard I/N"):
        parse_shard(text)


# --- torchrun's rank and world size --------------------------------------------------------------


def test_auto_takes_rank_and_world_size_from_torchrun(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resolve_shard("auto") == Shard(1, 2)
    assert resolve_shard("0/2") == Shard(0, 2)  # an explicit shard wins


def test_no_shard_under_torchrun_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RankkitError, match="Fix: pass --shard auto"):
        resolve_shard(None)
    monkeypatch.setenv("WORLD_SIZE", "1")  # a world of one process builds the whole index
    assert resolve_shard(None) is None


def test_auto_outside_torchrun_is_refused():
    assert resolve_shard(None) is None
    with pytest.raises(RankkitError, match="Fix: launch with torchrun, or pass --shard I/N"):
        resolve_shard("auto")


def test_bad_launcher_environment(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RankkitError, match="RANK='2' and WORLD_SIZE='2'"):
        resolve_shard("auto")


def test_auto_takes_an_initialised_process_group():
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        assert launcher_shard() == Shard(0, 1)
    finally:
        dist.destroy_process_group()


def test_each_local_rank_gets_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert launcher_device(None) is None  # not under torchrun
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert launcher_device(None) == launcher_device("auto") == launcher_device("cuda") == "cuda:1"
    assert launcher_device("cpu") == "cpu" and launcher_device("cuda:0") == "cuda:0"


# --- build and merge -----------------------------------------------------------------------------


def test_shard_folders(shards, single):
    docids = (single / DOCIDS_FILE).read_text().splitlines()
    for index, folder in enumerate(shards):
        manifest = Manifest.read(folder)
        assert manifest.kind == "dense-shard" and manifest.settings["shard"] == {"index": index, "count": 2}
        assert manifest.count == 40
        assert sorted(p.name for p in folder.iterdir()) == [DOCIDS_FILE, EMBEDDINGS_FILE, MANIFEST]
        assert (folder / DOCIDS_FILE).read_text().splitlines() == docids[40 * index : 40 * (index + 1)]
        assert verify(folder).checksums


def test_merged_shards_equal_a_one_process_build(built, shards, single, encoder):
    merged = built / "merged"
    manifest = merge_dense_shards(shards[::-1], merged, DenseBuildConfig(save_embeddings=True))  # any order
    assert manifest.kind == "dense" and manifest.count == 80 and manifest.index_type == "Flat"
    assert temp_leftovers(built) == []
    assert_same_index(merged, single, encoder)


def test_merge_builds_any_factory(tmp_path, shards):
    manifest = merge_dense_shards(shards, tmp_path / "hnsw", DenseBuildConfig(factory="HNSW32"))
    assert manifest.index_type == "HNSW32" and "efSearch" in manifest.settings["search_params"]
    assert len(DenseIndex(tmp_path / "hnsw").docids) == 80


def test_cli_shards_then_merge(tmp_path, corpus, tiny_model, single, encoder):
    for shard in ("0/2", "1/2"):
        result = ok(
            "index",
            "build",
            corpus,
            "--model",
            tiny_model,
            "--device",
            "cpu",
            "-o",
            tmp_path / "sample",
            "--shard",
            shard,
        )
        assert "with 40 documents" in " ".join(result.output.split())
    folders = [tmp_path / "sample-shard-0-of-2", tmp_path / "sample-shard-1-of-2"]
    result = ok("index", "merge", *folders, "-o", tmp_path / "sample", "--save-embeddings")
    assert "with 80 documents (Flat) from 2 shards" in " ".join(result.output.split())
    assert_same_index(tmp_path / "sample", single, encoder)


def test_torchrun_two_processes_then_merge(tmp_path, corpus, tiny_model, single, encoder):
    """Two processes started by torch.distributed.run each encode their shard (--shard auto)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "rankkit.cli",
        "index",
        "build",
        str(corpus),
        "--model",
        str(tiny_model),
        "--device",
        "cpu",
        "-o",
        str(tmp_path / "sample"),
        "--shard",
        "auto",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    folders = sorted(tmp_path.glob("sample-shard-*-of-2"))
    assert [folder.name for folder in folders] == ["sample-shard-0-of-2", "sample-shard-1-of-2"]
    merge_dense_shards(folders, tmp_path / "sample", DenseBuildConfig(save_embeddings=True))
    assert_same_index(tmp_path / "sample", single, encoder)


# --- shards that do not belong together ------------------------------------------------------------


def test_missing_shard(tmp_path, shards):
    message = fails("index", "merge", shards[0], "-o", tmp_path / "x", expect="1 of 2 shards missing (1/2)").stderr
    assert "--shard 1/2" in message  # the build command of the missing shard
    assert not (tmp_path / "x").exists()


def test_duplicate_shard(tmp_path, shards):
    copy = tmp_path / "copy-of-0"
    shutil.copytree(shards[0], copy)
    fails("index", "merge", shards[0], shards[1], copy, "-o", tmp_path / "x", expect="shard 0/2 is given twice")
    fails("index", "merge", shards[0], shards[0], "-o", tmp_path / "x", expect="given twice")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy-of-0"]


def test_shards_of_another_model(tmp_path, corpus, shards, other_tiny_model):
    other = build_dense_shard(corpus, tmp_path / "other", BiEncoder(other_tiny_model, device="cpu"), Shard(1, 2))
    fails(
        "index",
        "merge",
        shards[0],
        tmp_path / "other",
        "-o",
        tmp_path / "x",
        expect=f"differ in model ({other.model!r}",
    )


def test_shards_of_another_corpus(tmp_path, corpus, shards, encoder):
    changed = tmp_path / "changed.tsv"
    changed.write_text(corpus.read_text(encoding="utf-8").replace("\t", "\tchanged ", 1), encoding="utf-8")
    build_dense_shard(changed, tmp_path / "other", encoder, Shard(1, 2))
    fails("index", "merge", shards[0], tmp_path / "other", "-o", tmp_path / "x", expect="their contents differ")


def test_shards_of_another_split(tmp_path, corpus, shards, encoder):
    build_dense_shard(corpus, tmp_path / "third", encoder, Shard(1, 3))
    fails(
        "index",
        "merge",
        shards[0],
        tmp_path / "third",
        "-o",
        tmp_path / "x",
        expect="differ in number of shards (3, 2)",
    )


def test_merge_refuses_an_index(tmp_path, shards, single):
    fails("index", "merge", shards[0], single, "-o", tmp_path / "x", expect="a dense index, not a shard")


def test_damaged_shard_names_the_rebuild(tmp_path, shards):
    damaged = tmp_path / "sample-shard-1-of-2"
    shutil.copytree(shards[1], damaged)
    with open(damaged / EMBEDDINGS_FILE, "r+b") as vectors:
        vectors.truncate(100)
    message = fails(
        "index", "merge", shards[0], damaged, "-o", tmp_path / "x", expect=str(damaged / EMBEDDINGS_FILE)
    ).stderr
    assert f"-o {tmp_path / 'sample'} --overwrite" in message and "--shard 1/2" in message


@pytest.mark.parametrize("shard", ["3/2", "a/b", "-1/2"])
def test_bad_shard_option(tmp_path, corpus, tiny_model, shard):
    fails(
        "index",
        "build",
        corpus,
        "--model",
        tiny_model,
        "--device",
        "cpu",
        "-o",
        tmp_path / "sample",
        "--shard",
        shard,
        expect=f"--shard {shard!r} is not a shard of a split",
    )
    assert list(tmp_path.iterdir()) == []


def test_shard_options_that_belong_to_the_merge(tmp_path, corpus, tiny_model):
    fails(
        "index",
        "build",
        corpus,
        "--model",
        tiny_model,
        "-o",
        tmp_path / "sample",
        "--shard",
        "0/2",
        "--factory",
        "HNSW32",
        expect="pass --factory to `rankkit index merge`",
    )
    fails(
        "index",
        "build",
        corpus,
        "--kind",
        "bm25",
        "-o",
        tmp_path / "sample",
        "--shard",
        "0/2",
        expect="--shard does not apply to a bm25 index",
    )


def test_cli_under_torchrun_without_shard(tmp_path, corpus, tiny_model, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    fails("index", "build", corpus, "--model", tiny_model, "-o", tmp_path / "sample", expect="Fix: pass --shard auto")


def test_a_shard_is_no_index(tmp_path, corpus, shards):
    with pytest.raises(RankkitError, match="merge the shards with `rankkit index merge`"):
        DenseIndex(shards[0])
    with pytest.raises(RankkitError, match="not a dense index"):
        build_dense_index(corpus, tmp_path / "x", None, embeddings_from=shards[0])
    assert json.loads((shards[0] / MANIFEST).read_text())["kind"] == "dense-shard"
