"""What a generation hands out: `StepOutput`, the one record that goes from the engine to the API
layer, and `OutputText`, a sequence's text (incremental detokenization plus stop strings that never
leak).

`StepOutput` is made once per sequence per engine step (`LLMEngine.step`); `AsyncEngine` delivers
it, the server's `LocalBackend` passes it on unchanged, and `RemoteBackend` makes the same record from
a remote engine's stream. The stop reason is found once, here in the engine (`OutputText.matched`).

In `OutputText`, text that could still turn out to be the start of a stop string is held back; when
a stop string completes, the output ends just before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..chat.tokenizer import IncrementalDetokenizer, Tokenizer


@dataclass
class StepOutput:
    """One sequence's increment: new tokens, the text they released, and, at the end, why it ended."""

    request_id: str
    index: int  # which of the request's n completions
    new_token_ids: list[int]
    text: str  # text released by this step (stop strings held back until they cannot match)
    finish_reason: str | None  # None while running; "stop" | "length" | "abort" | "error"
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens served from the prefix cache
    logprobs: list[dict] = field(default_factory=list)
    stop_reason: str | int | None = None  # the stop string or stop token id that ended it, as in vLLM
    error: Exception | None = None  # finish_reason "error": this request failed inside a step (others went on)

    @property
    def stop_string(self) -> str | None:
        """The stop string that ended the output, if one did."""
        return self.stop_reason if isinstance(self.stop_reason, str) else None


def _held_suffix(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of some stop string. Only the last
    len(stop) - 1 characters can be one, and only from a place holding the stop's first character: one
    comparison per such place, not one per suffix length."""
    best = 0
    for s in stops:
        tail = text[max(0, len(text) - len(s) + 1):] if len(s) > 1 else ""
        i = tail.find(s[0])
        while 0 <= i and len(tail) - i > best:
            if s.startswith(tail[i:]):
                best = len(tail) - i
                break
            i = tail.find(s[0], i + 1)
    return best


class OutputText:
    def __init__(self, tokenizer: Tokenizer, stops: list[str], skip_ids: set[int]):
        self.detok = IncrementalDetokenizer(tokenizer, skip_ids)
        self.stops = stops
        self.text = ""  # everything decoded so far (stop string removed once matched)
        self.emitted = 0  # characters of `text` already handed out as deltas
        self.matched: str | None = None  # the stop string that ended the output

    def push(self, token_id: int) -> tuple[str, bool]:
        """Add a token; returns (text safe to emit now, whether a stop string matched)."""
        self.text += self.detok.push(token_id)
        return self._release(final=False)

    def finish(self) -> str:
        """End of generation: flush held bytes and held-back text."""
        self.text += self.detok.flush()
        return self._release(final=True)[0]

    def _release(self, final: bool) -> tuple[str, bool]:
        stopped = False
        if self.stops:
            # a stop string can only start in the part not yet emitted (or straddle its edge)
            window = max(len(s) for s in self.stops) - 1
            start = max(0, self.emitted - window)
            hits = [(i, s) for s, i in ((s, self.text.find(s, start)) for s in self.stops) if i >= 0]
            if hits:
                cut, self.matched = min(hits)
                self.text, stopped = self.text[:cut], True
        end = len(self.text) if (final or stopped or not self.stops) else len(self.text) - _held_suffix(self.text, self.stops)
        end = max(end, self.emitted)
        delta, self.emitted = self.text[self.emitted:end], end
        return delta, stopped
