"""Checks `rankkit serve` runs before binding the port, so a misconfigured server fails at once
with one line instead of binding, printing a traceback and staying up half-broken."""

from __future__ import annotations

from rankkit.errors import RankkitError
from rankkit.index.manifest import Manifest
from rankkit.serve.config import ServeConfig

INDEX_FLAGS = {"dense": "--index", "bm25": "--bm25-index"}
KEY_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check_api_key(key: str | None) -> None:
    """None serves without a key; an empty key (which would switch authentication off without a
    word) or one with characters outside visible ASCII (which no HTTP header carries as typed,
    so it could never match) is refused."""
    if key is None:
        return
    if not key:
        raise RankkitError("the API key is empty (--api-key or RANKKIT_API_KEY), which would turn authentication "
                           "off. Fix: pass a non-empty key, or unset RANKKIT_API_KEY to serve without one")
    bad = next((c for c in key if not 33 <= ord(c) <= 126), None)
    if bad is not None:
        raise RankkitError(f"the API key contains {ascii(bad)}: only visible ASCII (letters, digits, punctuation; "
                           f"no spaces) can be sent in the X-API-Key header, so it could never match. "
                           f"Fix: use a key such as the output of `{KEY_HINT}`")


def check_index(folder: str, kind: str) -> None:
    """`folder` is a rankkit index of `kind` (what its flag promises)."""
    flag = INDEX_FLAGS[kind]
    found = Manifest.read(folder).kind
    if found != kind:
        other = INDEX_FLAGS.get(found)
        fix = f"pass it as {other}" if other else f"pass a {kind} index to {flag}"
        raise RankkitError(f"{folder}: {flag} takes a {kind} index, but this is a {found} index. Fix: {fix}")


def check_startup(config: ServeConfig) -> None:
    if config.index is None and config.bm25_index is None and config.sentiment_model is None:
        raise RankkitError("nothing to serve. Fix: pass --index DENSE_INDEX and/or --bm25-index BM25_INDEX "
                           "(or --sentiment-model DIR)")
    check_api_key(config.api_key)
    if config.index is not None:
        check_index(config.index, "dense")
    if config.bm25_index is not None:
        check_index(config.bm25_index, "bm25")
