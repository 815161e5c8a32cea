"""The HTTP API (FastAPI): /search, /search/batch, /rerank, /health, /metrics, the search page.

Every error is JSON {"error": {"code", "message", "fix"}}; the server never crashes on a
request; requests beyond capacity get 503 with Retry-After at once."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from rankkit.data.runs import Hit
from rankkit.encode.dev_record import DevRecord
from rankkit.errors import RankkitError
from rankkit.index.kinds import registered
from rankkit.retrieve.rerank import splice_reranked
from rankkit.serve.batcher import MicroBatcher, Overloaded
from rankkit.serve.config import HYBRID, ServeConfig
from rankkit.serve.docs import add_docs
from rankkit.serve.engine import SearchEngine
from rankkit.serve.errors import ApiError, error_response
from rankkit.serve.metrics import Metrics
from rankkit.serve.openapi import document_api
from rankkit.serve.page import PAGE_CSP, SEARCH_PAGE
from rankkit.serve.schemas import (
    BatchSearchRequest,
    BatchSearchResponse,
    HealthResponse,
    RerankedPassage,
    RerankRequest,
    RerankResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from rankkit.serve.security import with_security_headers
from rankkit.serve.sentiment import add_sentiment_route
from rankkit.serve.text import has_visible_text, normalise_query, unencodable

log = logging.getLogger("rankkit.serve")
PUBLIC_PATHS = {"/health", "/", "/docs", "/openapi.json"}
PUBLIC_PREFIXES = ("/docs/",)  # the docs page's own assets
ENDPOINTS = {"/search", "/search/batch", "/rerank", "/sentiment", "/health", "/metrics", "/"}
RETRY_AFTER_S = "1"


def is_json_media_type(content_type: str) -> bool:
    """`application/json`, with or without parameters (`; charset=utf-8`), in any letter case."""
    return content_type.partition(";")[0].strip().lower() == "application/json"


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class Guard:
    """ASGI middleware: header count and size, API key, JSON content type, body size and read timeout,
    security headers on every response, metrics of every request, and the JSON 503 for work
    cancelled at shutdown."""

    def __init__(self, app: Any, config: ServeConfig, metrics: Metrics, json_paths: Callable[[], set[str]]):
        self.app, self.config, self.metrics, self.json_paths = app, config, metrics, json_paths

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status, path = time.perf_counter(), [500], scope["path"]
        response_started = [False]

        async def send_and_record(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0], response_started[0] = message["status"], True
                message = {**message, "headers": with_security_headers(message.get("headers", []))}
            await send(message)

        try:
            await self._guarded(scope, receive, send_and_record, status)
        except asyncio.CancelledError:
            # uvicorn cancels requests still running when the shutdown grace period ends:
            # answer them with the documented JSON error instead of its plain-text 500
            if not response_started[0]:
                await error_response(
                    503,
                    "shutting_down",
                    "the server is shutting down and stopped this request",
                    "retry against a running server",
                    {"Retry-After": RETRY_AFTER_S, "Connection": "close"},
                )(scope, receive, send_and_record)
        finally:
            self.metrics.observe(path if path in ENDPOINTS else "other", status[0], time.perf_counter() - started)

    async def _guarded(self, scope: dict, receive: Callable, send: Callable, status: list[int]) -> None:
        raw_headers, path = scope.get("headers", []), scope["path"]
        if len(raw_headers) > self.config.max_headers:
            return await error_response(
                431,
                "too_many_headers",
                f"{len(raw_headers)} request headers, over the limit {self.config.max_headers}",
                "send fewer headers",
            )(scope, receive, send)
        # h11 bounds headers that arrive in pieces; headers that arrive in one read are counted here
        header_bytes = sum(len(name) + len(value) + 4 for name, value in raw_headers)
        if header_bytes > self.config.max_header_bytes:
            return await error_response(
                431,
                "headers_too_large",
                f"{header_bytes} bytes of request headers, over the limit {self.config.max_header_bytes}",
                "send smaller headers",
            )(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
        if self.config.api_key and not is_public(path):
            given = headers.get("x-api-key", "")
            if not hmac.compare_digest(given.encode("latin-1"), self.config.api_key.encode("ascii")):
                return await error_response(
                    401, "unauthorized", "missing or wrong API key", "send the key in the X-API-Key header"
                )(scope, receive, send)
        if scope["method"] == "POST" and path in self.json_paths():
            if not is_json_media_type(headers.get("content-type", "")):
                return await error_response(
                    415, "not_json", "the body must be JSON", "send the header Content-Type: application/json"
                )(scope, receive, send)
            body = await self._read_body(scope, receive, send, headers, status)
            if body is None:
                return

            replayed = [False]

            async def replay_receive() -> dict:
                if not replayed[0]:
                    replayed[0] = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return await self.app(scope, replay_receive, send)
        await self.app(scope, receive, send)

    async def _read_body(
        self, scope: dict, receive: Callable, send: Callable, headers: dict[str, str], status: list[int]
    ) -> bytes | None:
        """The whole (small) body, read here so that a chunked body over the limit gets 413 too
        (raised from inside the app, FastAPI would turn the overflow into a 400), and a body
        trickled slower than --client-timeout gets 408; None when an error was answered."""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.config.max_body_bytes:
            await self._too_large(scope, receive, send)
            return None
        chunks, size, more = [], 0, True
        deadline = asyncio.get_running_loop().time() + self.config.client_timeout_s
        while more:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                await error_response(
                    408,
                    "request_timeout",
                    f"the body did not arrive within {self.config.client_timeout_s:g} s",
                    "send the whole request at once",
                    {"Connection": "close"},
                )(scope, receive, send)
                return None
            if message["type"] != "http.request":  # the client went away
                status[0] = 499
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.config.max_body_bytes:
                await self._too_large(scope, receive, send)
                return None
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _too_large(self, scope: dict, receive: Callable, send: Callable) -> None:
        await error_response(
            413,
            "body_too_large",
            f"request body over {self.config.max_body_bytes} bytes",
            "send a smaller body (fewer queries or passages)",
        )(scope, receive, send)


def _reranker_dev(record: DevRecord | None) -> dict[str, Any] | None:
    """The reranker's dev record for /health (no file names: /health is public)."""
    if record is None:
        return None
    figures = {key: value for key, value in asdict(record).items() if key != "candidates"}
    return {**figures, "improves": record.improves}


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    kind, where = first.get("type", ""), ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    if kind == "json_invalid":
        return error_response(
            400,
            "malformed_json",
            f"the body is not valid JSON ({first.get('msg')})",
            'send a JSON object, e.g. {"query": "what is bm25", "k": 10}',
        )
    if kind == "extra_forbidden":
        return error_response(
            422, "unknown_field", f"unknown field {where!r}", "remove it; see /docs for the fields each endpoint takes"
        )
    if kind == "missing" and not where:
        return error_response(
            422,
            "missing_body",
            "the request has no body",
            'send a JSON object, e.g. {"query": "what is bm25", "k": 10}',
        )
    if kind == "missing":
        return error_response(422, "missing_field", f"field {where!r} is required", "add it; see /docs")
    return error_response(
        422, "invalid_field", f"{where or 'body'}: {first.get('msg')}", "send the field with the type /docs shows"
    )


class Server:
    """The engine (loaded in the background), its batchers and metrics."""

    def __init__(self, config: ServeConfig, engine: SearchEngine | None = None):
        self.config, self.engine, self.metrics = config, engine, Metrics()
        self.load_error: str | None = None
        self.batchers: dict[str, MicroBatcher] = {}

    def start(self, engine: SearchEngine) -> None:
        for name, (process, wait_s) in engine.workers(self.config.batch_wait_ms / 1000).items():
            batcher = MicroBatcher(
                process,
                engine.executors[name],
                self.config.batch_max,
                wait_s,
                self.config.max_queue,
                self.metrics.observe_batch,
            )
            batcher.start()
            self.batchers[name] = batcher
        self.engine = engine

    def ready_engine(self) -> SearchEngine:
        if self.engine is None:
            # the reason is in the server's log: error messages name files, and this is public
            raise ApiError(
                503,
                "loading",
                "indexes and models are still loading"
                if not self.load_error
                else "loading failed (the reason is in the server's log)",
                "retry once GET /health says ready",
            )
        return self.engine

    async def submit(self, work: str, item: Any) -> Any:
        try:
            return await self.batchers[work].submit(item)
        except Overloaded:
            raise ApiError(503, "overloaded", "the server is at capacity", "retry after the Retry-After delay")
        finally:
            self.metrics.queue_depth = sum(b.depth for b in self.batchers.values())

    def check_query(self, query: str) -> str:
        """The normalised query; 422 for text that is empty, invisible, too long or not UTF-8, so
        that it never joins a micro-batch."""
        self.check_text(query, "query")
        if not has_visible_text(query):
            raise ApiError(
                422,
                "empty_query",
                "the query is empty or whitespace (or only invisible characters)",
                "send some query text",
            )
        if len(query) > self.config.max_query_chars:
            raise ApiError(
                422,
                "query_too_long",
                f"the query has {len(query)} characters, over the limit {self.config.max_query_chars}",
                "send a shorter query",
            )
        return normalise_query(query)

    @staticmethod
    def check_text(text: str, where: str) -> None:
        problem = unencodable(text)
        if problem:
            raise ApiError(422, "invalid_text", f"{where}: {problem}", "send text that is valid UTF-8")

    def check_range(self, value: int, name: str, high: int, flag: str) -> None:
        if not 1 <= value <= high:
            raise ApiError(
                422,
                f"invalid_{name}",
                f"{name}={value} is out of range",
                f"use 1 <= {name} <= {high} (the server's {flag})",
            )

    def check_k(self, k: int) -> None:
        self.check_range(k, "k", self.config.max_k, "--max-k")

    def choose_mode(self, engine: SearchEngine, mode: str | None) -> str:
        if not engine.modes:  # a server for /sentiment only
            raise ApiError(
                400, "no_index", "this server loaded no index", "start it with -i INDEX (any number of indexes)"
            )
        mode = mode or engine.modes[0]
        if mode in engine.modes:
            return mode
        if mode == HYBRID or mode.partition(":")[0] in registered():
            raise ApiError(
                400,
                "mode_unavailable",
                f"mode {mode!r} needs an index this server did not load (available: {', '.join(engine.modes)})",
                "use an available mode, or start the server with -i INDEX for each index to serve",
            )
        raise ApiError(
            422, "unknown_mode", f"unknown mode {mode!r}", f"use one of this server's modes: {', '.join(engine.modes)}"
        )

    async def search(self, request: SearchRequest) -> SearchResponse:
        engine = self.ready_engine()
        query = self.check_query(request.query)
        self.check_k(request.k)
        # capped like /rerank's passages: a deep rerank is that many cross-encoder passes
        self.check_range(request.rerank_depth, "rerank_depth", self.config.max_passages, "--max-passages")
        mode = self.choose_mode(engine, request.mode)
        if request.rerank:
            if engine.reranker is None:
                raise ApiError(400, "no_reranker", "this server has no reranker", "start it with --reranker MODEL")
            if not engine.doc_texts:
                raise ApiError(
                    400,
                    "no_texts",
                    "reranking needs passage texts, which are not loaded",
                    "start the server with the index's corpus file in place and texts on",
                )
        depth = max(request.k, request.rerank_depth if request.rerank else 0)
        if mode == HYBRID:
            pool = max(depth, self.config.hybrid_depth)
            lists = await asyncio.gather(*(self.submit(each, (query, pool)) for each in engine.retrievers))
            hits: list[Hit] = engine.fuse(lists, depth)
        else:
            hits = await self.submit(mode, (query, depth))
        if request.rerank:
            top = hits[: request.rerank_depth]
            scores = await self.submit("rerank", (query, [engine.doc_texts.get(h.docid, "") for h in top]))
            hits = splice_reranked([Hit(h.docid, s) for h, s in zip(top, scores)], hits[request.rerank_depth :])
        return SearchResponse(
            query=query,
            mode=mode,
            reranked=request.rerank,
            hits=[
                SearchHit(
                    docid=h.docid,
                    score=h.score,
                    rank=rank,
                    text=engine.doc_texts.get(h.docid) if request.text else None,
                )
                for rank, h in enumerate(hits[: request.k], start=1)
            ],
        )


def create_app(
    config: ServeConfig,
    engine: SearchEngine | None = None,
    load: Callable[[ServeConfig], SearchEngine] = SearchEngine,
    on_load_error: Callable[[Exception], None] | None = None,
) -> FastAPI:
    """The app; without `engine`, indexes and models load in the background after start-up and
    /health says 'loading' until they are ready. If loading fails, /health says 'failed' and
    `on_load_error` gets the error (`rankkit serve` then stops the server: see server.run);
    without it, the error is logged and the app stays up to say so."""
    server = Server(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async def load_in_background() -> None:
            try:
                server.start(engine or await asyncio.get_running_loop().run_in_executor(None, load, config))
            except Exception as exc:
                server.load_error = str(exc)
                if on_load_error is None:
                    log.exception("loading failed")
                else:
                    on_load_error(exc)

        loading = asyncio.create_task(load_in_background())
        yield
        loading.cancel()
        for batcher in server.batchers.values():
            await batcher.stop()
        if server.engine is not None:
            server.engine.close()  # does not wait for a batch still running past the grace period

    app = FastAPI(
        title="rankkit",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        description="Search BM25, dense and hybrid indexes; rerank with a cross-encoder.",
    )
    app.state.server = server
    json_paths: set[str] = set()

    def post_paths() -> set[str]:  # the routes exist only after create_app returns
        if not json_paths:
            json_paths.update(r.path for r in app.routes if isinstance(r, APIRoute) and "POST" in r.methods)
        return json_paths

    app.add_middleware(Guard, config=config, metrics=server.metrics, json_paths=post_paths)
    add_docs(app)
    document_api(app, config)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"Retry-After": RETRY_AFTER_S} if exc.status == 503 else None
        return error_response(exc.status, exc.code, exc.message, exc.fix, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        fixes = {
            404: "see /docs for the endpoints",
            405: "see /docs for each endpoint's method",
            400: "send a UTF-8 JSON body",
        }
        codes = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            fixes.get(exc.status_code, "see /docs"),
            exc.headers,
        )  # 405 keeps its Allow

    @app.exception_handler(RankkitError)
    async def rankkit_error(request: Request, exc: RankkitError) -> JSONResponse:
        message, _, fix = str(exc).partition(" Fix: ")
        return error_response(400, "bad_request", message, fix or "see /docs")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, "internal", f"unexpected {type(exc).__name__}", "report it with the request")

    @app.post("/search", response_model=SearchResponse)
    async def search(request: SearchRequest) -> SearchResponse:
        """Search one query (dense queries arriving together are encoded and searched together)."""
        return await server.search(request)

    @app.post("/search/batch", response_model=BatchSearchResponse)
    async def search_batch(request: BatchSearchRequest) -> BatchSearchResponse:
        """Search many queries at once."""
        if not 1 <= len(request.queries) <= config.max_batch_queries:
            raise ApiError(
                422,
                "invalid_batch",
                f"{len(request.queries)} queries in the batch",
                f"send 1 to {config.max_batch_queries} queries",
            )
        for query in request.queries:  # every query is checked before any is searched
            server.check_query(query)
        results = await asyncio.gather(
            *(
                server.search(SearchRequest(query=q, k=request.k, mode=request.mode, text=request.text))
                for q in request.queries
            )
        )
        return BatchSearchResponse(results=list(results))

    @app.post("/rerank", response_model=RerankResponse)
    async def rerank(request: RerankRequest) -> RerankResponse:
        """Score and sort the given passages for the query with the cross-encoder."""
        engine = server.ready_engine()
        query = server.check_query(request.query)
        if engine.reranker is None:
            raise ApiError(400, "no_reranker", "this server has no reranker", "start it with --reranker MODEL")
        if not 1 <= len(request.passages) <= config.max_passages:
            raise ApiError(
                422,
                "invalid_passages",
                f"{len(request.passages)} passages",
                f"send 1 to {config.max_passages} passages (the server's --max-passages)",
            )
        for i, passage in enumerate(request.passages):  # ids too: the response echoes them
            server.check_text(passage.text, f"passages[{i}].text")
            if passage.id is not None:
                server.check_text(passage.id, f"passages[{i}].id")
        scores = await server.submit("rerank", (query, [p.text for p in request.passages]))
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return RerankResponse(
            query=query,
            passages=[
                RerankedPassage(id=request.passages[i].id, score=scores[i], rank=rank, index=i)
                for rank, i in enumerate(order, start=1)
            ],
        )

    if config.sentiment_model is not None:  # else /sentiment is not in the schema, and says how to serve it
        add_sentiment_route(app, server, config)
    else:

        @app.api_route("/sentiment", methods=["GET", "POST"], include_in_schema=False)
        async def no_sentiment() -> None:
            raise ApiError(
                404,
                "not_found",
                "this server has no sentiment model, so it does not serve /sentiment",
                "start the server with --sentiment-model FOLDER (a folder `rankkit sentiment train` wrote)",
            )

    @app.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
    async def health() -> JSONResponse:
        """Ready (200) once every index and model is loaded; 503 while loading or after a failure
        (public, so it names no files: the reason is in the server's log)."""
        if server.engine is None:
            status = "failed" if server.load_error else "loading"
            error = "loading failed; the reason is in the server's log" if server.load_error else None
            return JSONResponse({"status": status, "error": error}, 503, headers={"Retry-After": RETRY_AFTER_S})
        engine = server.engine
        return JSONResponse(
            {
                "status": "ready",
                "modes": engine.modes,
                "reranker": engine.reranker is not None,
                "reranker_dev": _reranker_dev(engine.reranker_record),
                "documents": len(engine.doc_texts) or None,
            }
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus text format."""
        return PlainTextResponse(server.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(SEARCH_PAGE, headers={"Content-Security-Policy": PAGE_CSP})

    return app
