"""The text markers of the MiniMax-M2 prompt format.

In the official template these are plain strings; in the real tokenizer most of them are single
special tokens. The renderer, the output parser, the tokenizer, the trainer (loss masks) and the
server (stop tokens, streaming) all import them from here so that the spelling lives in one place.

Layout of a rendered conversation (see ``render.py`` for the full rules)::

    ]~!b[]~b]system\\n<system text>[e~[\\n
    ]~b]user\\n<text>[e~[\\n
    ]~b]ai\\n<think>\\n<reasoning>\\n</think>\\n\\n<content>\\n<minimax:tool_call>\\n...</minimax:tool_call>[e~[\\n
    ]~b]tool\\n<response>...</response>[e~[\\n
    ]~b]ai\\n<think>\\n                      <- generation prompt
"""

BEGIN_OF_DOCUMENT = "]~!b["
"""Starts every prompt, once."""

BEGIN_OF_ROLE = "]~b]"
"""Starts a role block; followed by the role name (``system``, ``user``, ``ai``, ``tool``)."""

END_OF_MESSAGE = "[e~["
"""Ends a message; the model's stop token."""

THINK_START = "<think>"
THINK_END = "</think>"

TOOL_CALL_START = "<minimax:tool_call>"
TOOL_CALL_END = "</minimax:tool_call>"

INVOKE_START = "<invoke name="
"""Prefix of an invoke tag; the (optionally quoted) tool name and ``>`` follow."""
INVOKE_END = "</invoke>"

PARAMETER_START = "<parameter name="
"""Prefix of a parameter tag; the (optionally quoted) parameter name and ``>`` follow."""
PARAMETER_END = "</parameter>"

TOOLS_START = "<tools>"
TOOLS_END = "</tools>"
TOOL_START = "<tool>"
TOOL_END = "</tool>"
RESPONSE_START = "<response>"
RESPONSE_END = "</response>"

ROLE_SYSTEM = "system"
ROLE_USER = "user"
ROLE_ASSISTANT = "ai"
"""The assistant's role name inside the prompt (the API role is ``assistant``)."""
ROLE_TOOL = "tool"

GENERATION_PROMPT = f"{BEGIN_OF_ROLE}{ROLE_ASSISTANT}\n{THINK_START}\n"
"""What ``add_generation_prompt`` appends: the model continues inside an open think block."""

EMPTY_THINK_PREFILL = f"{THINK_END}\n\n"
"""Appended after ``GENERATION_PROMPT`` to serve a request that asks for no thinking."""

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
"""System text used when the conversation has none (overridable with ``model_identity``)."""

__all__ = [name for name in dir() if name.isupper()]
