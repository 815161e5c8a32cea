"""A two-tower model (DPR / Tevatron style: separate query and passage encoders) declared at build
time with --query-model, recorded in the manifest and used for queries by search."""

from __future__ import annotations

import json

import pytest
from conftest import make_tiny_model
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.encode import BiEncoder, model_fingerprint
from rankkit.errors import RankkitError
from rankkit.index.dense import DenseBuildConfig, DenseIndex, build_dense_index
from rankkit.retrieve.dense import DenseRetriever


@pytest.fixture(scope="module")
def query_tower(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("query-tower"), seed=7)  # 32 dims, other weights


def test_declared_query_tower_is_recorded_and_searches(tmp_path, sample_dir, tiny_model, query_tower):
    # regression: a separate query encoder was refused by the fingerprint check, with no way to declare it
    out = tmp_path / "two-tower"
    manifest = build_dense_index(
        sample_dir / "collection.tsv",
        out,
        BiEncoder(tiny_model, device="cpu"),
        DenseBuildConfig(),
        query_encoder=BiEncoder(query_tower, device="cpu"),
    )
    assert manifest.query_model == str(query_tower.resolve())
    assert manifest.query_model_fingerprint == model_fingerprint(query_tower)
    retriever = DenseRetriever.from_folder(out, device="cpu")
    assert retriever.encoder.model_dir == query_tower.resolve()
    query = BiEncoder(query_tower, device="cpu").encode(["stars"], role="query")
    expected = DenseIndex(out).search(query, 5)[0]
    assert retriever.search("stars", 5) == expected
    with pytest.raises(RankkitError, match="built for query model"):
        DenseRetriever.from_folder(out, model=str(tiny_model), device="cpu")


def test_query_tower_of_another_dimension_is_refused(tmp_path, sample_dir, tiny_model, other_tiny_model):
    with pytest.raises(RankkitError, match="48 dimensions.*Fix:"):
        build_dense_index(
            sample_dir / "collection.tsv",
            tmp_path / "bad",
            BiEncoder(tiny_model, device="cpu"),
            DenseBuildConfig(),
            query_encoder=BiEncoder(other_tiny_model, device="cpu"),
        )
    assert not (tmp_path / "bad").exists()


def test_cli_query_model(tmp_path, sample_dir, tiny_model, query_tower):
    result = CliRunner().invoke(
        app,
        [
            "index",
            "build",
            str(sample_dir / "collection.tsv"),
            "-o",
            str(tmp_path / "tt"),
            "--model",
            str(tiny_model),
            "--query-model",
            str(query_tower),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "tt" / "manifest.json").read_text())["query_model"] == str(query_tower.resolve())
    run = tmp_path / "run.trec"
    found = CliRunner().invoke(
        app,
        ["search", "-i", str(tmp_path / "tt"), "--queries", str(sample_dir / "queries.tsv"), "-o", str(run), "-k", "3"],
    )
    assert found.exit_code == 0, found.output
    first = run.read_text().splitlines()[0].split()
    retriever = DenseRetriever.from_folder(tmp_path / "tt", device="cpu")
    query = (sample_dir / "queries.tsv").read_text().splitlines()[0].split("\t", 1)[1]
    assert first[2] == retriever.search(query, 1)[0].docid
