"""Checks `rankkit serve` runs before binding the port, so a misconfigured server fails at once
with one line instead of binding, printing a traceback and staying up half-broken."""

from __future__ import annotations

from rankkit.errors import RankkitError
from rankkit.serve.config import ServeConfig

KEY_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check_api_key(key: str | None) -> None:
    """None serves without a key; an empty key (which would switch authentication off without a
    word) or one with characters outside visible ASCII (which no HTTP header carries as typed,
    so it could never match) is refused."""
    if key is None:
        return
    if not key:
        raise RankkitError(
            "the API key is empty (--api-key or RANKKIT_API_KEY), which would turn authentication "
            "off. Fix: pass a non-empty key, or unset RANKKIT_API_KEY to serve without one"
        )
    bad = next((c for c in key if not 33 <= ord(c) <= 126), None)
    if bad is not None:
        raise RankkitError(
            f"the API key contains {ascii(bad)}: only visible ASCII (letters, digits, punctuation; "
            f"no spaces) can be sent in the X-API-Key header, so it could never match. "
            f"Fix: use a key such as the output of `{KEY_HINT}`"
        )


def check_startup(config: ServeConfig) -> None:
    """Everything the server is asked to serve exists and fits: at least one index or model, a
    usable API key, rankkit indexes of which no two share a kind."""
    if not config.indexes and config.sentiment_model is None:
        raise RankkitError(
            "nothing to serve. Fix: pass --index INDEX (-i; a dense and/or a BM25 index), or --sentiment-model DIR"
        )
    check_api_key(config.api_key)
    config.index_by_kind  # reads each manifest: refuses a folder that is no rankkit index, or two of one kind
