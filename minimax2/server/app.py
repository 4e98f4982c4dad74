"""The FastAPI application: routes of both APIs, operations endpoints, API key, body limit and
error shapes.

    app = create_app(LocalBackend(LLM(path)), ServerConfig(served_model_name="minimax-m2"))
"""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from . import anthropic_api, openai_api, responses_api
from .errors import APIError, error_response, from_api_error, validation_message
from .guard import AuthAndBodyLimit
from .service import ModelService, ServerConfig

log = logging.getLogger("minimax2.server")


def create_app(backend, config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    state = ModelService(backend, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.loop = asyncio.get_running_loop()  # where a drain started by a signal handler runs
        # What exists at start (the model, the tokenizer, torch's and our modules) lives as long as the
        # server: out of the cyclic GC's reach, a full collection walks only what requests allocated,
        # instead of stalling every request and stream for the whole heap (hundreds of ms in a big one)
        gc.freeze()
        yield
        state.draining = True  # the owner of the backend closes it (the CLI, after the server stopped)

    app = FastAPI(title="minimax2", version=__version__, lifespan=lifespan)
    app.state.server = state
    app.include_router(openai_api.router)
    app.include_router(anthropic_api.router)
    app.include_router(responses_api.router)

    app.add_middleware(AuthAndBodyLimit, api_key=config.api_key, max_body_bytes=config.max_body_bytes)

    @app.exception_handler(APIError)
    async def api_error(request: Request, e: APIError):
        return from_api_error(request.url.path, e)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        return error_response(request.url.path, 400, validation_message(list(e.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return error_response(request.url.path, e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def crashed(request: Request, e: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return error_response(request.url.path, 500, f"internal error: {type(e).__name__}")

    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health():
        if not backend.alive or state.draining:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return {"status": "ok"}

    @app.get("/version")
    async def version():
        return {"version": __version__, "backend": backend.kind}

    @app.get("/metrics")
    async def metrics():
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
