"""Request bodies of the OpenAI and Anthropic APIs (pydantic; unknown fields are accepted and ignored,
as the official servers do). Validation failures become 400s in each API's own error shape.

Types are strict, as the official APIs are: `"max_tokens": "5"`, `"n": "2"` and `"stream": "yes"` are
400s, not coerced. No string anywhere in a body may hold a lone UTF-16 surrogate (`"\\ud800"` in the
JSON): it cannot be encoded as UTF-8, so neither the tokenizer nor an answer echoing it could take it."""

from __future__ import annotations

import re
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

Number = Optional[float]
# Bounds on what one body may list. Validating a list holds the GIL throughout, so a body of 120,000
# tools stalled every other request for seconds even off the event loop; the context bounds a real
# conversation long before these (OpenAI itself takes 128 tools).
MAX_TOOLS, MAX_MESSAGES = 512, 10_000
_SURROGATE = re.compile("[\ud800-\udfff]")


def find_surrogate(body: Any) -> bool:
    """Whether any string (or key) in a parsed JSON value holds a lone surrogate. Iterative: a deeply
    nested body cannot exhaust the stack."""
    stack = [body]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Body(_Loose):
    """A whole request body: checked for lone surrogates before anything else reads it."""

    @model_validator(mode="before")
    @classmethod
    def _utf8_only(cls, data: Any) -> Any:
        if find_surrogate(data):
            raise ValueError("the body holds a lone UTF-16 surrogate (e.g. \\ud800), which is not valid "
                             "Unicode text; send well-formed UTF-8")
        return data


class FunctionDef(_Loose):
    name: str = Field(min_length=1, max_length=256)
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None
    strict: Optional[bool] = None


class Tool(_Loose):
    type: Literal["function"] = "function"
    function: FunctionDef


class _Sampling(_Body):
    temperature: Number = Field(default=None, ge=0, le=2)
    top_p: Number = Field(default=None, gt=0, le=1)
    top_k: Optional[int] = Field(default=None, ge=-1)
    min_p: Number = Field(default=None, ge=0, le=1)
    presence_penalty: Number = Field(default=None, ge=-2, le=2)
    frequency_penalty: Number = Field(default=None, ge=-2, le=2)
    repetition_penalty: Number = Field(default=None, gt=0)
    seed: Optional[int] = None
    stop: Union[str, list[str], None] = None
    n: int = Field(default=1, ge=1, le=16)
    stream: bool = False
    stream_options: Optional[dict[str, Any]] = None


class ChatCompletionRequest(_Sampling):
    model: str
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_MESSAGES)
    tools: Optional[list[Tool]] = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Union[Literal["auto", "none", "required"], dict[str, Any], None] = None
    parallel_tool_calls: bool = True
    response_format: Optional[dict[str, Any]] = None
    logprobs: bool = False
    top_logprobs: Optional[int] = Field(default=None, ge=0, le=20)
    max_tokens: Optional[int] = Field(default=None, ge=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)
    chat_template_kwargs: Optional[dict[str, Any]] = None
    reasoning_split: bool = False
    thinking_budget: Optional[int] = Field(default=None, ge=0)  # ours: end the reasoning after this many tokens
    user: Optional[str] = None


class CompletionRequest(_Sampling):
    model: str
    prompt: Union[str, list[str], list[int]]
    max_tokens: Optional[int] = Field(default=16, ge=1)
    logprobs: Optional[int] = Field(default=None, ge=0, le=20)
    echo: bool = False
    user: Optional[str] = None


class AnthropicTool(_Loose):
    name: str = Field(min_length=1, max_length=256)
    description: Optional[str] = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class _AnthropicBase(_Body):
    model: str
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_MESSAGES)
    system: Union[str, list[dict[str, Any]], None] = None
    tools: Optional[list[AnthropicTool]] = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Optional[dict[str, Any]] = None
    thinking: Optional[dict[str, Any]] = None


class MessagesRequest(_AnthropicBase):
    max_tokens: int = Field(ge=1)
    stop_sequences: Optional[list[str]] = None
    temperature: Number = Field(default=None, ge=0, le=2)
    top_p: Number = Field(default=None, gt=0, le=1)
    top_k: Optional[int] = Field(default=None, ge=-1)
    stream: bool = False
    metadata: Optional[dict[str, Any]] = None


class CountTokensRequest(_AnthropicBase):
    pass
