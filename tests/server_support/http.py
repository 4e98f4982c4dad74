"""Raw HTTP helpers (stdlib) for requests the SDKs refuse to send, and waiting for an idle engine."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


def post(url: str, body: bytes | dict, headers: dict | None = None) -> tuple[int, dict, dict]:
    """Raw POST (for bodies the SDKs refuse to send): (status, JSON body, headers)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_idle(backend, free_blocks: int | None = None, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = backend.stats()
        if s["running"] == 0 and s["waiting"] == 0 and (free_blocks is None or s["free_blocks"] == free_blocks):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"engine not idle: {s}")
        time.sleep(0.05)
