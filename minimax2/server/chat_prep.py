"""What a chat request becomes before generation: the rendered prompt, the grammar (tool_choice,
response_format) and whether the output starts in the reasoning channel. Shared by both APIs."""

from __future__ import annotations

from dataclasses import dataclass

from ..chat import markers as m
from ..chat.stream_parser import StreamParser
from ..chat.grammar import GrammarError
from ..chat.render import ChatTemplateError
from .checks import check_openai_message, check_tool_schemas
from .errors import APIError
from .params import check_prompt, check_prompt_chars

ROLES = {"system", "user", "assistant", "tool"}


@dataclass
class GenerationInput:
    """A chat request made ready for the backend: its prompt (text and ids), its tools, whether the
    output starts in the reasoning channel, and the logits processors (grammar, thinking budget)."""

    prompt: str
    prompt_ids: list[int]
    tools: list[dict] | None
    reasoning: bool  # False when the prompt pre-filled an empty think block
    processors: list
    think_end_banned: bool = False  # thinking off on the local engine: </think> cannot be sampled

    def stream_parser(self) -> StreamParser:
        """The incremental parser for this request's output. With thinking off, a `</think>` would make
        what precedes it reasoning, so the parser holds text until it knows; where the engine bans the
        token, it streams text as it comes."""
        return StreamParser(self.tools, reasoning=self.reasoning, think_end_banned=self.think_end_banned)


class ThinkingBudget:
    """A logits processor that ends the reasoning after `budget` tokens by forcing ``</think>``."""

    def __init__(self, budget: int, think_end_id: int):
        self.budget, self.end = budget, think_end_id

    def __call__(self, generated: list[int], logits):
        if len(generated) < self.budget or not bool(logits[self.end].isfinite()) or self.end in generated:
            return logits  # (not finite: a grammar forbids </think> right now, e.g. inside a character)
        forced = logits.new_full(logits.shape, float("-inf"))
        forced[self.end] = 0.0
        return forced


class BanToken:
    """A logits processor that never lets `token` be sampled (``</think>`` once thinking is off)."""

    def __init__(self, token: int):
        self.token = token

    def __call__(self, generated: list[int], logits):
        logits[self.token] = float("-inf")
        return logits


def openai_messages(messages: list[dict]) -> list[dict]:
    out = []
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role == "developer":
            msg = {**msg, "role": "system"}
        elif role not in ROLES:
            raise APIError(400, f"messages[{i}]: unknown role {role!r} (expected system, user, assistant or tool)",
                           param=f"messages[{i}].role")
        check_openai_message(i, msg)
        out.append(msg)
    return out


def prepare(state, messages: list[dict], tools: list[dict] | None, *, thinking: bool = True,
            force_tools: list[str] | None = None, parallel: bool = True, json_schema: dict | None = None,
            template_kwargs: dict | None = None, thinking_budget: int | None = None, n: int = 1) -> GenerationInput:
    """`force_tools`: constrain the output to one call block invoking these tools;
    `json_schema`: constrain the answer to JSON following it. Both need the local backend.
    Runs in a worker thread: a prompt too long for any context is refused on its length in characters
    before it is tokenized."""
    check_tool_schemas(tools)
    try:
        prompt = state.backend.render(messages, tools or None, thinking=thinking, **(template_kwargs or {}))
    except ChatTemplateError as e:
        raise APIError(400, str(e), param="messages") from e
    except (ValueError, TypeError) as e:
        raise APIError(400, f"cannot render the conversation: {e}", param="messages") from e
    check_prompt_chars(len(prompt), state.max_prompt_chars, state.backend.max_model_len)
    ids = state.encode(prompt)
    check_prompt(len(ids), state.backend.max_model_len)
    processors = []
    if force_tools or json_schema is not None:
        if not state.backend.supports_processors:
            raise APIError(400, "forced tool calls and response_format need the local backend; "
                                "this server forwards to a remote engine")
        try:
            g = state.grammar
            lark = (g.tool_grammar(tools or [], force_tools, parallel, thinking) if force_tools
                    else g.json_grammar(json_schema, thinking))
            processors.append(g.processor(lark, n))
        except GrammarError as e:
            raise APIError(400, str(e), param=e.param or ("tools" if force_tools else "response_format")) from e
        except (ValueError, TypeError, RuntimeError) as e:  # llguidance's own errors for a schema it cannot take
            raise APIError(400, f"cannot build a grammar for this request: {e}",
                           param="tools" if force_tools else "response_format") from e
    end = state.backend.tokenizer.encode(m.THINK_END)
    if thinking and thinking_budget is not None and state.backend.supports_processors and len(end) == 1:
        processors.append(ThinkingBudget(thinking_budget, end[0]))  # after the grammar; remote: not enforced
    banned = not thinking and state.backend.supports_processors and len(end) == 1
    if banned:
        processors.append(BanToken(end[0]))
    return GenerationInput(prompt, ids, tools or None, thinking, processors, banned)
