"""ASGI middleware in front of the routes: API key (constant-time) and the request body limit (413).

Pure ASGI rather than Starlette's BaseHTTPMiddleware, so that handlers still see the client's
disconnect (a non-streaming request is aborted when its client goes away)."""

from __future__ import annotations

import hmac

from .errors import error_response

OPEN_PATHS = {"/health", "/version", "/metrics", "/ping"}


class AuthAndBodyLimit:
    """The middleware: 401 without the API key (except on OPEN_PATHS), 413 past the body limit."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int):
        self.app, self.key, self.limit = app, api_key, max_body_bytes

    def _key_ok(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("x-api-key", "")
        return hmac.compare_digest(given.encode(), self.key.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.key and path not in OPEN_PATHS and not self._key_ok(headers):
            return await error_response(path, 401, "invalid or missing API key (Authorization: Bearer KEY or "
                                                   "x-api-key)", code="invalid_api_key")(scope, receive, send)
        length = headers.get("content-length")
        too_big = error_response(path, 413, f"request body larger than {self.limit} bytes")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                if length.isdigit() and int(length) <= 4 * self.limit:
                    await self._drain(receive)  # read it, so the client sees the 413 rather than a reset
                return await too_big(scope, receive, send)
            return await self.app(scope, receive, send)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        body, more = b"", True  # chunked: buffer up to the limit, then replay it to the app
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
            if len(body) > self.limit:
                return await too_big(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    @staticmethod
    async def _drain(receive) -> None:
        while True:
            msg = await receive()
            if msg["type"] != "http.request" or not msg.get("more_body", False):
                return
