"""The search page at / in headless Chromium (selenium), against `rankkit serve` on a dense index
of the sample built with the real default model, and a BM25 index (slow: `make test-slow`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
if not CHROMIUM.exists():
    pytest.skip(f"headless page tests need Chromium at {CHROMIUM} (Debian package `chromium`)", allow_module_level=True)
httpx = pytest.importorskip("httpx", reason="serving needs the serve extra (httpx)")
pytest.importorskip("fastapi", reason="serving needs the serve extra (fastapi)")
pytest.importorskip("pyserini", reason="the BM25 index needs the bm25 extra (pyserini)")
webdriver = pytest.importorskip("selenium.webdriver", reason="page tests need selenium (the dev extra)")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from rankkit.data.collection import SAMPLE_DIR  # noqa: E402

KEY = "pagekey"
SKY = "why is the sky blue"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """`python -m rankkit.cli serve` on the sample's dense (default model) and BM25 indexes."""
    from rankkit.encode import BiEncoder
    from rankkit.index.bm25 import build_bm25_index
    from rankkit.index.dense import build_dense_index

    root = tmp_path_factory.mktemp("serve-page")
    corpus = SAMPLE_DIR / "collection.tsv"
    build_dense_index(corpus, root / "dense", BiEncoder("default", device="cpu"))
    build_bm25_index(corpus, root / "bm25")
    port, log = free_port(), root / "server.log"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    env.pop("RANKKIT_API_KEY", None)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rankkit.cli",
                "serve",
                "--index",
                str(root / "dense"),
                "--index",
                str(root / "bm25"),
                "--port",
                str(port),
                "--api-key",
                KEY,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready after 120 s:\n{log.read_text(errors='replace')}")
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1400",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def sky_grade3() -> set[str]:
    rows = [line.split() for line in (SAMPLE_DIR / "qrels.txt").read_text().splitlines() if line.strip()]
    found = {docid for qid, _, docid, grade in rows if qid == "q13" and grade == "3"}
    assert found, "the sample qrels lost q13's grade-3 passages"
    return found


@pytest.fixture(scope="module")
def collection() -> dict[str, str]:
    texts = {}
    for line in (SAMPLE_DIR / "collection.tsv").read_text(encoding="utf-8").splitlines():
        docid, text = line.split("\t", 1)
        texts[docid] = text
    return texts


def search(driver, url: str, query: str, mode: str, key: str = KEY, rerank: bool = False) -> str:
    """Fill in the form, submit, wait for the status line to change; return it."""
    if driver.current_url.rstrip("/") != url:
        driver.get(url + "/")
    box = driver.find_element(By.ID, "query")
    box.clear()
    box.send_keys(query)
    Select(driver.find_element(By.ID, "mode")).select_by_value(mode)
    key_box = driver.find_element(By.ID, "api-key")
    key_box.clear()
    key_box.send_keys(key)
    checkbox = driver.find_element(By.ID, "rerank")
    if checkbox.is_selected() != rerank:
        checkbox.click()
    driver.execute_script("document.getElementById('status').textContent = '';")
    driver.find_element(By.ID, "go").click()
    status = driver.find_element(By.ID, "status")
    WebDriverWait(driver, 60).until(lambda d: status.text and status.text != "searching...")
    return status.text


def shown_hits(driver) -> list[dict]:
    hits = []
    for element in driver.find_elements(By.CSS_SELECTOR, "#results .hit"):
        meta = element.find_element(By.CSS_SELECTOR, ".meta").text.split()
        # "#1  s061  score 0.6543"
        assert meta[0].startswith("#") and meta[2] == "score", meta
        hits.append(
            {
                "rank": int(meta[0][1:]),
                "docid": meta[1],
                "score": float(meta[3]),
                "text": element.find_element(By.CSS_SELECTOR, ".text").text,
            }
        )
    return hits


def test_page_has_the_search_form(browser, server_url):
    browser.get(server_url + "/")
    assert browser.title == "rankkit search"
    assert browser.find_element(By.ID, "query").get_attribute("type") == "search"
    options = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "mode")).options]
    assert {"dense", "bm25", "hybrid"} <= set(options)


def test_dense_then_hybrid_search(browser, server_url, sky_grade3, collection, tmp_path):
    status = search(browser, server_url, SKY, "dense")
    assert status.startswith("10 results (dense)"), status
    hits = shown_hits(browser)
    assert [h["rank"] for h in hits] == list(range(1, 11))
    assert all(h["docid"] in collection for h in hits)
    assert all(h["text"] and h["text"] == collection[h["docid"]].strip() for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert {h["docid"] for h in hits[:3]} & sky_grade3, [h["docid"] for h in hits[:3]]
    assert "sky" in hits[0]["text"].lower() or "blue" in hits[0]["text"].lower(), hits[0]

    screenshot = tmp_path / "dense.png"
    assert browser.save_screenshot(str(screenshot))
    data = screenshot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000

    status = search(browser, server_url, SKY, "hybrid")
    assert status.startswith("10 results (hybrid)"), status
    hybrid = shown_hits(browser)
    assert len(hybrid) == 10 and all(h["text"] for h in hybrid)
    assert {h["docid"] for h in hybrid[:3]} & sky_grade3, [h["docid"] for h in hybrid[:3]]
    assert hybrid[0]["score"] > 1.0  # fused z-scores (the default fusion), not cosines


def test_errors_are_shown_with_the_fix(browser, server_url):
    status = search(browser, server_url, SKY, "dense", key="wrong")
    assert "missing or wrong API key" in status and "Fix: send the key in the X-API-Key header" in status
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")
    assert browser.find_elements(By.CSS_SELECTOR, "#results .hit") == []
    status = search(browser, server_url, SKY, "dense", rerank=True)
    assert "no reranker" in status and "Fix: start it with --reranker" in status


def test_page_runs_under_its_content_security_policy(server_url):
    # the searches above prove the inline script ran; here: the policy that allowed it is strict
    policy = httpx.get(server_url + "/").headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy


def test_docs_render_offline_under_their_policy(browser, server_url):
    # Swagger UI's files come from the server itself (fastapi-offline's assets), its inline
    # script is allowed by hash: the page renders the operations with nothing fetched elsewhere
    browser.get(server_url + "/docs")
    WebDriverWait(browser, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title")))
    assert "rankkit" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    WebDriverWait(browser, 30).until(lambda d: "/search/batch" in d.find_element(By.ID, "swagger-ui").text)
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(name.startswith(server_url) for name in loaded), loaded
