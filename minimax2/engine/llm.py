"""`LLM`: the offline Python API, shaped like vLLM's so users feel at home.

    llm = LLM("path/to/checkpoint", dtype="bfloat16")
    outs = llm.generate(["Once upon"], SamplingParams(max_tokens=32, temperature=0))
    reply = llm.chat([{"role": "user", "content": "hi"}], tools=None)
    reply.reasoning, reply.content, reply.tool_calls
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..chat import load_chat_template, parse_output, render_chat_template, render_prompt
from ..chat.parser import ToolCall
from ..chat.tokenizer import Tokenizer
from ..model.loader import load_model
from .generate import generate_batch
from .sampling_params import SamplingParams

DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32,
          "float16": torch.float16, "fp16": torch.float16}


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" | "length"


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


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return device


class LLM:
    def __init__(self, model: str | Path, dtype: str | torch.dtype = "bfloat16", device: str = "cpu",
                 chat_template: str | None = None, progress: bool = False, skip_tokenizer_init: bool = False):
        self.path = Path(model)
        self.device = resolve_device(device)
        self.model = load_model(self.path, resolve_dtype(dtype), self.device, progress=progress)
        self.cfg = self.model.cfg
        # skip_tokenizer_init (as in vLLM): token-id prompts only, outputs carry token ids and no text.
        self.tokenizer = None if skip_tokenizer_init else Tokenizer(self.path)
        tok_eos = self.tokenizer.eos_token_id if self.tokenizer else None
        self.eos_token_ids = sorted(set(self.cfg.eos_token_id + _generation_eos(self.path)
                                        + ([tok_eos] if tok_eos is not None else [])))
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
        """Generate for each prompt (text, or a list of token ids). `on_delta(i, text)` streams."""
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
        seqs = generate_batch(self.model, self.tokenizer, ids, params, self.eos_token_ids, on_delta)
        return [RequestOutput(t, s.prompt_ids, [CompletionOutput(0, s.text, s.token_ids, s.finish_reason)])
                for t, s in zip(texts, seqs)]

    # -- chat -------------------------------------------------------------------------------------
    def render(self, messages: list[dict], tools: list[dict] | None = None, add_generation_prompt: bool = True,
               **template_kwargs) -> str:
        if self.chat_template is not None:
            return render_chat_template(self.chat_template, messages, tools=tools,
                                        add_generation_prompt=add_generation_prompt, **template_kwargs)
        return render_prompt(messages, tools=tools, add_generation_prompt=add_generation_prompt, **template_kwargs)

    def chat(self, messages: list[dict], tools: list[dict] | None = None,
             sampling_params: SamplingParams | None = None, chat_template_kwargs: dict | None = None,
             on_delta: Callable[[int, str], None] | None = None) -> ChatReply:
        """One assistant turn for an OpenAI-shaped conversation, parsed into reasoning/content/tool calls."""
        prompt = self.render(messages, tools=tools, **(chat_template_kwargs or {}))
        out = self.generate([prompt], sampling_params or SamplingParams(max_tokens=1024), on_delta)[0]
        c = out.outputs[0]
        parsed = parse_output(c.text, tools=tools)
        return ChatReply(parsed.reasoning, parsed.content, parsed.tool_calls, c.text, c.finish_reason,
                         len(out.prompt_token_ids), len(c.token_ids), prompt)


def _generation_eos(path: Path) -> list[int]:
    f = path / "generation_config.json"
    if not f.exists():
        return []
    eos = json.loads(f.read_text()).get("eos_token_id")
    return [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
