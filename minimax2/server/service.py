"""The server's shared state: the backend, admission (limits, draining), and the generation stream
with its metrics and its one log line per request."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import AsyncIterator

from ..chat.prompt import Prompt
from ..engine.sampling_params import SamplingParams
from ..engine.output import StepOutput
from .errors import APIError
from .metrics import Metrics

log = logging.getLogger("minimax2.server")
prompt_log = logging.getLogger("minimax2.server.prompt")


@dataclass
class ServerConfig:
    served_model_name: str = "minimax-m2"
    aliases: tuple[str, ...] = ()  # more names clients may send (e.g. what an agent CLI insists on)
    api_key: str | None = None
    max_pending: int = 256  # requests in flight before 429
    max_body_bytes: int = 16 * 2**20
    thinking_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))  # the CLI keeps one on disk
    accept_unsigned_thinking: bool = False  # trusted clients: thinking blocks without a valid signature
    drain_timeout: float = 30.0


class Slot:
    """One admitted request's place among --max-pending, given back exactly once: when its generation
    ends, or when the request is dropped before its stream ever started (the slot is collected)."""

    def __init__(self, state: "ModelService"):
        self.state, self.held = state, True
        state.inflight += 1

    def release(self) -> None:
        if self.held:
            self.held = False
            self.state.inflight -= 1

    def __del__(self) -> None:
        self.release()


class ModelService:
    """What the routes share in front of the backend (`app.state.server`): the config and metrics,
    admission (in-flight limit, draining), prompt encoding, the grammar factory, and each request's
    generation stream with its metrics and log line."""

    def __init__(self, backend, config: ServerConfig):
        self.backend, self.config = backend, config
        self.metrics = Metrics(config.served_model_name, backend.stats)
        self.inflight = 0
        self.draining = False
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's (set at startup)
        self._cut_at: float | None = None  # loop time at which the drain gives up on what is in flight
        self._waits: set[asyncio.Timeout] = set()
        self._grammar = None
        self._max_chars: int | None = None
        self._counter = 0

    def new_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{secrets.token_hex(6)}{self._counter}"

    @property
    def grammar(self):
        if self._grammar is None:
            from ..chat.grammar import GrammarFactory

            b = self.backend
            self._grammar = GrammarFactory(b.tokenizer, b.tokenizer_json.read_text(), b.vocab_size, b.eos_token_ids)
        return self._grammar

    def check_model(self, model: str) -> None:
        if model != self.config.served_model_name and model not in self.config.aliases:
            raise APIError(404, f"The model `{model}` does not exist; this server serves "
                                f"`{self.config.served_model_name}`", param="model", code="model_not_found")

    def admit(self) -> Slot:
        """Refuse a request now (503 draining/dead, 429 queue full) rather than queue it, or take its
        slot at once: a burst cannot overshoot --max-pending. Call it after all validation, and pass
        the slot to `generate`."""
        if self.draining:
            raise APIError(503, "the server is shutting down", retry_after=5)
        if not self.backend.alive:
            raise APIError(503, "the engine is not running", retry_after=5)
        if self.inflight >= self.config.max_pending:
            raise APIError(429, f"too many requests in flight ({self.inflight}); retry later", retry_after=1)
        return Slot(self)

    @property
    def max_prompt_chars(self) -> int:
        """No prompt longer than this (characters) fits in the context: a token decodes to at most as
        many characters as its longest vocabulary entry has UTF-8 bytes; doubled for normalizers that
        compose characters."""
        if self._max_chars is None:
            tok = self.backend.tokenizer
            longest = max(len(t.encode()) for i in range(tok.vocab_size) if (t := tok.id_to_token(i)))
            self._max_chars = 2 * longest * self.backend.max_model_len
        return self._max_chars

    def begin_drain(self) -> None:
        """On the event loop, when a drain starts: what is still generating after --drain-timeout ends
        with the API's error (event or object) rather than being cut by the HTTP server."""
        self.draining = True
        self._cut_at = asyncio.get_running_loop().time() + self.config.drain_timeout
        for t in self._waits:
            t.reschedule(self._cut_at)

    def encode(self, prompt: str | Prompt) -> list[int]:
        """Token ids of a rendered chat prompt (a `Prompt`: only the template's markers become control
        tokens) or of a raw completion prompt (a `str`, encoded as it is)."""
        prompt_log.debug("rendered prompt: %r", str(prompt))
        if isinstance(prompt, Prompt):
            return self.backend.tokenizer.encode_prompt(prompt)
        return self.backend.tokenizer.encode(prompt)

    async def _next(self, stream: AsyncIterator[StepOutput]) -> StepOutput:
        """The stream's next chunk, unless the drain's deadline passes first (503)."""
        try:
            async with asyncio.timeout_at(self._cut_at) as t:
                self._waits.add(t)
                try:
                    return await anext(stream)
                finally:
                    self._waits.discard(t)
        except TimeoutError:
            raise APIError(503, f"the server is shutting down and its drain timeout "
                                f"({self.config.drain_timeout:g} s) ran out before this request finished",
                           retry_after=5) from None

    async def generate(self, rid: str, prompt: str, prompt_ids: list[int],
                       params: SamplingParams, slot: Slot | None = None) -> AsyncIterator[StepOutput]:
        """The backend's stream, holding the request's in-flight slot (from `admit`) and recording
        metrics at the end."""
        slot = slot or Slot(self)
        t0 = time.perf_counter()
        last, ttft, itls, status = None, None, [], "error"
        prompt_tokens, done, reasons = len(prompt_ids), {}, {}
        stream = self.backend.generate(rid, prompt, prompt_ids, params)
        try:
            while True:
                try:
                    c = await self._next(stream)
                except StopAsyncIteration:
                    break
                now = time.perf_counter()
                if c.text or c.new_token_ids:
                    if ttft is None:
                        ttft = now - t0
                    elif last is not None:
                        itls.append(now - last)
                    last = now
                prompt_tokens = c.prompt_tokens or prompt_tokens
                done[c.index] = c.completion_tokens
                if c.finish_reason is not None:
                    reasons[c.index] = c.finish_reason
                yield c
            status = "ok"
        except (GeneratorExit, asyncio.CancelledError):
            status = "aborted"
            raise
        finally:
            await stream.aclose()  # aborts the request in the engine if it is still running
            slot.release()
            e2e, out_tokens = time.perf_counter() - t0, sum(done.values())
            reason = "abort" if status != "ok" else (reasons.get(0) or "stop")
            self.metrics.request_done(prompt_tokens, out_tokens, ttft, itls, e2e, reason)
            log.info("%s %s in=%d out=%d ttft=%s dur=%.0fms", rid, status, prompt_tokens, out_tokens,
                     f"{ttft * 1000:.0f}ms" if ttft is not None else "-", e2e * 1000)


async def collect(request, gen: AsyncIterator[StepOutput], poll: float = 0.5) -> list[StepOutput]:
    """All chunks of a non-streaming request; if the client disconnects first, the request is aborted
    (its KV blocks freed) instead of running to the end for nobody."""
    chunks: list[StepOutput] = []

    async def pump() -> None:
        async for c in gen:
            chunks.append(c)

    task = asyncio.create_task(pump())
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=poll)
            if not task.done() and await request.is_disconnected():
                task.cancel()  # aborts the request in the engine; the answer goes to nobody
                await asyncio.gather(task, return_exceptions=True)
                return chunks
        task.result()  # the request's own error, if any
        return chunks
    finally:
        if not task.done():  # this handler itself was cancelled
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await gen.aclose()
