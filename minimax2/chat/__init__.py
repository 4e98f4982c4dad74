"""The MiniMax-M2 chat format: prompt rendering, chat templates and output parsing.

- ``render_prompt``: native renderer, byte-identical to the official Jinja template;
- ``render_chat_template`` / ``load_chat_template``: a checkpoint's own Jinja template, rendered
  the way ``transformers`` does;
- ``Prompt``, ``render_prompt_segments`` / ``render_chat_template_segments``: the same prompts as
  segments, so that ``Tokenizer.encode_prompt`` makes control tokens only of the template's own
  markers and never of text from the conversation;
- ``parse_output``: a finished generation -> reasoning, content and typed tool calls;
- ``markers``: the format's marker strings;
- ``Tokenizer`` / ``IncrementalDetokenizer``: ``tokenizer.json`` and UTF-8-safe streaming text.
"""

from . import markers
from .parser import ParsedOutput, ToolCall, convert_value, parse_output, tool_param_types
from .prompt import Prompt
from .render import ChatTemplateError, normalize_messages, render_prompt, render_prompt_segments
from .template import load_chat_template, render_chat_template, render_chat_template_segments

from .tokenizer import IncrementalDetokenizer, Tokenizer, TokenizerError

__all__ = [
    "ChatTemplateError",
    "IncrementalDetokenizer",
    "Tokenizer",
    "TokenizerError",
    "ParsedOutput",
    "Prompt",
    "ToolCall",
    "convert_value",
    "load_chat_template",
    "markers",
    "normalize_messages",
    "parse_output",
    "render_chat_template",
    "render_chat_template_segments",
    "render_prompt",
    "render_prompt_segments",
    "tool_param_types",
]
