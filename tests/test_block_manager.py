"""Property tests: any sequence of admit / grow / commit / free keeps the block accounting consistent."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from minimax2.engine.block_manager import BlockManager
from minimax2.engine.sampling_params import SamplingParams
from minimax2.engine.sequence import Sequence

NUM_BLOCKS, BS = 24, 4
tokens = st.lists(st.integers(0, 2), min_size=1, max_size=30)  # a tiny alphabet, so prefixes are shared


class BlockMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.bm = BlockManager(NUM_BLOCKS, BS)
        self.live: list[Sequence] = []

    @rule(ids=tokens)
    def admit(self, ids):
        seq = Sequence("r", ids, SamplingParams())
        if not self.bm.can_admit(seq, budget=len(ids)):
            return
        self.bm.admit(seq)
        assert seq.num_cached_tokens < seq.num_tokens  # the last token is always computed
        assert seq.token_ids[:seq.num_cached_tokens] == [t for b in seq.block_table for t in self.bm.blocks[b].token_ids]
        self.bm.grow(seq, seq.num_tokens)
        seq.num_cached_tokens = seq.num_tokens  # "computed"
        self.bm.commit(seq)
        self.live.append(seq)

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 100), extra=st.lists(st.integers(0, 2), min_size=1, max_size=9))
    def append(self, i, extra):
        seq = self.live[i % len(self.live)]
        if not self.bm.can_grow(seq, seq.num_tokens + len(extra)):
            return
        seq.token_ids.extend(extra)
        self.bm.grow(seq, seq.num_tokens)
        seq.num_cached_tokens = seq.num_tokens
        self.bm.commit(seq)

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 100))
    def free(self, i):
        self.bm.free_seq(self.live.pop(i % len(self.live)))

    @invariant()
    def consistent(self):
        refs = [0] * NUM_BLOCKS
        for seq in self.live:
            assert len(seq.block_table) == -(-seq.num_tokens // BS)
            for b in seq.block_table:
                refs[b] += 1
        assert [b.ref_count for b in self.bm.blocks] == refs
        assert set(self.bm.free) == {i for i, r in enumerate(refs) if r == 0}
        for h, b in self.bm.cached.items():
            assert self.bm.blocks[b].hash == h and len(self.bm.blocks[b].token_ids) == BS
        for seq in self.live:  # every committed full block holds exactly its tokens
            for k, b in enumerate(seq.block_table[: seq.num_tokens // BS]):
                assert list(self.bm.blocks[b].token_ids) == seq.token_ids[k * BS:(k + 1) * BS]


TestBlockManager = BlockMachine.TestCase
TestBlockManager.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
