"""uvicorn's h11 protocol with the limits it lacks for a slow or hostile client.

uvicorn itself bounds the request line + headers in bytes (h11's max_incomplete_event_size)
and closes idle keep-alive connections (timeout_keep_alive). This subclass adds:
- a header timeout: a connection that sends nothing, or trickles its request line and headers,
  is closed `client_timeout_s` after it opened (or after its previous response);
- half-closed clients: a client that shuts down its sending side (SHUT_WR) after a complete
  request still gets the response (uvicorn closed the connection at EOF and dropped it, while
  /metrics counted a 200); an EOF before the request is complete still closes;
- a JSON body (the API's error format) on the 400 uvicorn sends for a request h11 cannot parse,
  including headers over the byte limit;
- a request framed twice, by Content-Length and Transfer-Encoding, is refused with that 400 and
  the connection closed (StrictFramingConnection)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterable

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # as uvicorn imports it
from uvicorn.protocols.http.h11_impl import H11Protocol

INVALID_REQUEST = json.dumps(
    {
        "error": {
            "code": "invalid_http",
            "message": "the request is not valid HTTP/1.1 (malformed, framed by both Content-Length and "
            "Transfer-Encoding, or its headers too large)",
            "fix": "send a well-formed request with one of Content-Length or Transfer-Encoding, and headers "
            "under the server's --max-header-bytes",
        }
    }
).encode("ascii")


def framed_twice(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request carries both Content-Length and Transfer-Encoding (h11 gives header names
    in lower case)."""
    names = {name for name, _ in headers}
    return b"content-length" in names and b"transfer-encoding" in names


class StrictFramingConnection(h11.Connection):
    """h11 frames a request that carries both Content-Length and Transfer-Encoding by the latter
    and keeps the connection open. A proxy in front that frames it by Content-Length forwards the
    bytes past the chunked body as part of this request, and this server would read them as a
    second request the proxy never saw (request smuggling). RFC 9112 section 6.1 allows such a
    request only if the connection is closed after it: it is refused here as malformed, which
    uvicorn answers with the 400 of send_400_response, closing the connection unread."""

    def next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Request) and framed_twice(event.headers):
            raise h11.RemoteProtocolError("both Content-Length and Transfer-Encoding", error_status_hint=400)
        return event


class GuardedH11Protocol(H11Protocol):
    client_timeout_s: float = 10.0  # set per server by protocol_class()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = StrictFramingConnection(
            h11.SERVER, self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        )
        self.header_timer: asyncio.TimerHandle | None = None
        self.half_closed = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._start_header_timer()  # no-op while one runs: trickling does not restart it
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._stop_header_timer()

    def eof_received(self) -> bool | None:  # type: ignore[override]
        if self.cycle is not None and not self.cycle.more_body and not self.cycle.response_complete:
            self.half_closed = True
            return True  # keep the transport open to send the response
        return None  # the transport closes

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.half_closed:
            self.transport.close()
        elif self.conn.their_state is h11.IDLE:
            self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=INVALID_REQUEST),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def _start_header_timer(self) -> None:
        if self.header_timer is None and not self.transport.is_closing():
            self.header_timer = self.loop.call_later(self.client_timeout_s, self._header_timeout)

    def _stop_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _header_timeout(self) -> None:
        self.header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()  # h11 cannot send a response before a request


def protocol_class(client_timeout_s: float) -> type[GuardedH11Protocol]:
    """GuardedH11Protocol with this server's header timeout (uvicorn takes a class, not a factory)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"client_timeout_s": client_timeout_s})
