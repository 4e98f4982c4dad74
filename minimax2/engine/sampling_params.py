"""SamplingParams: what a request asks of generation, validated up front (vLLM's names and defaults)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

# (generated token ids so far, float32 logits [vocab]) -> logits; e.g. a grammar mask for structured output
LogitsProcessor = Callable[[list[int], torch.Tensor], torch.Tensor]

GREEDY_BELOW = 1e-5  # temperatures under this sample greedily: dividing float32 logits by less overflows
PENALTY_RANGE = (0.01, 100.0)  # repetition_penalty outside it turns logits into inf / 0 and says nothing useful
SEED_RANGE = (-2**63, 2**64)  # what torch.Generator.manual_seed takes (offsets for n > 1 wrap around)
# every stop string is checked against the output after every token, on the engine's thread: bounded so
# that one request's stop list cannot slow the others (OpenAI takes 4)
MAX_STOP_STRINGS, MAX_STOP_CHARS = 16, 512


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 or -1 = no top-k cut
    min_p: float = 0.0  # drop tokens below min_p x the top token's probability
    repetition_penalty: float = 1.0  # > 1 discourages tokens seen in the prompt or output (HF/vLLM semantics)
    presence_penalty: float = 0.0  # OpenAI semantics, over generated tokens
    frequency_penalty: float = 0.0
    seed: int | None = None  # same seed, same tokens, whatever else is in the batch
    stop: list[str] = field(default_factory=list)  # generation ends before these strings; not in the output
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    logprobs: int | None = None  # return the sampled token's logprob and this many top alternatives
    n: int = 1  # completions per prompt; they share the prompt's cached blocks
    logits_processors: list[LogitsProcessor] = field(default_factory=list)  # applied first, in order

    def __post_init__(self):
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = [s for s in (self.stop or []) if s]
        self.stop_token_ids = list(self.stop_token_ids or [])
        if self.top_k == -1:
            self.top_k = 0
        checks = [
            (isinstance(self.max_tokens, int) and self.max_tokens >= 1, "max_tokens", "must be a positive integer"),
            (_number(self.temperature) and self.temperature >= 0, "temperature", "must be a finite number >= 0"),
            (_number(self.top_p) and 0 < self.top_p <= 1, "top_p", "must be in (0, 1]"),
            (isinstance(self.top_k, int) and self.top_k >= 0, "top_k", "must be a non-negative integer (or -1 for none)"),
            (_number(self.min_p) and 0 <= self.min_p <= 1, "min_p", "must be in [0, 1]"),
            (_number(self.repetition_penalty) and PENALTY_RANGE[0] <= self.repetition_penalty <= PENALTY_RANGE[1],
             "repetition_penalty", f"must be in [{PENALTY_RANGE[0]}, {PENALTY_RANGE[1]:g}] (1 = off)"),
            (_number(self.presence_penalty) and -2 <= self.presence_penalty <= 2, "presence_penalty", "must be in [-2, 2]"),
            (_number(self.frequency_penalty) and -2 <= self.frequency_penalty <= 2, "frequency_penalty",
             "must be in [-2, 2]"),
            (self.seed is None or (isinstance(self.seed, int) and SEED_RANGE[0] <= self.seed < SEED_RANGE[1]), "seed",
             "must be an integer in [-2**63, 2**64)"),
            (self.logprobs is None or (isinstance(self.logprobs, int) and 0 <= self.logprobs <= 20), "logprobs",
             "must be in [0, 20]"),
            (isinstance(self.n, int) and self.n >= 1, "n", "must be a positive integer"),
            (len(self.stop) <= MAX_STOP_STRINGS and all(isinstance(x, str) and len(x) <= MAX_STOP_CHARS for x in self.stop),
             "stop", f"must be at most {MAX_STOP_STRINGS} strings of at most {MAX_STOP_CHARS} characters"),
        ]
        for ok, name, rule in checks:
            if not ok:
                got = getattr(self, name)
                shown = repr(got)
                if name == "stop":  # the list itself may be megabytes
                    longest = max((len(x) for x in got if isinstance(x, str)), default=0)
                    shown = f"{len(got)} strings, the longest {longest} characters"
                raise ValueError(f"{name} {rule}, got {shown}")

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    @property
    def has_penalties(self) -> bool:
        return self.repetition_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0
