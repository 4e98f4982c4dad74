"""`LLM`: the offline Python API, shaped like vLLM's so users feel at home.

    llm = LLM("path/to/checkpoint", dtype="bfloat16")
    outs = llm.generate(["Once upon"], SamplingParams(max_tokens=32, temperature=0))
    reply = llm.chat([{"role": "user", "content": "hi"}], tools=None)
    reply.reasoning, reply.content, reply.tool_calls
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..chat import Prompt, Renderer, load_chat_template, parse_output, thinking_enabled
from ..chat.parser import ToolCall
from ..chat.tokenizer import Tokenizer
from ..model.loader import load_model
from ..model.config import ModelConfig
from .llm_engine import EngineConfig, LLMEngine, kv_cache_blocks
from .sampling_params import SamplingParams

DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32,
          "float16": torch.float16, "fp16": torch.float16}


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" | "length"
    logprobs: list[dict] | None = None  # per token: token_id, logprob, top [(id, logprob)], when asked


@dataclass
class RequestOutput:
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


@dataclass
class ChatReply:
    reasoning: str
    content: str
    tool_calls: list[ToolCall]
    text: str  # the raw generated text
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    prompt: str = field(repr=False, default="")
    prompt_token_ids: list[int] = field(repr=False, default_factory=list)


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_device(device: str | torch.device) -> str:
    device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ValueError(f"unknown device {device!r}; choose cpu, cuda, cuda:N or auto")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return device


def set_threads(threads: int | None = None) -> int:
    """Use `threads` CPU threads (torch's ops and, through the same OpenMP runtime, the native kernels);
    default: the CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    import os

    n = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    torch.set_num_threads(n)
    return n


class LLM:
    def __init__(self, model: str | Path = "demo", dtype: str | torch.dtype = "bfloat16", device: str = "cpu",
                 chat_template: str | None = None, progress: bool = False, skip_tokenizer_init: bool = False,
                 quantization: str | None = None, group_size: int = 128, max_memory: int | None = None,
                 threads: int | None = None, lm_head: str | None = None, int8_activations: bool | None = None,
                 **engine_args):
        """`quantization`: None, "int8" (per channel) or "int4" (groups of `group_size`), weight-only,
        applied to each tensor as it is read. `max_memory`: bytes the weights plus the KV cache may use
        (default: what the machine and its cgroup have available); a model that does not fit is refused
        with InsufficientMemoryError before anything is allocated. `lm_head`: "int8", "int6" or "bf16" overrides
        the output matrix's form (default int8 under int8/int4, else the model dtype, as released).
        `int8_activations`: the int8, int4 and 6-bit matrices quantise their decode activations to int8, not
        int16 (faster, less exact; None: under int4 only, load_model). `threads`: CPU threads for torch and the
        native kernels (default: the CPUs this process may run on). `engine_args` are EngineConfig fields:
        block_size, kv_cache_gb, num_kv_blocks, max_num_seqs, max_num_batched_tokens, max_model_len,
        enable_prefix_caching."""
        from ..assets import resolve_model  # "demo" (the default): the bundled demo model

        self.path = Path(resolve_model(model))
        self.device = resolve_device(device)
        set_threads(threads)
        engine_config, dtype = EngineConfig(**engine_args), resolve_dtype(dtype)
        if (self.path / "config.json").is_file():
            blocks, per_block = kv_cache_blocks(ModelConfig.from_file(self.path), engine_config, dtype)
        else:
            blocks, per_block = 0, 0  # load_model says what is wrong with the path
        self.model = load_model(self.path, dtype, self.device, progress=progress, quantization=quantization,
                                group_size=group_size, kv_bytes=blocks * per_block, max_memory=max_memory,
                                lm_head=lm_head, int8_activations=int8_activations)
        self.cfg = self.model.cfg
        # skip_tokenizer_init (as in vLLM): token-id prompts only, outputs carry token ids and no text.
        self.tokenizer = None if skip_tokenizer_init else Tokenizer(self.path)
        tok_eos = self.tokenizer.eos_token_id if self.tokenizer else None
        self.eos_token_ids = sorted(set(self.cfg.eos_token_id + _generation_eos(self.path)
                                        + ([tok_eos] if tok_eos is not None else [])))
        self.engine = LLMEngine(self.model, self.tokenizer, self.eos_token_ids, engine_config)
        self._counter = 0
        # Chat prompts: an explicit template file, else the checkpoint's own, else our native M2 renderer.
        if chat_template == "native":
            self.chat_template = None
        elif chat_template is not None:
            self.chat_template = Path(chat_template).read_text()
        else:
            self.chat_template = load_chat_template(self.path)

    # -- completion -------------------------------------------------------------------------------
    def generate(self, prompts: str | Sequence[str] | Sequence[Sequence[int]],
                 sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
                 on_delta: Callable[[int, str], None] | None = None) -> list[RequestOutput]:
        """Generate for each prompt (text, or a list of token ids), all at once through the engine.

        `on_delta(i, text)` streams prompt i's first completion as its text is released.
        """
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], int)):
            prompts = [prompts]
        texts, ids = [], []
        for p in prompts:
            if isinstance(p, str):
                if self.tokenizer is None:
                    raise ValueError("this LLM was created with skip_tokenizer_init=True: pass token-id prompts")
                texts.append(p)
                ids.append(self.tokenizer.encode(p))
            else:
                texts.append(None)
                ids.append([int(t) for t in p])
        sp = sampling_params or SamplingParams()
        params = list(sp) if isinstance(sp, (list, tuple)) else [sp] * len(ids)
        if len(params) != len(ids):
            raise ValueError(f"got {len(params)} sampling params for {len(ids)} prompts")
        rids = []
        try:
            for i, (p, sp_i) in enumerate(zip(ids, params)):
                self._counter += 1
                rids.append(f"offline-{self._counter}")
                self.engine.add_request(rids[-1], p, sp_i)
        except ValueError as e:
            for rid in rids:
                self.engine.abort(rid)
            raise ValueError(f"prompt {len(rids) - 1}: {e}") from e
        where = {rid: i for i, rid in enumerate(rids)}
        done: dict[tuple[int, int], CompletionOutput] = {}
        while self.engine.has_unfinished():
            for o in self.engine.step():
                i = where.get(o.request_id)
                if i is None:
                    continue
                c = done.setdefault((i, o.index), CompletionOutput(o.index, "", [], "", [] if params[i].logprobs is not None else None))
                c.text += o.text
                c.token_ids.extend(o.new_token_ids)
                if c.logprobs is not None:
                    c.logprobs.extend(o.logprobs)
                if o.finish_reason:
                    c.finish_reason = o.finish_reason
                if o.text and on_delta and o.index == 0:
                    on_delta(i, o.text)
        return [RequestOutput(t, p, [done[(i, k)] for k in range(params[i].n)])
                for i, (t, p) in enumerate(zip(texts, ids))]

    def reset_prefix_cache(self) -> int:
        """Forget the cached prompt prefixes (as vLLM's `LLM.reset_prefix_cache`): the next prompts are
        computed in full. Returns how many cached blocks were dropped."""
        return self.engine.reset_prefix_cache()

    # -- chat -------------------------------------------------------------------------------------
    @property
    def renderer(self) -> Renderer:
        """The chat prompt renderer (`chat.Renderer`) of this model's template; the server's
        LocalBackend renders with this same object."""
        return Renderer(self.chat_template)

    def render(self, messages: list[dict], tools: list[dict] | None = None, add_generation_prompt: bool = True,
               **template_kwargs) -> str:
        return self.renderer.text(messages, tools, add_generation_prompt=add_generation_prompt, **template_kwargs)

    def render_segments(self, messages: list[dict], tools: list[dict] | None = None,
                        add_generation_prompt: bool = True, **template_kwargs) -> Prompt:
        """`render` as a `Prompt`: the template's own text apart from the conversation's, for
        `Tokenizer.encode_prompt` (markers spelled in messages stay text)."""
        return self.renderer(messages, tools, add_generation_prompt=add_generation_prompt, **template_kwargs)

    def chat(self, messages: list[dict], tools: list[dict] | None = None,
             sampling_params: SamplingParams | None = None, chat_template_kwargs: dict | None = None,
             on_delta: Callable[[int, str], None] | None = None) -> ChatReply:
        """One assistant turn for an OpenAI-shaped conversation, parsed into reasoning/content/tool calls.
        Rendered exactly as the server renders it (`renderer`); `chat_template_kwargs`
        ``{"enable_thinking": False}`` pre-fills an empty think block. Only the template's markers
        become control tokens; text in the messages is encoded as text."""
        if self.tokenizer is None:
            raise ValueError("this LLM was created with skip_tokenizer_init=True: chat needs the tokenizer")
        kwargs = chat_template_kwargs or {}
        thinking = thinking_enabled(kwargs)
        prompt = self.renderer(messages, tools, thinking=thinking, **kwargs)
        ids = self.tokenizer.encode_prompt(prompt)
        out = self.generate([ids], sampling_params or SamplingParams(max_tokens=1024), on_delta)[0]
        c = out.outputs[0]
        parsed = parse_output(c.text, tools=tools, reasoning=thinking)
        return ChatReply(parsed.reasoning, parsed.content, parsed.tool_calls, c.text, c.finish_reason,
                         len(out.prompt_token_ids), len(c.token_ids), prompt.text, ids)


def _generation_eos(path: Path) -> list[int]:
    f = path / "generation_config.json"
    if not f.exists():
        return []
    eos = json.loads(f.read_text()).get("eos_token_id")
    return [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
