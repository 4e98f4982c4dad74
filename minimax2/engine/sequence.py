"""Sequence: one generation stream's state as the scheduler, block manager and runner see it."""

from __future__ import annotations

from enum import Enum, auto

import torch

from .output import OutputText
from .sampling_params import SamplingParams


class Status(Enum):
    WAITING = auto()
    RUNNING = auto()
    FINISHED = auto()


class Sequence:
    def __init__(self, request_id: str, prompt_ids: list[int], params: SamplingParams, index: int = 0,
                 output: OutputText | None = None, generator: torch.Generator | None = None):
        self.request_id = request_id
        self.index = index  # which of the request's n completions
        self.token_ids = list(prompt_ids)
        self.num_prompt_tokens = len(prompt_ids)
        self.num_cached_tokens = 0  # tokens whose K/V are in the cache
        self.block_table: list[int] = []
        self.num_hashed_blocks = 0  # leading blocks already registered for prefix reuse
        self.status = Status.WAITING
        self.params = params
        self.output = output
        self.generator = generator
        self.finish_reason: str | None = None
        self.logprobs: list[dict] = []  # per generated token, when params.logprobs is set
        self.parent: Sequence | None = None  # for n > 1: wait until the parent's prompt is cached
        self.num_prefix_hit_tokens = 0

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def completion_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens:]

    @property
    def num_completion_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def is_finished(self) -> bool:
        return self.status is Status.FINISHED

    @property
    def prefill_done(self) -> bool:
        return self.num_cached_tokens >= self.num_prompt_tokens
