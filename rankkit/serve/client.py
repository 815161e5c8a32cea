"""A small client for a running rankkit server."""

from __future__ import annotations

from typing import Any, Sequence

import httpx

from rankkit.errors import RankkitError


class Client:
    """client = Client("http://127.0.0.1:8000"); client.search("what is bm25", k=5)"""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0):
        headers = {"X-API-Key": api_key} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RankkitError(
                f"cannot reach {self.http.base_url} ({type(exc).__name__}). "
                "Fix: start the server with `rankkit serve` or check --url"
            ) from None
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise RankkitError(f"server answered {response.status_code}: {error['message']}. Fix: {error['fix']}")
            except (ValueError, KeyError):
                raise RankkitError(
                    f"server answered {response.status_code}: {response.text[:200]}. Fix: check the server's log"
                ) from None
        return response.json() if "json" in response.headers.get("content-type", "") else response.text

    def health(self) -> dict:
        return self._call("GET", "/health")

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str | None = None,
        rerank: bool = False,
        rerank_depth: int = 50,
        text: bool = False,
    ) -> dict:
        body = {"query": query, "k": k, "rerank": rerank, "rerank_depth": rerank_depth, "text": text}
        if mode:
            body["mode"] = mode
        return self._call("POST", "/search", json=body)

    def search_batch(self, queries: Sequence[str], k: int = 10, mode: str | None = None) -> dict:
        body: dict[str, Any] = {"queries": list(queries), "k": k}
        if mode:
            body["mode"] = mode
        return self._call("POST", "/search/batch", json=body)

    def rerank(self, query: str, passages: Sequence[str]) -> dict:
        return self._call("POST", "/rerank", json={"query": query, "passages": [{"text": p} for p in passages]})

    def sentiment(self, texts: str | Sequence[str]) -> dict:
        """{"results": [{"label", "positive_probability", "index"}, ...]} for one review or several."""
        return self._call("POST", "/sentiment", json={"texts": [texts] if isinstance(texts, str) else list(texts)})

    def metrics(self) -> str:
        return self._call("GET", "/metrics")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
