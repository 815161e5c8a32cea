"""Request and response bodies of the HTTP API. Unknown fields are refused (extra='forbid') and
types are strict: `k: "10"`, `k: true` and `rerank: "yes"` are 422, not coerced. The limits that
depend on the server's flags (max k, query length, list sizes) are added to the OpenAPI schema
by rankkit.serve.openapi."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Mode = Annotated[
    str,
    Field(
        description="A search mode of this server (GET /health lists them): an index's kind (bm25, dense, splade), "
        "KIND:FOLDER when it serves two of a kind, or hybrid (every index fused); default: the first."
    ),
]


def _integral_float_to_int(value: Any) -> Any:
    """JSON Schema counts 10.0 as an integer; strict mode alone would refuse it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_integral_float_to_int)]  # strict otherwise: no "10", no true


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SearchRequest(Strict):
    query: str = Field(description="The query text.")
    k: Int = Field(10, description="Hits to return.")
    mode: Mode | None = None
    rerank: bool = Field(False, description="Rerank the top rerank_depth hits with the cross-encoder.")
    rerank_depth: Int = Field(50, description="How many hits to rerank (at most the server's --max-passages).")
    text: bool = Field(False, description="Include passage texts.")


class BatchSearchRequest(Strict):
    queries: list[str] = Field(description="Query texts.")
    k: Int = 10
    mode: Mode | None = None
    text: bool = False


class Passage(Strict):
    id: str | None = None
    text: str


class RerankRequest(Strict):
    query: str
    passages: list[Passage]


class SearchHit(BaseModel):
    docid: str
    score: float
    rank: int
    text: str | None = None


class SearchResponse(BaseModel):
    query: str
    mode: str
    reranked: bool
    hits: list[SearchHit]


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse]


class RerankedPassage(BaseModel):
    id: str | None
    score: float
    rank: int
    index: int  # position in the request


class RerankResponse(BaseModel):
    query: str
    passages: list[RerankedPassage]


class RerankerDev(BaseModel):
    """The reranker's dev record: its figure beside its first stage's on the same dev candidates."""

    measure: str
    reranker: float
    first_stage: float
    queries: int
    improves: bool


class HealthResponse(BaseModel):
    status: Literal["ready", "loading", "failed"]
    modes: list[str] | None = None
    reranker: bool | None = None
    reranker_dev: RerankerDev | None = None  # null: no reranker, or one that records no dev figure
    documents: int | None = None
    error: str | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str
    fix: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
