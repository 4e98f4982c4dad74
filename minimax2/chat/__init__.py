"""The MiniMax-M2 chat format: prompt rendering, chat templates and output parsing.

- ``render_prompt``: native renderer, byte-identical to the official Jinja template;
- ``render_chat_template`` / ``load_chat_template``: a checkpoint's own Jinja template, rendered
  the way ``transformers`` does; ``Renderer``: the one render path of ``LLM.chat`` and the server
  (the checkpoint's template, else native; the empty think block when thinking is off);
- ``Prompt``, ``render_prompt_segments`` / ``render_chat_template_segments``: the same prompts as
  segments, so that ``Tokenizer.encode_prompt`` makes control tokens only of the template's own
  markers and never of text from the conversation;
- ``parse_output``: a finished generation -> reasoning, content and typed tool calls;
  ``stream_parser.StreamParser``: the same parse as events while the text arrives;
- ``grammar``: llguidance grammars for forced tool calls and JSON answers (imported on demand: torch);
- ``markers``: the format's marker strings;
- ``Tokenizer`` / ``IncrementalDetokenizer``: ``tokenizer.json`` and UTF-8-safe streaming text.
"""

from . import markers
from .parser import ParsedOutput, ToolCall, convert_value, parse_output, tool_param_types
from .prompt import Prompt
from .render import ChatTemplateError, normalize_messages, render_prompt, render_prompt_segments
from .stream_parser import Event, StreamParser
from .template import Renderer, load_chat_template, render_chat_template, render_chat_template_segments, thinking_enabled

from .tokenizer import IncrementalDetokenizer, Tokenizer, TokenizerError

__all__ = [
    "ChatTemplateError",
    "Event",
    "Renderer",
    "StreamParser",
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
    "thinking_enabled",
    "tool_param_types",
]
