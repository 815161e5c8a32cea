"""Security headers on every response: nosniff, no framing (X-Frame-Options and CSP
frame-ancestors), no referrer, and a Content-Security-Policy. JSON and text responses get a
policy that allows nothing; the search page and /docs set their own (see page.py, docs.py)."""

from __future__ import annotations

import base64
import hashlib

API_CSP = "default-src 'none'; frame-ancestors 'none'"
BASE_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def csp_hash(source: str) -> str:
    """The CSP source expression that allows exactly this inline <script> or <style> text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` plus the security headers the response did not set itself."""
    present = {name.lower() for name, _ in headers}
    added = [(name, value) for name, value in BASE_HEADERS if name not in present]
    if b"content-security-policy" not in present:
        added.append((b"content-security-policy", API_CSP.encode("ascii")))
    return [*headers, *added]
