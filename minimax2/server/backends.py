"""Engines behind the API. The front end always renders the M2 prompt and parses the raw text itself;
a backend only turns a prompt into a stream of `StepOutput` records (engine/output.py), the one record
that goes from the engine to the API layer: the local engine's own, or built from a remote stream.

- `LocalBackend`: this process's `AsyncEngine`.
- `RemoteBackend`: any OpenAI-compatible `/v1/completions` that streams raw text (vLLM, SGLang,
  llama.cpp's server, another `minimax2 serve`); the tokenizer and chat template come from a local
  checkpoint directory (weights are not read). It sends the prompt's token ids (`"prompt": [ids]`),
  never its text: the remote engine would re-tokenize text with its markers parsed, so a message that
  spells `]~b]` or `<minimax:tool_call>` would become control tokens there (a forged turn).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import AsyncIterator

from ..chat import Renderer, load_chat_template
from ..chat.tokenizer import Tokenizer
from ..engine.async_engine import EngineDeadError, RequestFailed
from ..engine.output import StepOutput
from ..engine.sampling_params import SamplingParams
from .errors import APIError


class LocalBackend:
    kind = "local"
    supports_processors = True

    def __init__(self, llm):
        from ..engine.async_engine import AsyncEngine

        self.llm = llm
        self.tokenizer: Tokenizer = llm.tokenizer
        self.tokenizer_json = Path(llm.path) / "tokenizer.json"
        self.render: Renderer = llm.renderer  # the render path of LLM.chat
        self.max_model_len = llm.engine.max_model_len
        self.vocab_size = llm.cfg.vocab_size
        self.eos_token_ids = list(llm.eos_token_ids)
        self.aengine = AsyncEngine(llm.engine)

    @property
    def alive(self) -> bool:
        return self.aengine.alive

    def stats(self) -> dict:
        e = self.aengine.engine
        bm = e.block_manager
        return {"running": e.num_running, "waiting": e.num_waiting, "kv_usage": bm.usage,
                "prefix_queries": getattr(bm, "prefix_queries", 0), "prefix_hits": getattr(bm, "prefix_hits", 0),
                "free_blocks": bm.num_free_blocks}

    async def generate(self, request_id: str, prompt: str, prompt_ids: list[int],
                       params: SamplingParams) -> AsyncIterator[StepOutput]:
        """The engine's records as they are (stop reason included: the engine found it)."""
        stream = self.aengine.add_request(request_id, prompt_ids, params)
        try:
            async for o in stream:
                yield o
        except ValueError as e:
            raise APIError(400, str(e)) from e
        except EngineDeadError as e:
            raise APIError(503, f"the engine stopped: {e}", retry_after=5) from e
        except RequestFailed as e:
            raise APIError(500, f"{e}; the server goes on serving other requests") from e
        finally:
            await stream.aclose()

    async def close(self) -> None:
        self.aengine.shutdown()


class RemoteBackend:
    kind = "remote"
    supports_processors = False

    def __init__(self, model_dir: str | Path, url: str, api_key: str | None = None, model: str | None = None,
                 max_model_len: int | None = None, timeout: float = 600.0):
        import openai

        model_dir = Path(model_dir)
        self.tokenizer = Tokenizer(model_dir)
        self.tokenizer_json = model_dir / "tokenizer.json"
        self.render = Renderer(load_chat_template(model_dir))
        cfg = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").exists() else {}
        self.max_model_len = max_model_len or int(cfg.get("max_position_embeddings", 196608))
        self.vocab_size = int(cfg.get("vocab_size", self.tokenizer.vocab_size))
        self.eos_token_ids = [self.tokenizer.eos_token_id]
        self.url, self.model = url.rstrip("/"), model
        self.client = openai.AsyncOpenAI(base_url=self.url if self.url.endswith("/v1") else self.url + "/v1",
                                         api_key=api_key or "none", timeout=timeout, max_retries=0)
        self.alive = True
        self._running = 0

    def stats(self) -> dict:
        return {"running": self._running, "waiting": 0, "kv_usage": 0.0, "prefix_queries": 0, "prefix_hits": 0,
                "free_blocks": None}

    async def _model_name(self) -> str:
        if self.model is None:
            models = await self.client.models.list()
            if not models.data:
                raise APIError(503, f"the remote backend {self.url} serves no model")
            self.model = models.data[0].id
        return self.model

    async def generate(self, request_id: str, prompt: str, prompt_ids: list[int],
                       params: SamplingParams) -> AsyncIterator[StepOutput]:
        """Forwards `prompt_ids`, the ids this server encoded (a chat prompt's content as ordinary
        text, see `Tokenizer.encode_prompt`), so the remote engine sees exactly the tokens the local
        backend would; `prompt` (the text) is not sent."""
        import openai

        extra = {"top_k": params.top_k, "min_p": params.min_p, "repetition_penalty": params.repetition_penalty,
                 "skip_special_tokens": False, "spaces_between_special_tokens": False, "add_special_tokens": False,
                 "stop_token_ids": params.stop_token_ids or None, "ignore_eos": params.ignore_eos or None}
        self._running += 1
        seen: dict[int, int] = {}
        try:
            stream = await self.client.completions.create(
                model=await self._model_name(), prompt=list(prompt_ids), stream=True, max_tokens=params.max_tokens,
                temperature=params.temperature, top_p=params.top_p, seed=params.seed, n=params.n,
                stop=params.stop or None, presence_penalty=params.presence_penalty,
                frequency_penalty=params.frequency_penalty, logprobs=params.logprobs,
                stream_options={"include_usage": True}, extra_body={k: v for k, v in extra.items() if v is not None})
            usage, finished = None, {}
            async for ev in stream:
                if ev.usage is not None:
                    usage = ev.usage
                for c in ev.choices:
                    seen[c.index] = seen.get(c.index, 0) + 1
                    if c.finish_reason is not None:
                        finished[c.index] = (c.finish_reason, getattr(c, "stop_reason", None))
                    if c.text:
                        yield StepOutput(request_id, c.index, [], c.text, None, len(prompt_ids), seen[c.index], 0)
            p = usage.prompt_tokens if usage else len(prompt_ids)
            n_out = usage.completion_tokens if usage else sum(seen.values())
            for i in range(params.n):
                reason, stop = finished.get(i, ("stop", None))
                yield StepOutput(request_id, i, [], "", "length" if reason == "length" else "stop", p,
                                 n_out if params.n == 1 else seen.get(i, 0), 0,
                                 stop_reason=stop if isinstance(stop, (str, int)) else None)
        except openai.APIStatusError as e:
            raise APIError(e.status_code if e.status_code in (400, 413, 429) else 502,
                           f"remote backend: {e.message}") from e
        except openai.APIError as e:
            raise APIError(502, f"remote backend {self.url} failed: {e}") from e
        finally:
            self._running -= 1

    async def close(self) -> None:
        await self.client.close()
