"""The uvicorn server `minimax2 serve` runs: its settings (h11 with a header-read timeout, a graceful
shutdown that outlasts the app's drain) and a server class whose exit starts that drain."""

from __future__ import annotations

import signal

import uvicorn

from .http_protocol import with_header_timeout

DRAIN_GRACE = 5.0  # seconds uvicorn waits past --drain-timeout: for the error answers to go out


def uvicorn_config(app, host: str, port: int, drain_timeout: float, header_timeout: float,
                   log_level: str = "info") -> uvicorn.Config:
    """uvicorn's settings for this app: the h11 protocol with a header-read timeout, and a graceful
    shutdown that outlasts the app's own drain deadline (so requests end in their API's shape)."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                          http=with_header_timeout(header_timeout),
                          timeout_graceful_shutdown=max(1, int(drain_timeout + DRAIN_GRACE)))


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose exit (SIGTERM/SIGINT) starts the app's drain: /health says 503, new
    requests are refused, and what is still running after --drain-timeout ends with a 503 in its API's
    shape. A SIGTERM drain ends with exit status 0 (uvicorn would re-raise the signal).

    `service` is the app's `ModelService` (`app.state.server`)."""

    def __init__(self, config: uvicorn.Config, service):
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig, frame) -> None:
        service = self.service
        service.draining = True
        if service.loop is not None and not service.loop.is_closed():
            service.loop.call_soon_threadsafe(service.begin_drain)
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in getattr(self, "_captured_signals", []):
            self._captured_signals.remove(sig)
