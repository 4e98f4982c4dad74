"""AsyncEngine: the engine loop for a server. One thread owns the model and steps the engine; asyncio
callers get a stream of `StepOutput` increments per request, and cancelling a stream aborts it.

    async for out in engine.add_request("req-1", prompt_ids, SamplingParams(max_tokens=64)):
        print(out.text, end="")
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import AsyncIterator

from .llm_engine import LLMEngine
from .output import StepOutput
from .sampling_params import SamplingParams

log = logging.getLogger("minimax2.engine")


class EngineDeadError(RuntimeError):
    """The engine loop is not running (shut down)."""


class RequestFailed(RuntimeError):
    """This request failed inside an engine step (a model or sampling error); the engine serves on."""


class AsyncEngine:
    def __init__(self, engine: LLMEngine):
        self.engine = engine
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._streams: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="minimax2-engine", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None

    async def add_request(self, request_id: str, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[StepOutput]:
        """Stream the request's increments until all its completions finish. Raises the engine's
        error for a request it rejects (a ValueError: empty, too long, bad token)."""
        if not self.alive:
            raise EngineDeadError(f"the engine loop has stopped: {self.error!r}")
        loop, q = asyncio.get_running_loop(), asyncio.Queue()
        self._streams[request_id] = (loop, q)
        self._send(("add", request_id, prompt_ids, params))
        remaining, finished = params.n, False
        try:
            while remaining:
                item = await q.get()
                if isinstance(item, BaseException):
                    raise item
                if item.error is not None:
                    raise RequestFailed(f"generation failed: {item.error!r}") from item.error
                if item.finish_reason is not None:
                    remaining -= 1
                yield item
            finished = True
        finally:
            self._streams.pop(request_id, None)
            if not finished:  # the consumer went away (client disconnect) or the request failed
                self._send(("abort", request_id))

    def abort(self, request_id: str) -> None:
        self._send(("abort", request_id))

    def shutdown(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _send(self, cmd) -> None:
        self._commands.put(cmd)
        self._wake.set()

    def _deliver(self, request_id: str, item) -> None:
        target = self._streams.get(request_id)
        if target is not None:
            loop, q = target
            loop.call_soon_threadsafe(q.put_nowait, item)

    def _run(self) -> None:
        """The loop never leaves on a request's account: a request the engine rejects gets its error, a
        failing step ends only its own requests (LLMEngine.step), and an unexpected error outside them
        ends every request in flight, frees the cache and goes on."""
        eng = self.engine
        while not self._stop.is_set():
            while True:
                try:
                    cmd = self._commands.get_nowait()
                except queue.Empty:
                    break
                if cmd[0] == "add":
                    try:
                        eng.add_request(cmd[1], cmd[2], cmd[3])
                    except Exception as e:  # noqa: BLE001 - ValueError for a bad request, anything else is ours
                        if not isinstance(e, ValueError):
                            log.exception("adding request %s failed", cmd[1])
                            e = RequestFailed(f"could not start the request: {e!r}")
                        self._deliver(cmd[1], e)
                else:
                    eng.abort(cmd[1])
            if not eng.has_unfinished():
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            try:
                outputs = eng.step()
            except Exception as e:  # noqa: BLE001 - a bug outside the model and sampler: fail what is in flight
                log.exception("engine step failed outside the model; ending every request in flight")
                for rid in list(eng.requests):
                    eng.abort(rid)
                    self._deliver(rid, RequestFailed(f"engine step failed: {e!r}"))
                continue
            for o in outputs:
                self._deliver(o.request_id, o)
