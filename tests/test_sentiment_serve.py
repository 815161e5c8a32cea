"""POST /sentiment over real HTTP connections: `rankkit serve --sentiment-model DIR` as a
subprocess (a TF-IDF model of the sample reviews), called with httpx and the library Client,
good input and bad."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_serve import ServerProcess, assert_error, httpx, run_cli  # skips where the serve extra is absent

from rankkit.errors import RankkitError
from rankkit.sentiment import SentimentConfig, load_sentiment_model, read_reviews, train_sentiment
from rankkit.sentiment.data import LabelSpec
from rankkit.serve import Client

SAMPLE = Path(__file__).resolve().parents[1] / "rankkit" / "sentiment" / "sample" / "reviews.csv"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    reviews = read_reviews(SAMPLE, LabelSpec(rating_column="rating"))
    return train_sentiment(
        reviews.texts,
        reviews.labels,
        SentimentConfig(output=str(tmp_path_factory.mktemp("sentiment") / "run"), method="tfidf"),
    )


@pytest.fixture(scope="module")
def servers(tmp_path_factory, model_dir, tiny_model):
    """`sentiment`: a sentiment model only, --max-batch-queries 4 --max-query-chars 50; `search`: a
    dense index of the search sample and no sentiment model."""
    from rankkit.data.collection import SAMPLE_DIR
    from rankkit.encode import BiEncoder
    from rankkit.index.dense import build_dense_index

    root = tmp_path_factory.mktemp("sentiment-serve")
    started = {
        "sentiment": ServerProcess(
            ["--sentiment-model", str(model_dir), "--max-batch-queries", "4", "--max-query-chars", "50"],
            root / "sentiment.log",
        )
    }
    try:
        build_dense_index(SAMPLE_DIR / "collection.tsv", root / "dense", BiEncoder(tiny_model, device="cpu"))
        started["search"] = ServerProcess(["--index", str(root / "dense")], root / "search.log")
        for server in started.values():
            server.wait_ready(timeout=240)  # the shared CPUs can be slow to start a server
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture()
def http(servers):
    with httpx.Client(base_url=servers["sentiment"].url, timeout=30) as client:
        yield client


def test_sentiment_matches_the_model(http, model_dir):
    texts = ["khub valo product 😍", "ekdom faltu, taka nosto", "valo jinis"]
    response = http.post("/sentiment", json={"texts": texts})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    expected = load_sentiment_model(model_dir).predict_proba(texts)
    assert [r["index"] for r in results] == [0, 1, 2]
    assert [r["positive_probability"] for r in results] == pytest.approx(expected.tolist())
    assert [r["label"] for r in results] == ["positive" if p >= 0.5 else "negative" for p in expected]


def test_client_sentiment_takes_one_text_or_several(servers):
    with Client(servers["sentiment"].url) as client:
        one = client.sentiment("valo laglo")
        several = client.sentiment(["valo laglo", "baje"])
        assert len(one["results"]) == 1 and len(several["results"]) == 2
        assert one["results"][0] == several["results"][0]
        with pytest.raises(RankkitError, match="texts\\[0\\] is empty"):
            client.sentiment("   ")


def test_concurrent_requests_are_all_answered(http, servers):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda i: (
                    httpx.post(
                        servers["sentiment"].url + "/sentiment", json={"texts": [f"valo {i}"]}, timeout=30
                    ).status_code
                ),
                range(16),
            )
        )
    assert statuses == [200] * 16


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"texts": []}, 422, "invalid_batch"),
        ({"texts": ["a"] * 5}, 422, "invalid_batch"),
        ({"texts": ["valo", " \t "]}, 422, "empty_text"),
        ({"texts": ["valo", "\u200b\u200b\ufeff"]}, 422, "empty_text"),  # zero-width only, as /search refuses
        ({"texts": ["x" * 51]}, 422, "text_too_long"),
        ({"texts": "valo"}, 422, "invalid_field"),
        ({"texts": [1, 2]}, 422, "invalid_field"),
        ({"texts": ["valo"], "k": 3}, 422, "unknown_field"),
        ({}, 422, "missing_field"),
    ],
)
def test_bad_sentiment_requests(http, body, status, code):
    assert_error(http.post("/sentiment", json=body), status, code)


def test_malformed_json_and_wrong_content_type(http):
    assert_error(
        http.post("/sentiment", content=b'{"texts": [', headers={"Content-Type": "application/json"}),
        400,
        "malformed_json",
    )
    assert_error(http.post("/sentiment", content=b"valo", headers={"Content-Type": "text/plain"}), 415, "not_json")


def test_a_sentiment_only_server_has_no_search(http):
    assert_error(http.post("/search", json={"query": "valo"}), 400, "no_index")


def test_a_server_without_a_sentiment_model_has_no_sentiment_endpoint(servers):
    # regression: the route answered 400 on such a server while its schema promised it, which
    # schemathesis reports as a schema-valid request rejected
    response = httpx.post(servers["search"].url + "/sentiment", json={"texts": ["valo"]}, timeout=30)
    assert_error(response, 404, "not_found")
    assert "/sentiment" not in httpx.get(servers["search"].url + "/openapi.json", timeout=30).json()["paths"]
    assert httpx.post(servers["search"].url + "/search", json={"query": "sky"}, timeout=30).status_code == 200


def test_serve_refuses_a_folder_that_is_no_sentiment_model(tmp_path):
    result = run_cli("serve", "--sentiment-model", str(tmp_path))
    assert result.returncode == 2 and "not a sentiment model folder" in result.stderr
