"""API errors and their two wire shapes: OpenAI's (`/v1/chat/completions`, `/v1/completions`, ...)
and Anthropic's (`/v1/messages`)."""

from __future__ import annotations

import logging
from typing import AsyncIterator, Callable

from fastapi.responses import JSONResponse

OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                413: "invalid_request_error", 429: "rate_limit_exceeded", 500: "internal_server_error",
                503: "service_unavailable"}
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
                   429: "rate_limit_error", 500: "api_error",
                   503: "overloaded_error", 529: "overloaded_error"}


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.retry_after = status, message, param, code, retry_after


def is_anthropic(path: str) -> bool:
    return path.startswith("/v1/messages")


def error_body(path: str, status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    if is_anthropic(path):
        return {"type": "error", "error": {"type": ANTHROPIC_TYPES.get(status, "api_error"), "message": message}}
    return {"error": {"message": message, "type": OPENAI_TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def error_response(path: str, status: int, message: str, param: str | None = None, code: str | None = None,
                   retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(error_body(path, status, message, param, code), status_code=status, headers=headers)


def from_api_error(path: str, e: APIError) -> JSONResponse:
    return error_response(path, e.status, e.message, e.param, e.code, e.retry_after)


def validation_message(errors: list[dict]) -> str:
    """One readable line from pydantic/FastAPI validation errors."""
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else "")


async def guard_stream(path: str, events: AsyncIterator[str], gen, sse: Callable[[dict], str]) -> AsyncIterator[str]:
    """Server-sent events of one streaming response. Headers are already sent, so an error becomes a
    last event in the API's own shape (then `[DONE]` on the OpenAI routes, whose clients wait for it);
    whatever happens, the engine stream is closed (aborting it)."""
    try:
        async for event in events:
            yield event
    except APIError as e:
        yield sse(error_body(path, e.status, e.message))
        if not is_anthropic(path):
            yield "data: [DONE]\n\n"
    except Exception as e:  # a bug mid-stream: report it in the stream, log the traceback
        logging.getLogger("minimax2.server").exception("stream failed")
        yield sse(error_body(path, 500, f"internal error: {type(e).__name__}"))
        if not is_anthropic(path):
            yield "data: [DONE]\n\n"
    finally:
        await events.aclose()
        await gen.aclose()
