"""Scheduler: which sequences run in the next step, and how many of their tokens.

Each step has a token budget (`max_num_batched_tokens`). Running sequences go first, in arrival
order: a decode costs one token, an unfinished prefill gets the next chunk of its prompt, so a long
prompt never stalls the decodes beside it. Waiting sequences are admitted with what is left. When
the cache runs out of blocks, the most recently admitted running sequence is preempted: its blocks
are freed and it goes back to the front of the queue, to be recomputed (its full blocks usually
come back from the prefix cache).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .block_manager import BlockManager
from .sequence import Sequence, Status


@dataclass
class SchedulerConfig:
    max_num_seqs: int = 16
    max_num_batched_tokens: int = 512


class Scheduler:
    def __init__(self, config: SchedulerConfig, block_manager: BlockManager):
        self.config = config
        self.bm = block_manager
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> list[tuple[Sequence, int]]:
        """Returns (sequence, number of new tokens to compute) for this step."""
        budget = self.config.max_num_batched_tokens
        batch: list[tuple[Sequence, int]] = []
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            n = min(seq.num_tokens - seq.num_cached_tokens, budget)
            while not self.bm.can_grow(seq, seq.num_cached_tokens + n):
                victim = self.running[-1]
                self._preempt(victim)
                if victim is seq:
                    break
            else:
                self.bm.grow(seq, seq.num_cached_tokens + n)
                batch.append((seq, n))
                budget -= n
                i += 1
                continue
            break  # seq itself was preempted
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            seq = self.waiting[0]
            if seq.parent is not None and not seq.parent.prefill_done and not seq.parent.is_finished:
                break  # n > 1: siblings wait for the parent's prompt blocks to be cached
            if not self.bm.can_admit(seq, budget):
                if not self.running and not batch:
                    raise RuntimeError(f"the KV cache ({len(self.bm.blocks)} blocks of {self.bm.block_size} slots) "
                                       f"cannot hold even one chunk of request {seq.request_id}")
                break
            self.bm.admit(seq)
            n = min(seq.num_tokens - seq.num_cached_tokens, budget)
            self.waiting.popleft()
            self.bm.grow(seq, seq.num_cached_tokens + n)
            seq.status = Status.RUNNING
            self.running.append(seq)
            batch.append((seq, n))
            budget -= n
        return batch

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.bm.free_seq(seq)
        seq.status = Status.WAITING
        self.waiting.appendleft(seq)
        self.num_preemptions += 1

    def finish(self, seq: Sequence) -> None:
        """Remove a finished or aborted sequence and free its blocks at once."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.bm.free_seq(seq)
        seq.status = Status.FINISHED
