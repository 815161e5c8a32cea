"""mine(), candidates, statistics, false-negative rate and the MinedSet file format, on hand-made inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankkit.data.runs import Hit, read_run
from rankkit.errors import RankkitError
from rankkit.mining import (
    Candidate,
    MarginFilter,
    MinedQuery,
    MinedSet,
    MiningConfig,
    RandomN,
    RankWindow,
    TopN,
    candidates_from_retriever,
    candidates_from_run,
    false_negative_rate,
    merge_candidates,
    mine,
    with_pooling_provenance,
)
from rankkit.mining.mine import rank_bin


def ranked(docids: list[str], source: str = "bm25", start_score: float = 100.0) -> list[Candidate]:
    """Candidates in rank order 1..n, scores start_score, start_score - 1, ..."""
    return [Candidate(d, source, rank, start_score - rank + 1) for rank, d in enumerate(docids, start=1)]


def negative_ids(mined: MinedSet, qid: str) -> list[str]:
    return [c.docid for q in mined.queries if q.qid == qid for c in q.negatives]


# ---- positives and duplicates ---------------------------------------------------------------------------------


def test_labeled_positives_never_come_out_as_negatives():
    queries = {"q1": "how do stars form"}
    qrels = {"q1": {"p1": 2, "p2": 1, "j0": 0}}  # j0 judged non-relevant: a fine negative
    candidates = {"q1": ranked(["p1", "n1", "p2", "j0", "n2"])}
    mined = mine(queries, qrels, candidates, [TopN(2)])
    assert negative_ids(mined, "q1") == ["n1", "j0"]  # p1 at rank 1 and p2 skipped, not counted in the 2
    q = mined.queries[0]
    assert q.positives == {"p1": 2, "p2": 1}
    assert mined.stats["positives_dropped"] == 2
    # with no strategy at all, still no positive
    assert negative_ids(mine(queries, qrels, candidates, []), "q1") == ["n1", "j0", "n2"]


def test_min_grade_decides_what_is_a_positive():
    queries = {"q1": "q"}
    qrels = {"q1": {"p1": 2, "p2": 1}}
    candidates = {"q1": ranked(["p1", "p2", "n1"])}
    mined = mine(queries, qrels, candidates, [], MiningConfig(min_grade=2))
    assert mined.queries[0].positives == {"p1": 2}
    assert negative_ids(mined, "q1") == ["p2", "n1"]


def test_text_duplicates_of_a_positive_are_dropped_with_doc_texts():
    queries = {"q1": "stars"}
    qrels = {"q1": {"p1": 1}}
    doc_texts = {
        "p1": "Stars form in  cold clouds.",
        "dup": "  stars FORM in cold\tclouds. ",
        "near": "Stars form in cold clouds!",
        "n1": "The moon has phases.",
    }
    candidates = {"q1": ranked(["dup", "p1", "near", "n1"])}
    mined = mine(queries, qrels, candidates, [], doc_texts=doc_texts)
    assert negative_ids(mined, "q1") == ["near", "n1"]
    assert mined.stats["positive_duplicates_dropped"] == 1
    # without texts the duplicate cannot be seen
    assert negative_ids(mine(queries, qrels, candidates, []), "q1") == ["dup", "near", "n1"]


def test_positive_provenance_recorded_for_retrieved_positives():
    queries = {"q1": "q"}
    qrels = {"q1": {"p1": 3, "p2": 1}}  # p2 never retrieved
    candidates = {
        "q1": [
            Candidate("n1", "dense:idx", 1, 0.9, 0.3),
            Candidate("p1", "dense:idx", 2, 0.8, 1.5),
            Candidate("n2", "dense:idx", 3, 0.7),
        ]
    }
    q = mine(queries, qrels, candidates, []).queries[0]
    assert set(q.positive_provenance) == {"p1"}
    found = q.positive_provenance["p1"]
    assert (found.docid, found.source, found.rank, found.score, found.teacher_score) == ("p1", "dense:idx", 2, 0.8, 1.5)


def test_negatives_keep_provenance_and_strategy_chain():
    queries = {"q1": "q"}
    candidates = {"q1": [Candidate("n1", "bm25", 1, 12.5, 0.25), Candidate("n2", "bm25", 2, 11.0)]}
    mined = mine(queries, {"q1": {"p": 1}}, candidates, [RankWindow(1, 10), TopN(5)])
    assert mined.queries[0].negatives == [
        Candidate("n1", "bm25", 1, 12.5, 0.25, "window>top"),
        Candidate("n2", "bm25", 2, 11.0, None, "window>top"),
    ]
    assert candidates["q1"][0].strategy == ""  # the input candidates are not modified
    assert mined.config["strategies"] == [repr(RankWindow(1, 10)), repr(TopN(5))]


def test_pooling_provenance_replaces_the_mining_retrievers():
    mined = mine(
        {"q1": "q"},
        {"q1": {"p1": 1, "p2": 1}},
        {
            "q1": [
                Candidate("n1", "dense", 1, 0.9, 0.5),
                Candidate("p1", "dense", 2, 0.8),
                Candidate("n2", "dense", 3, 0.7),
            ]
        },
        [RankWindow(1, 10)],
    )
    pool = {"q1": [Hit("p1", 12.0), Hit("n2", 11.0), Hit("x", 9.5)]}  # n1 beyond BM25's depth, p2 never found
    q = with_pooling_provenance(mined, pool, "bm25").queries[0]
    assert q.negatives == [
        Candidate("n1", "bm25", 4, 9.5, 0.5, "window"),
        Candidate("n2", "bm25", 2, 11.0, None, "window"),
    ]
    assert q.positive_provenance == {"p1": Candidate("p1", "bm25", 1, 12.0, None, "positive")}
    assert q.positives == {"p1": 1, "p2": 1}
    assert mined.queries[0].negatives[0].source == "dense"  # the input is not modified


# ---- positive scores for margin -------------------------------------------------------------------------------


def test_margin_uses_best_retrieved_positive_score_or_the_override():
    queries = {"q1": "q"}
    qrels = {"q1": {"p1": 1, "p2": 1}}
    candidates = {
        "q1": [
            Candidate("n1", "s", 1, 12.0),
            Candidate("p1", "s", 2, 10.0),
            Candidate("n2", "s", 3, 9.0),
            Candidate("p2", "s", 4, 8.0),
            Candidate("n3", "s", 5, 6.0),
            Candidate("n4", "s", 6, 4.0),
        ]
    }
    # positive score from the candidates: best positive, 10 -> keep score <= 9
    assert negative_ids(mine(queries, qrels, candidates, [MarginFilter(1.0)]), "q1") == ["n2", "n3", "n4"]
    # positive_scores overrides it: 5 -> keep score <= 4
    mined = mine(queries, qrels, candidates, [MarginFilter(1.0)], positive_scores={"q1": 5.0})
    assert negative_ids(mined, "q1") == ["n4"]
    # a positive the source did not retrieve has no score: margin keeps all
    unretrieved = {"q1": [c for c in candidates["q1"] if not c.docid.startswith("p")]}
    assert negative_ids(mine(queries, qrels, unretrieved, [MarginFilter(1.0)]), "q1") == ["n1", "n2", "n3", "n4"]


def test_margin_on_teacher_scores_uses_positive_teacher_scores():
    queries = {"q1": "q"}
    candidates = {
        "q1": [Candidate("n1", "s", 1, 5.0, 2.0), Candidate("n2", "s", 2, 4.0, 0.5), Candidate("p1", "s", 3, 3.0, 1.0)]
    }
    strategy = MarginFilter(0.2, field="teacher_score")
    assert negative_ids(mine(queries, {"q1": {"p1": 1}}, candidates, [strategy]), "q1") == ["n2"]
    mined = mine(queries, {"q1": {"p1": 1}}, candidates, [strategy], positive_teacher_scores={"q1": 3.0})
    assert negative_ids(mined, "q1") == ["n1", "n2"]


# ---- determinism ----------------------------------------------------------------------------------------------


def _random_mining(seed: int, path: Path) -> str:
    queries = {f"q{i}": f"query {i}" for i in range(5)}
    qrels = {qid: {f"{qid}-pos": 1} for qid in queries}
    candidates = {qid: ranked([f"{qid}-pos"] + [f"{qid}-d{j}" for j in range(40)]) for qid in queries}
    mine(queries, qrels, candidates, [RankWindow(1, 30), RandomN(4)], MiningConfig(seed=seed)).write(path)
    return path.read_text(encoding="utf-8")


def test_same_seed_same_minedset_different_seed_differs(tmp_path):
    first = _random_mining(0, tmp_path / "a.jsonl")
    again = _random_mining(0, tmp_path / "b.jsonl")
    other = _random_mining(1, tmp_path / "c.jsonl")
    assert first == again
    assert first != other
    assert json.loads(first.splitlines()[0])["_meta"]["config"]["seed"] == 0
    assert json.loads(other.splitlines()[0])["_meta"]["config"]["seed"] == 1
    # same statistics, different picks
    assert json.loads(first.splitlines()[0])["_meta"]["stats"]["negatives"] == 20
    assert first.splitlines()[1:] != other.splitlines()[1:]


# ---- statistics -----------------------------------------------------------------------------------------------


def test_skip_counts_and_qrels_without_text():
    queries = {"q1": "a", "q2": "no judgments", "q3": "only non-relevant", "q4": "no candidates"}
    qrels = {"q1": {"p1": 1}, "q3": {"x": 0}, "q4": {"p4": 2}, "q8": {"p8": 1}, "q9": {"p9": 1}}
    candidates = {"q1": ranked(["n1", "p1"]), "q2": ranked(["n1"]), "q3": ranked(["n1"]), "q4": []}
    mined = mine(queries, qrels, candidates, [])
    stats = mined.stats
    assert [q.qid for q in mined.queries] == ["q1"]
    assert stats["skipped_no_positive"] == 2  # q2, q3
    assert stats["skipped_no_candidates"] == 1  # q4
    assert stats["qrels_queries_without_text"] == 2  # q8, q9
    assert stats["skipped_empty_after_strategies"] == 0
    assert stats["queries_mined"] == 1 and stats["negatives"] == 1


def test_window_beyond_depth_skips_the_query():
    queries = {"deep": "a", "shallow": "b"}
    qrels = {"deep": {"p": 1}, "shallow": {"p": 1}}
    candidates = {"deep": ranked([f"d{i}" for i in range(30)]), "shallow": ranked(["s1", "s2", "s3"])}
    mined = mine(queries, qrels, candidates, [RankWindow(10, 200)])
    assert [q.qid for q in mined.queries] == ["deep"]
    assert [c.rank for c in mined.queries[0].negatives] == list(range(10, 31))
    assert mined.stats["skipped_empty_after_strategies"] == 1


def test_unknown_docids_are_dropped_and_counted():
    queries = {"q1": "a", "q2": "b"}
    qrels = {"q1": {"p1": 1}, "q2": {"p2": 1}}
    doc_texts = {"p1": "positive one", "p2": "positive two", "n1": "neg one", "n2": "neg two"}
    candidates = {"q1": ranked(["ghost1", "n1", "ghost2", "p1"]), "q2": ranked(["n2", "ghost1"])}
    mined = mine(queries, qrels, candidates, [], doc_texts=doc_texts)
    assert negative_ids(mined, "q1") == ["n1"] and negative_ids(mined, "q2") == ["n2"]
    assert mined.stats["unknown_docids_dropped"] == 3


def test_share_dropped_by_strategy_and_rank_histogram_by_hand():
    # q1: 250 ranked candidates, the positive at rank 2 -> 249 after the positive goes
    docs = [f"n{i}" for i in range(1, 251)]
    docs[1] = "p1"
    queries = {"q1": "a", "q2": "b"}
    qrels = {"q1": {"p1": 1}, "q2": {"p2": 1}}
    candidates = {"q1": ranked(docs), "q2": ranked(["m1", "m2", "m3"])}
    mined = mine(queries, qrels, candidates, [])
    assert mined.stats["rank_histogram"] == {"1-10": 9 + 3, "11-50": 40, "51-200": 150, "201+": 50}
    assert mined.stats["share_dropped_by_strategy"] == {}
    assert mined.stats["negatives_per_query"] == {"mean": 126.0, "min": 3, "max": 249}

    mined = mine(queries, qrels, candidates, [RankWindow(5, 100), TopN(10)])
    stats = mined.stats
    # window: q1 keeps ranks 5..100 (96 of 249), q2 keeps none of 3
    # top: q1 keeps 10 of 96; q2 never reaches it (nothing left)
    assert stats["share_dropped_by_strategy"] == pytest.approx({"window": 156 / 252, "top": 86 / 96})
    assert stats["skipped_empty_after_strategies"] == 1
    assert [c.rank for c in mined.queries[0].negatives] == list(range(5, 15))
    assert stats["rank_histogram"] == {"1-10": 6, "11-50": 4, "51-200": 0, "201+": 0}
    assert stats["negatives"] == 10 and stats["queries_mined"] == 1


def test_rank_bins():
    assert [rank_bin(r) for r in (1, 10, 11, 50, 51, 200, 201, 10_000)] == [
        "1-10",
        "1-10",
        "11-50",
        "11-50",
        "51-200",
        "51-200",
        "201+",
        "201+",
    ]


def test_empty_mining_statistics():
    mined = mine({"q1": "a"}, {"q1": {"p": 1}}, {}, [TopN(3)])
    assert mined.queries == []
    assert mined.stats["negatives_per_query"] == {"mean": 0.0, "min": 0, "max": 0}
    assert mined.stats["rank_histogram"] == {"1-10": 0, "11-50": 0, "51-200": 0, "201+": 0}


# ---- false-negative rate --------------------------------------------------------------------------------------


def test_false_negative_rate_by_hand():
    mined = MinedSet(
        [
            MinedQuery(
                "q1",
                "a",
                {"p": 1},
                [
                    Candidate("a1", "bm25", 1, 1.0),
                    Candidate("a2", "bm25", 5, 1.0),
                    Candidate("a3", "bm25", 20, 1.0),
                    Candidate("a4", "dense", 2, 1.0),
                ],
            ),
            MinedQuery(
                "q2",
                "b",
                {"p": 1},
                [Candidate("b1", "bm25", 3, 1.0), Candidate("b2", "bm25", 30, 1.0), Candidate("b3", "dense", 300, 1.0)],
            ),
        ]
    )
    full = {"q1": {"p": 1, "a1": 2, "a3": 0, "a4": 1}, "q2": {"b2": 1, "b3": 3}}
    # bm25 1-10: a1 (fn), a2, b1 -> 1/3; 11-50: a3 (grade 0), b2 (fn) -> 1/2; all: 2/5
    # dense 1-10: a4 (fn) -> 1; 201+: b3 (fn) -> 1; all: 2/2
    rates = false_negative_rate(mined, full)
    assert set(rates) == {"bm25", "dense"}
    assert rates["bm25"] == pytest.approx({"1-10": 1 / 3, "11-50": 1 / 2, "all": 2 / 5})
    assert rates["dense"] == pytest.approx({"1-10": 1.0, "201+": 1.0, "all": 1.0})
    # a stricter relevance bar: only grades >= 2 count
    strict = false_negative_rate(mined, full, min_grade=2)
    assert strict["bm25"] == pytest.approx({"1-10": 1 / 3, "11-50": 0.0, "all": 1 / 5})
    assert strict["dense"] == pytest.approx({"1-10": 0.0, "201+": 1.0, "all": 1 / 2})


# ---- candidates -----------------------------------------------------------------------------------------------


def test_candidates_from_run_ranks_in_score_order(tmp_path):
    path = tmp_path / "run.txt"
    path.write_text("q1 Q0 d2 2 1.5 bm25\nq1 Q0 d1 1 3.0 bm25\nq1 Q0 d3 3 -0.5 bm25\nq2 Q0 d9 1 7 bm25\n")
    found = candidates_from_run(read_run(path), "run.txt")
    assert found == {
        "q1": [
            Candidate("d1", "run.txt", 1, 3.0),
            Candidate("d2", "run.txt", 2, 1.5),
            Candidate("d3", "run.txt", 3, -0.5),
        ],
        "q2": [Candidate("d9", "run.txt", 1, 7.0)],
    }


def test_candidates_from_retriever():
    class Fake:
        name = "fake"

        def search(self, query, k=10):
            return self.batch_search({"x": query}, k)["x"]

        def batch_search(self, queries, k=10):
            return {qid: [Hit(f"{qid}-d{i}", 10.0 - i) for i in range(k)] for qid in queries}

    found = candidates_from_retriever(Fake(), {"q1": "a", "q2": "b"}, depth=3)
    assert [(c.docid, c.source, c.rank, c.score) for c in found["q2"]] == [
        ("q2-d0", "fake", 1, 10.0),
        ("q2-d1", "fake", 2, 9.0),
        ("q2-d2", "fake", 3, 8.0),
    ]
    assert len(found["q1"]) == 3


def test_merge_candidates_keeps_the_first_source():
    bm25 = {"q1": [Candidate("x", "bm25", 1, 9.0), Candidate("y", "bm25", 2, 8.0)]}
    dense = {
        "q1": [Candidate("y", "dense", 1, 0.9), Candidate("z", "dense", 2, 0.8)],
        "q2": [Candidate("w", "dense", 1, 0.5)],
    }
    merged = merge_candidates(bm25, dense)
    assert [(c.docid, c.source, c.rank) for c in merged["q1"]] == [
        ("x", "bm25", 1),
        ("y", "bm25", 2),
        ("z", "dense", 2),
    ]
    assert [(c.docid, c.source) for c in merged["q2"]] == [("w", "dense")]
    reverse = merge_candidates(dense, bm25)
    assert [(c.docid, c.source) for c in reverse["q1"]] == [("y", "dense"), ("z", "dense"), ("x", "bm25")]
    assert [(c.docid, c.source) for c in bm25["q1"]] == [("x", "bm25"), ("y", "bm25")]  # inputs untouched


# ---- MinedSet file --------------------------------------------------------------------------------------------


def _sample_minedset() -> MinedSet:
    queries = {"q1": "how do stars form", "q2": "ünïcode query"}
    qrels = {"q1": {"p1": 3, "p2": 1}, "q2": {"p3": 1}}
    candidates = {
        "q1": [
            Candidate("n1", "bm25", 1, 12.5, None),
            Candidate("p1", "bm25", 2, 11.0, 0.75),
            Candidate("n2", "bm25", 3, 10.0, -1.25),
        ],
        "q2": [Candidate("p3", "dense:x", 1, 0.5), Candidate("n3", "dense:x", 2, 0.25)],
    }
    return mine(queries, qrels, candidates, [RankWindow(1, 10)], MiningConfig(seed=3))


def test_minedset_round_trip(tmp_path):
    mined = _sample_minedset()
    path = tmp_path / "mined.jsonl"
    mined.write(path)
    back = MinedSet.read(path)
    assert back.config == mined.config and back.config["seed"] == 3
    assert back.stats == mined.stats
    assert len(back.queries) == 2
    for got, want in zip(back.queries, mined.queries):
        assert (got.qid, got.query, got.positives, got.negatives) == (
            want.qid,
            want.query,
            want.positives,
            want.negatives,
        )
        assert set(got.positive_provenance) == set(want.positive_provenance)
        for docid, prov in want.positive_provenance.items():
            read = got.positive_provenance[docid]
            assert (read.docid, read.source, read.rank, read.score, read.teacher_score) == (
                prov.docid,
                prov.source,
                prov.rank,
                prov.score,
                prov.teacher_score,
            )
    q1 = back.queries[0]
    assert q1.positives == {"p1": 3, "p2": 1}
    assert q1.positive_provenance["p1"].teacher_score == 0.75
    assert "p2" not in q1.positive_provenance
    assert [c.teacher_score for c in q1.negatives] == [None, -1.25]
    assert back.queries[1].positive_provenance["p3"].teacher_score is None
    assert back.queries[1].query == "ünïcode query"
    # writing the read set again gives the same file
    back.write(tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == path.read_bytes()


def test_minedset_file_layout(tmp_path):
    path = tmp_path / "mined.jsonl"
    _sample_minedset().write(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert list(header) == ["_meta"]
    assert header["_meta"]["format"] == "rankkit-minedset" and header["_meta"]["version"] == 1
    assert header["_meta"]["stats"]["queries_mined"] == 2
    first = json.loads(lines[1])
    assert first["qid"] == "q1"
    assert first["positives"] == [
        {"docid": "p1", "grade": 3, "retrieved": {"source": "bm25", "rank": 2, "score": 11.0, "teacher_score": 0.75}},
        {"docid": "p2", "grade": 1, "retrieved": None},
    ]
    assert first["negatives"][0] == {
        "docid": "n1",
        "source": "bm25",
        "rank": 1,
        "score": 12.5,
        "teacher_score": None,
        "strategy": "window",
    }
    assert len(lines) == 3
    assert not [p for p in tmp_path.iterdir() if p.name != "mined.jsonl"]  # no temporary file left


GOOD_META = json.dumps({"_meta": {"format": "rankkit-minedset", "version": 1, "config": {}, "stats": {}}})
GOOD_QUERY = json.dumps(
    {
        "qid": "q1",
        "query": "a",
        "positives": [{"docid": "p", "grade": 1, "retrieved": None}],
        "negatives": [{"docid": "n", "source": "s", "rank": 1, "score": 1.0, "teacher_score": None, "strategy": "top"}],
    }
)


@pytest.mark.parametrize(
    "lines, bad_line",
    [
        ([GOOD_META, GOOD_QUERY, "{not json"], 3),
        ([GOOD_QUERY, GOOD_QUERY], 1),  # no header
        ([json.dumps({"_meta": {"format": "something-else"}}), GOOD_QUERY], 1),
        ([GOOD_META, json.dumps({"qid": "q1", "query": "a", "positives": []})], 2),  # no negatives
        ([GOOD_META, GOOD_QUERY.replace('"strategy"', '"strategee"')], 2),  # unknown negative field
        ([GOOD_META, json.dumps([1, 2])], 2),
        ([GOOD_META, GOOD_QUERY.replace('"grade": 1', '"grade": "high"')], 2),  # grade not a number
        ([json.dumps({"_meta": "rankkit-minedset"}), GOOD_QUERY], 1),  # header not an object
        ([GOOD_META, GOOD_QUERY.replace('"retrieved": null', '"retrieved": 7')], 2),
        ([GOOD_META, GOOD_QUERY.replace(', "retrieved": null', "")], 2),  # a positive without its provenance
    ],
    ids=[
        "bad-json",
        "no-header",
        "wrong-format",
        "missing-key",
        "unknown-field",
        "not-object",
        "bad-grade",
        "meta-not-object",
        "retrieved-not-object",
        "retrieved-missing",
    ],
)
def test_malformed_minedset_line_names_file_and_line(tmp_path, lines, bad_line):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RankkitError) as info:
        MinedSet.read(path)
    message = str(info.value)
    assert f"{path}:{bad_line}" in message
    assert "Fix" in message


def test_a_positive_no_source_retrieved_reads_without_provenance(tmp_path):
    path = tmp_path / "mined.jsonl"
    path.write_text(GOOD_META + "\n" + GOOD_QUERY + "\n", encoding="utf-8")  # "retrieved": null
    mined = MinedSet.read(path)
    assert mined.queries[0].positives == {"p": 1}
    assert mined.queries[0].positive_provenance == {}
    assert mined.queries[0].negatives == [Candidate("n", "s", 1, 1.0, None, "top")]
