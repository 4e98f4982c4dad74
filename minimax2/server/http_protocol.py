"""The HTTP/1.1 protocol the server runs: uvicorn's h11 protocol plus header and body read timeouts.

uvicorn closes idle keep-alive connections, but a connection that has sent part of its request
headers is held forever: a client trickling headers (or just opening sockets and sending a byte)
can pin any number of connections. Here every request's headers must be complete within
`header_timeout` seconds of the connection opening (or of the previous response ending), else the
connection is closed. Likewise a request body must keep coming: a connection that sends no body
bytes for `header_timeout` seconds while the server is ready to read them is closed (the request
is dropped as a client disconnect), so a client that sends its headers and then one byte cannot
hold a connection either."""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderTimeoutProtocol(H11Protocol):
    header_timeout = 10.0  # set per server by `with_header_timeout`

    _timer: asyncio.TimerHandle | None = None  # the headers' deadline while idle, the body's while it comes

    def _arm(self) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        state = self.conn.their_state
        if self.transport.is_closing() or state not in (h11.IDLE, h11.SEND_BODY):
            return
        if state is h11.SEND_BODY and self.flow.read_paused:  # the app has not taken what came: not the client
            self._arm()
            return
        self.transport.close()  # headers or body stalled: no whole request to answer

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        state = self.conn.their_state
        if state is h11.SEND_BODY:  # more body to come: each arrival restarts its deadline
            self._arm()
        elif state is not h11.IDLE:  # the whole request is in
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # before: the next pipelined request may be parsed (and disarm) right away
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


def with_header_timeout(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class to pass as uvicorn's `http=`, with this timeout."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": float(seconds)})
