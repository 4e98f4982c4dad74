"""The MiniMax-M2 chat format: prompt rendering, chat templates and output parsing.

- ``render_prompt``: native renderer, byte-identical to the official Jinja template;
- ``render_chat_template`` / ``load_chat_template``: a checkpoint's own Jinja template, rendered
  the way ``transformers`` does;
- ``parse_output``: a finished generation -> reasoning, content and typed tool calls;
- ``markers``: the format's marker strings;
- ``Tokenizer`` / ``IncrementalDetokenizer``: ``tokenizer.json`` and UTF-8-safe streaming text.
"""

from . import markers
from .parser import ParsedOutput, ToolCall, convert_value, parse_output, tool_param_types
from .render import ChatTemplateError, normalize_messages, render_prompt
from .template import load_chat_template, render_chat_template

from .tokenizer import IncrementalDetokenizer, Tokenizer, TokenizerError

__all__ = [
    "ChatTemplateError",
    "IncrementalDetokenizer",
    "Tokenizer",
    "TokenizerError",
    "ParsedOutput",
    "ToolCall",
    "convert_value",
    "load_chat_template",
    "markers",
    "normalize_messages",
    "parse_output",
    "render_chat_template",
    "render_prompt",
    "tool_param_types",
]
