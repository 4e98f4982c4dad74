"""A configured uvicorn server in a thread, raw HTTP, and probes of /health and of dropped connections
(the hardening and input-review tests)."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import socket
import threading
import time

from server_support.http import get as _get


def side_app(server, **cfg):
    from minimax2.server.app import create_app
    from minimax2.server.service import ServerConfig

    return create_app(server.app.state.server.backend, ServerConfig(served_model_name="tiny", **cfg))


class Serving:
    """A configured uvicorn server (the CLI's settings) in a thread; `exit()` is what a SIGTERM does."""

    def __init__(self, app, drain_timeout: float = 5.0, header_timeout: float = 10.0):
        from minimax2.server.uvicorn_server import DrainingServer, uvicorn_config

        config = uvicorn_config(app, "127.0.0.1", 0, drain_timeout, header_timeout, "warning")
        self.server = DrainingServer(config, app.state.server)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def exit(self):
        self.server.handle_exit(signal.SIGTERM, None)

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)


def _raw(port: int, path: str, body: dict | bytes) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = body if isinstance(body, bytes) else json.dumps(body)
    conn.request("POST", path, data, {"content-type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read().decode()


def _probe_health_while(s, bodies) -> tuple[list, list[float]]:
    """Send every (path, body) from its own thread and probe /health every 10 ms until all are answered
    (at least 20 probes): ([(status, text)], [probe latency in s])."""
    results, latencies = [], []
    jobs = [threading.Thread(target=lambda p=p, b=b: results.append(_raw(s.port, p, b))) for p, b in bodies]
    for j in jobs:
        j.start()
    while any(j.is_alive() for j in jobs) or len(latencies) < 20:
        t0 = time.perf_counter()
        assert _get(s.url + "/health")[0] == 200
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.01)
    for j in jobs:
        j.join()
    return results, latencies


def closed_by_server(socks: list[socket.socket]) -> int:
    """How many of these connections the server has closed (each is closed here too)."""
    closed = 0
    for k in socks:
        try:
            closed += k.recv(64) == b""
        except ConnectionResetError:
            closed += 1
        k.close()
    return closed
