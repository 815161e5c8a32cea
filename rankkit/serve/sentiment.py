"""POST /sentiment: P(positive) and a label for each review, from the model given to
`rankkit serve --sentiment-model DIR`. Reviews from concurrent requests are classified together
(micro-batched, as dense queries are); limits and errors are those of the other endpoints."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from pydantic import BaseModel, Field

from rankkit.sentiment.data import LABEL_NAMES
from rankkit.serve.errors import ApiError
from rankkit.serve.schemas import Strict
from rankkit.serve.text import has_visible_text

if TYPE_CHECKING:
    from fastapi import FastAPI

    from rankkit.sentiment.model import SentimentModel
    from rankkit.serve.config import ServeConfig


class SentimentServer(Protocol):
    """What the route needs of rankkit.serve.app.Server (app.py adds the route, so it is not imported here)."""

    def ready_engine(self) -> Any: ...

    def check_text(self, text: str, where: str) -> None: ...

    async def submit(self, work: str, item: Any) -> Any: ...


class SentimentRequest(Strict):
    texts: list[str] = Field(description="Reviews to classify (1 to max_batch_queries).")


class SentimentResult(BaseModel):
    label: str  # negative | positive
    positive_probability: float
    index: int  # position in the request


class SentimentResponse(BaseModel):
    results: list[SentimentResult]


def load_sentiment(config: "ServeConfig") -> "SentimentModel":
    from rankkit.sentiment.model import load_sentiment_model

    return load_sentiment_model(config.sentiment_model, config.device, config.precision, config)  # type: ignore[arg-type]


def classify_batch(model: "SentimentModel", texts: Sequence[str]) -> list[float]:
    """P(positive) of a micro-batch of reviews."""
    return [float(p) for p in model.predict_proba(list(texts))]


def add_sentiment_route(app: "FastAPI", server: SentimentServer, config: "ServeConfig") -> None:
    def check(texts: list[str]) -> list[str]:
        if not 1 <= len(texts) <= config.max_batch_queries:
            raise ApiError(
                422,
                "invalid_batch",
                f"{len(texts)} texts in the request",
                f"send 1 to {config.max_batch_queries} texts",
            )
        for position, text in enumerate(texts):
            server.check_text(text, f"texts[{position}]")  # lone surrogates never join a batch
        cleaned = [" ".join(t.split()) for t in texts]
        for position, text in enumerate(cleaned):
            if not has_visible_text(text):  # as a query
                raise ApiError(
                    422,
                    "empty_text",
                    f"texts[{position}] is empty or whitespace (or only invisible characters)",
                    "send review text",
                )
            if len(text) > config.max_query_chars:
                raise ApiError(
                    422,
                    "text_too_long",
                    f"texts[{position}] has {len(text)} characters, over the limit {config.max_query_chars}",
                    "send shorter reviews",
                )
        return cleaned

    @app.post("/sentiment", response_model=SentimentResponse)
    async def sentiment(request: SentimentRequest) -> SentimentResponse:
        """Classify reviews as positive or negative, with P(positive)."""
        server.ready_engine()  # 503 while the model loads (the route exists only with --sentiment-model)
        texts = check(request.texts)
        scores = await asyncio.gather(*(server.submit("sentiment", text) for text in texts))
        return SentimentResponse(
            results=[
                SentimentResult(label=LABEL_NAMES[int(p >= 0.5)], positive_probability=p, index=i)
                for i, p in enumerate(scores)
            ]
        )
