"""Request bodies of the OpenAI and Anthropic APIs (pydantic; unknown fields are accepted and ignored,
as the official servers do). Validation failures become 400s in each API's own error shape."""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

Number = Optional[float]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionDef(_Loose):
    name: str = Field(min_length=1, max_length=256)
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None
    strict: Optional[bool] = None


class Tool(_Loose):
    type: Literal["function"] = "function"
    function: FunctionDef


class _Sampling(_Loose):
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
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: Optional[list[Tool]] = None
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


class _AnthropicBase(_Loose):
    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: Union[str, list[dict[str, Any]], None] = None
    tools: Optional[list[AnthropicTool]] = None
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
