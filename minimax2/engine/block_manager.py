"""Paged KV-cache bookkeeping with prefix caching.

The cache is `num_blocks` blocks of `block_size` token slots. A sequence owns a block table. A block
that is full and whose K/V have been computed gets a hash that chains its predecessor's hash with its
own tokens; a later sequence with the same prefix reuses it (after checking the stored tokens, so a
hash collision can never serve wrong K/V). Blocks are reference-counted; a freed block keeps its
content and hash on an LRU free list and is only overwritten when a fresh block is needed.
"""

from __future__ import annotations

from collections import OrderedDict

from .sequence import Sequence


class Block:
    __slots__ = ("block_id", "ref_count", "hash", "token_ids")

    def __init__(self, block_id: int):
        self.block_id = block_id
        self.ref_count = 0
        self.hash: int | None = None
        self.token_ids: tuple[int, ...] = ()


def chain_hash(prev: int | None, tokens: tuple[int, ...]) -> int:
    return hash((prev, tokens))


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"need at least one block of at least one slot (got {num_blocks} x {block_size})")
        self.block_size = block_size
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free: OrderedDict[int, None] = OrderedDict((i, None) for i in range(num_blocks))  # LRU order
        self.cached: dict[int, int] = {}  # hash -> block id
        self.enable_prefix_caching = enable_prefix_caching
        self.prefix_queries = 0  # prompt tokens looked up
        self.prefix_hits = 0  # prompt tokens served from the cache

    @property
    def num_free_blocks(self) -> int:
        return len(self.free)

    @property
    def usage(self) -> float:
        return 1.0 - len(self.free) / len(self.blocks)

    def blocks_needed(self, seq: Sequence, num_tokens: int) -> int:
        return max(0, -(-num_tokens // self.block_size) - len(seq.block_table))

    def _take_fresh(self) -> int:
        block_id, _ = self.free.popitem(last=False)  # least recently freed
        b = self.blocks[block_id]
        if b.hash is not None and self.cached.get(b.hash) == block_id:
            del self.cached[b.hash]
        b.hash, b.token_ids, b.ref_count = None, (), 1
        return block_id

    def _take_cached(self, block_id: int) -> None:
        b = self.blocks[block_id]
        if b.ref_count == 0:
            del self.free[block_id]
        b.ref_count += 1

    def match_prefix(self, seq: Sequence) -> list[int]:
        """Cached blocks holding the start of `seq`. The block with the last token is never matched, so
        at least one token is always computed (its logits are needed)."""
        if not self.enable_prefix_caching:
            return []
        hits, h = [], None
        bs = self.block_size
        for i in range((seq.num_tokens - 1) // bs):
            tokens = tuple(seq.token_ids[i * bs:(i + 1) * bs])
            h = chain_hash(h, tokens)
            block_id = self.cached.get(h)
            if block_id is None or self.blocks[block_id].token_ids != tokens:
                break
            hits.append(block_id)
        return hits

    def reset_prefix_cache(self) -> int:
        """Forget the prefix of every free block, so that no later prompt is served from them (blocks in
        use keep theirs); returns how many were forgotten. For cold-start measurements, and after the
        model's weights change."""
        dropped = 0
        for block_id in self.free:
            b = self.blocks[block_id]
            if b.hash is not None:
                if self.cached.get(b.hash) == block_id:
                    del self.cached[b.hash]
                b.hash, b.token_ids = None, ()
                dropped += 1
        return dropped

    def can_admit(self, seq: Sequence, budget: int) -> bool:
        """Whether `seq` can start now: its cached prefix plus a first chunk of at most `budget` tokens."""
        hits = self.match_prefix(seq)
        cached = len(hits) * self.block_size
        chunk = min(seq.num_tokens - cached, budget)
        revive = sum(1 for b in hits if self.blocks[b].ref_count == 0)
        return revive + -(-(cached + chunk) // self.block_size) - len(hits) <= len(self.free)

    def admit(self, seq: Sequence) -> None:
        """Give a waiting sequence its cached prefix blocks (counting queries and hits)."""
        assert not seq.block_table
        hits = self.match_prefix(seq)
        for block_id in hits:
            self._take_cached(block_id)
        seq.block_table = list(hits)
        seq.num_hashed_blocks = len(hits)
        seq.num_cached_tokens = len(hits) * self.block_size
        seq.num_prefix_hit_tokens = seq.num_cached_tokens
        self.prefix_queries += seq.num_tokens
        self.prefix_hits += seq.num_cached_tokens

    def can_grow(self, seq: Sequence, num_tokens: int) -> bool:
        return self.blocks_needed(seq, num_tokens) <= len(self.free)

    def grow(self, seq: Sequence, num_tokens: int) -> None:
        """Make sure `seq` has slots for its first `num_tokens` tokens."""
        for _ in range(self.blocks_needed(seq, num_tokens)):
            seq.block_table.append(self._take_fresh())

    def commit(self, seq: Sequence) -> None:
        """Register the hashes of blocks that are now full and computed, so others can reuse them."""
        if not self.enable_prefix_caching:
            return
        bs = self.block_size
        for i in range(seq.num_hashed_blocks, seq.num_cached_tokens // bs):
            b = self.blocks[seq.block_table[i]]
            if b.hash is None:
                prev = self.blocks[seq.block_table[i - 1]].hash if i else None
                b.token_ids = tuple(seq.token_ids[i * bs:(i + 1) * bs])
                b.hash = chain_hash(prev, b.token_ids)
                self.cached.setdefault(b.hash, b.block_id)
        seq.num_hashed_blocks = max(seq.num_hashed_blocks, seq.num_cached_tokens // bs)

    def free_seq(self, seq: Sequence) -> None:
        for block_id in reversed(seq.block_table):
            b = self.blocks[block_id]
            b.ref_count -= 1
            assert b.ref_count >= 0, f"block {block_id} freed twice"
            if b.ref_count == 0:
                self.free[block_id] = None
        seq.block_table = []
        seq.num_cached_tokens = seq.num_hashed_blocks = 0
