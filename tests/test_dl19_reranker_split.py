"""benchmarks/dl19_reranker.py's pseudo-qrels split: the dev queries are the same whatever the
training filter is, and never trained on."""

from __future__ import annotations

from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def dl19_reranker(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import dl19_reranker

    monkeypatch.setattr(dl19_reranker, "WORK", tmp_path)
    return dl19_reranker


def write_inputs(folder: Path, top_cosines: dict[str, float]) -> tuple[Path, Path]:
    """Pseudo-qrels (each query's top candidate) and a teacher run scoring it at cosine x 20."""
    qrels, teacher = folder / "pseudo-qrels.txt", folder / "teacher.trec"
    qrels.write_text("".join(f"{qid} 0 d{qid} 1\n" for qid in top_cosines))
    teacher.write_text(
        "".join(
            f"{qid} Q0 d{qid} 1 {20 * cosine} teacher\n{qid} Q0 x{qid} 2 0.0 teacher\n"
            for qid, cosine in top_cosines.items()
        )
    )
    return qrels, teacher


def qids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines()]


def test_dev_queries_are_the_last_related_ones_whatever_the_training_filter(dl19_reranker, tmp_path):
    qrels, teacher = write_inputs(tmp_path, {"1": 0.6, "2": 0.45, "3": 0.55, "4": 0.2, "5": 0.7, "6": 0.42})
    train, dev = dl19_reranker.split_pseudo_qrels(qrels, teacher, min_cosine=0.5, dev_count=2)
    assert qids(dev) == ["3", "5"]  # the last two reaching 0.5
    assert qids(train) == ["1"]
    train, dev_again = dl19_reranker.split_pseudo_qrels(qrels, teacher, min_cosine=0.4, dev_count=2)
    assert qids(dev_again) == ["3", "5"]
    assert qids(train) == ["1", "2", "6"]
    train, _ = dl19_reranker.split_pseudo_qrels(qrels, teacher, min_cosine=0.0, dev_count=2)
    assert qids(train) == ["1", "2", "4", "6"]


def test_holding_out_every_related_query_is_refused(dl19_reranker, tmp_path):
    qrels, teacher = write_inputs(tmp_path, {"1": 0.6, "2": 0.2})
    with pytest.raises(SystemExit, match="1 queries can be dev queries"):
        dl19_reranker.split_pseudo_qrels(qrels, teacher, min_cosine=0.0, dev_count=1)


def test_cached_data_is_reused_only_for_the_same_queries_and_depth(dl19_reranker, tmp_path):
    files = [tmp_path / name for name in ("queries.tsv", "bm25.trec", "teacher.trec", "pseudo-qrels.txt")]
    files[0].write_text("1\tfirst query\n2\tsecond query\n")
    files[1].write_text("".join(f"{qid} Q0 d{rank} {rank} {10 - rank} bm25\n" for qid in "12" for rank in (1, 2, 3)))
    files[2].write_text("")
    assert not dl19_reranker.is_cached(files, ["1", "2"], depth=3)  # pseudo-qrels missing
    files[3].write_text("1 0 d1 1\n2 0 d2 1\n")
    assert dl19_reranker.is_cached(files, ["1", "2"], depth=3)
    assert not dl19_reranker.is_cached(files, ["1", "2"], depth=30)  # deeper candidates: score again
    assert not dl19_reranker.is_cached(files, ["1", "2"], depth=2)
    assert not dl19_reranker.is_cached(files, ["1", "3"], depth=3)
