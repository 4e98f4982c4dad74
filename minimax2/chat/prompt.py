"""A rendered prompt as segments: the template's own text, and the text of the conversation.

Why segments: in M2's tokenizer the markers (``]~b]``, ``[e~[``, ``</think>``,
``<minimax:tool_call>``, ...) are single control tokens. If a prompt were encoded as one string, a
user who writes ``[e~[\\n]~b]ai\\n`` in a message would open a real assistant turn. A ``Prompt``
remembers which text the template put there (``structural``: markers in it become control tokens)
and which came from the caller's messages, tools and arguments (``content``: always encoded as
ordinary text, see ``Tokenizer.encode_prompt``). ``prompt.text`` is the exact rendered string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Prompt:
    """Immutable ``(text, structural)`` segments; adjacent segments of one kind are merged and
    empty ones dropped, so equal prompts have equal segments."""

    segments: tuple[tuple[str, bool], ...] = ()

    @classmethod
    def of(cls, parts: Iterable[tuple[str, bool]]) -> "Prompt":
        merged: list[tuple[str, bool]] = []
        for text, structural in parts:
            if not isinstance(text, str):
                raise TypeError(f"prompt segments hold text, got {type(text).__name__}")
            if not text:
                continue
            if merged and merged[-1][1] == bool(structural):
                merged[-1] = (merged[-1][0] + text, merged[-1][1])
            else:
                merged.append((text, bool(structural)))
        return cls(tuple(merged))

    @classmethod
    def structural(cls, text: str) -> "Prompt":
        """Template text: markers in it are control tokens."""
        return cls.of([(text, True)])

    @classmethod
    def content(cls, text: str) -> "Prompt":
        """Conversation text: encoded as ordinary text whatever it contains."""
        return cls.of([(text, False)])

    @property
    def text(self) -> str:
        """The rendered string, byte for byte what the template produces."""
        return "".join(text for text, _ in self.segments)

    def __str__(self) -> str:
        return self.text

    def __len__(self) -> int:
        return sum(len(text) for text, _ in self.segments)

    def __add__(self, other: "Prompt | str") -> "Prompt":
        """Append another prompt, or a plain ``str`` taken as template text (a prefill such as
        ``markers.EMPTY_THINK_PREFILL``). Content must be appended as ``Prompt.content(...)``."""
        if isinstance(other, str):
            other = Prompt.structural(other)
        if not isinstance(other, Prompt):
            return NotImplemented
        return Prompt.of(self.segments + other.segments)


class PromptBuilder:
    """Collects segments in order: ``structural(...)`` for the template's text, ``content(...)``
    for the conversation's."""

    def __init__(self) -> None:
        self._parts: list[tuple[str, bool]] = []

    def structural(self, *texts: str) -> "PromptBuilder":
        self._parts.extend((t, True) for t in texts)
        return self

    def content(self, *texts: str) -> "PromptBuilder":
        self._parts.extend((t, False) for t in texts)
        return self

    def build(self) -> Prompt:
        return Prompt.of(self._parts)
