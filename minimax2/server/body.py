"""Request bodies parsed and validated in a worker thread, not on the event loop.

A body may be up to `--max-body-mb` of JSON; decoding and validating one that large (say 120,000 tool
definitions) takes seconds, and on the event loop every other request and stream (and /health) would
wait for it. Here the route's body arrives as a dependency: read on the loop, decoded with `json` and
validated by the pydantic model in a thread, with the errors FastAPI itself would raise (so they get
the same 400s in each API's shape).

    async def chat_completions(request: Request, req: ChatCompletionRequest = Depends(body(ChatCompletionRequest))):
"""

from __future__ import annotations

import asyncio
import json

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from .errors import APIError


def _validate(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:  # malformed JSON, bad UTF-8, nesting past Python's stack
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",),
                                       "msg": f"JSON decode error: {str(e) or type(e).__name__}"}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])}
                                      for err in e.errors(include_url=False)]) from None


def body(model: type[BaseModel]):
    """A FastAPI dependency giving the request's body as `model`, validated off the event loop."""

    async def parse(request: Request) -> BaseModel:
        try:
            raw = await request.body()
        except ClientDisconnect:  # gone (or dropped for a stalled body) before the body was whole
            raise APIError(400, "the client disconnected before sending the whole body") from None
        return await asyncio.to_thread(_validate, model, raw)

    return parse
