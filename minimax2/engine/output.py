"""Per-sequence output text: incremental detokenization plus stop strings that never leak.

Text that could still turn out to be the start of a stop string is held back; when a stop string
completes, the output ends just before it.
"""

from __future__ import annotations

from ..chat.tokenizer import IncrementalDetokenizer, Tokenizer


def _held_suffix(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
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
