"""ANN search parameters: nprobe / efSearch tuned at build time and recorded in the manifest,
overridable per search (library and CLI), set through FAISS's ParameterSpace, and a warning when a
query gets fewer hits than asked."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest
from typer.testing import CliRunner

from rankkit.cli.app import app
from rankkit.encode import BiEncoder
from rankkit.errors import RankkitError
from rankkit.index.dense import (
    DenseBuildConfig,
    DenseIndex,
    FewerHitsWarning,
    build_dense_index,
    search_parameter,
    tune_search_params,
)
from rankkit.retrieve.options import DenseQuery


def clustered(n: int = 4000, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    vectors = centres[rng.integers(0, 40, n)] + 0.6 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def recall_at(index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, k: int) -> float:
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    truth, found = exact.search(queries, k)[1], index.search(queries, k)[1]
    return float(np.mean([len(np.intersect1d(f, t)) / k for f, t in zip(found, truth)]))


@pytest.mark.parametrize("factory, name", [("IVF64,Flat", "nprobe"), ("HNSW8", "efSearch"), ("Flat", None)])
def test_tuned_setting_reaches_the_target_recall_on_unseen_queries(factory, name):
    vectors, queries = np.split(clustered(4200), [4000])  # held-out queries from the same clusters
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add(vectors)
    params = tune_search_params(index, vectors, seed=0)
    assert search_parameter(index) == name
    if name is None:
        assert params == {}
        return
    assert set(params) == {name}
    faiss.ParameterSpace().set_index_parameter(index, name, params[name])
    assert recall_at(index, vectors, queries, 100) >= 0.93
    if params[name] > 1:  # and the setting below it does not reach the target on the tuning queries
        faiss.ParameterSpace().set_index_parameter(index, name, params[name] // 2)
        assert recall_at(index, vectors, vectors[:500], 100) < 0.95 + 0.03


@pytest.fixture(scope="module")
def ivf_index(tmp_path_factory, sample_dir, tiny_model) -> Path:
    # regression: IVF indexes were searched with FAISS's nprobe 1 whatever their size
    out = tmp_path_factory.mktemp("ann") / "ivf"
    build_dense_index(
        sample_dir / "collection.tsv", out, BiEncoder(tiny_model, device="cpu"), DenseBuildConfig(factory="IVF8,Flat")
    )
    return out


def test_build_records_the_tuned_nprobe_and_search_uses_it(ivf_index):
    manifest = json.loads((ivf_index / "manifest.json").read_text())
    nprobe = manifest["settings"]["search_params"]["nprobe"]
    assert nprobe > 1
    index = DenseIndex(ivf_index)
    assert faiss.extract_index_ivf(index.index).nprobe == nprobe
    assert faiss.extract_index_ivf(DenseIndex(ivf_index, {"nprobe": 3}).index).nprobe == 3


def test_fewer_hits_than_asked_warns_with_the_fix(ivf_index, tiny_model):
    index = DenseIndex(ivf_index, DenseQuery(nprobe=1).search_params())
    queries = BiEncoder(tiny_model, device="cpu").encode(["stars", "bread"], role="query")
    with pytest.warns(FewerHitsWarning, match="fewer than the 80 hits asked for.*--nprobe"):
        hits = index.search(queries, 80)
    assert min(len(h) for h in hits) < 80
    with pytest.warns(FewerHitsWarning) as record:
        index.search(queries, 80)
    assert "queries got fewer" in str(record[0].message)


def test_all_lists_probed_gives_every_hit_without_warning(ivf_index, tiny_model, recwarn):
    queries = BiEncoder(tiny_model, device="cpu").encode(["stars"], role="query")
    assert len(DenseIndex(ivf_index, {"nprobe": 8}).search(queries, 80)[0]) == 80
    assert not [w for w in recwarn if issubclass(w.category, FewerHitsWarning)]


def test_a_parameter_the_index_lacks_names_the_right_flag(ivf_index):
    with pytest.raises(RankkitError, match=r"efSearch.*Fix: use --nprobe"):
        DenseIndex(ivf_index, DenseQuery(ef_search=64).search_params())


def test_dense_query_maps_its_options_to_faiss_names():
    assert DenseQuery(nprobe=4, ef_search=None).search_params() == {"nprobe": 4}
    assert DenseQuery(ef_search=128).search_params() == {"efSearch": 128}
    assert DenseQuery().search_params() == {}


def test_cli_search_with_nprobe(ivf_index, sample_dir, tiny_model, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run.trec"
    few = runner.invoke(
        app,
        [
            "search",
            "-i",
            str(ivf_index),
            "--queries",
            str(sample_dir / "queries.tsv"),
            "-o",
            str(run),
            "-k",
            "80",
            "--nprobe",
            "8",
        ],
    )
    assert few.exit_code == 0, few.output
    lines = run.read_text().splitlines()
    queries = len((sample_dir / "queries.tsv").read_text().splitlines())
    assert len(lines) == 80 * queries
    bad = runner.invoke(app, ["search", "-i", str(ivf_index), "-q", "stars", "--ef-search", "64"])
    assert bad.exit_code != 0 and "--nprobe" in bad.output


def test_serve_and_mine_pass_the_search_parameters_on(ivf_index, tiny_model, sample_dir, tmp_path):
    from rankkit.mining.recipe import MiningRecipe
    from rankkit.mining.run import run_mining
    from rankkit.serve.config import ServeConfig
    from rankkit.serve.engine import SearchEngine

    engine = SearchEngine(ServeConfig(indexes=(str(ivf_index),), texts=False, device="cpu", nprobe=3))
    try:
        assert faiss.extract_index_ivf(engine.retrievers["dense"].index.index).nprobe == 3
    finally:
        engine.close()
    recipe = MiningRecipe(
        queries=str(sample_dir / "queries.tsv"),
        qrels=str(sample_dir / "qrels.txt"),
        corpus=str(sample_dir / "collection.tsv"),
        output=str(tmp_path / "m.jsonl"),
        indexes=(str(ivf_index),),
        depth=20,
        max_rank=20,
        nprobe=8,
        device="cpu",
    )
    assert run_mining(recipe).config["nprobe"] == 8
    with pytest.raises(RankkitError, match="--nprobe"):
        run_mining(MiningRecipe(**{**recipe.__dict__, "nprobe": None, "ef_search": 16}))


def test_hnsw_search_deeper_than_ef_search_returns_every_hit(tmp_path, sample_dir, tiny_model, recwarn):
    # HNSW can return fewer hits than a k well above efSearch; those queries are searched again wider
    out = tmp_path / "hnsw"
    build_dense_index(
        sample_dir / "collection.tsv", out, BiEncoder(tiny_model, device="cpu"), DenseBuildConfig(factory="HNSW8")
    )
    index = DenseIndex(out, {"efSearch": 16})
    queries = BiEncoder(tiny_model, device="cpu").encode(["stars", "bread"], role="query")
    assert [len(hits) for hits in index.search(queries, 50)] == [50, 50]  # was at most about efSearch
    assert index.index.hnsw.efSearch == 16  # the index's own setting is unchanged
    assert not [w for w in recwarn if issubclass(w.category, FewerHitsWarning)]


def test_hnsw_full_lists_keep_the_tuned_ef_search(tmp_path, sample_dir, tiny_model):
    # widening every k > efSearch call made rankkit search at efSearch = k (100) where FAISS at the
    # tuned 64 already returned full lists: more work than the setting chosen at build (bench_search)
    out = tmp_path / "hnsw"
    build_dense_index(
        sample_dir / "collection.tsv", out, BiEncoder(tiny_model, device="cpu"), DenseBuildConfig(factory="HNSW8")
    )
    index = DenseIndex(out, {"efSearch": 4})
    queries = BiEncoder(tiny_model, device="cpu").encode(["stars", "bread", "rivers"], role="query")
    stats = faiss.cvar.hnsw_stats
    stats.reset()
    bare = index.index.search(queries, 6)[1]
    bare_distances = stats.ndis
    assert (bare >= 0).all()  # FAISS filled every list at efSearch 4
    stats.reset()
    hits = index.search(queries, 6)
    assert stats.ndis == bare_distances  # the same graph work as FAISS at the index's efSearch
    assert [[hit.docid for hit in row] for row in hits] == [[index.docids[r] for r in row] for row in bare]
