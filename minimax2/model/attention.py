"""Attention over a flat token batch, with or without a (paged) KV cache.

The model never sees a padded [batch, seq] tensor. Like nano-vllm, every forward takes the tokens
of all sequences concatenated ([T, ...]) plus an `AttentionMetadata` that says where each sequence
starts, how long its context is, and where its new keys/values go in the cache. The same code runs:

* training and cache-free scoring (`slot_mapping is None`): each sequence attends to itself;
* prefill, chunked prefill and decode against a KV cache laid out in fixed-size blocks. A
  contiguous cache is the special case of one block per sequence, so the simple generation loop and
  the paged engine share this file.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AttentionMetadata:
    cu_seqlens_q: list[int]  # [B+1] offsets of each sequence's new tokens in the flat batch
    context_lens: list[int]  # [B] tokens of context after this step (cached + new)
    slot_mapping: torch.Tensor | None = None  # [T] cache slot for each new token; None = no cache
    context_slots: list[torch.Tensor] | None = None  # per sequence, the cache slots of its whole context
    # Pure-decode steps (one new token per sequence) attend in one batched call over padded slots.
    decode_slots: torch.Tensor | None = None  # [B, max_ctx]
    decode_lens: torch.Tensor | None = None  # [B] context lengths (the real keys of each row)

    @classmethod
    def for_batch(cls, batch: int, seq_len: int) -> "AttentionMetadata":
        """Cache-free metadata for `batch` equal-length sequences (training, scoring)."""
        return cls(cu_seqlens_q=[i * seq_len for i in range(batch + 1)], context_lens=[seq_len] * batch)

    @classmethod
    def from_block_tables(cls, query_lens: list[int], context_lens: list[int], block_tables: list[list[int]],
                          block_size: int, device: torch.device | str = "cpu") -> "AttentionMetadata":
        """Metadata for sequences whose KV lives in blocks of `block_size` slots.

        Sequence i has `context_lens[i]` tokens in all, of which the last `query_lens[i]` are new in
        this step; `block_tables[i]` lists its blocks in order. Slots are computed once per step here,
        not once per layer.
        """
        if query_lens and max(query_lens) == 1:
            return cls._for_decode(context_lens, block_tables, block_size, device)
        cu, slots_new, ctx_slots = [0], [], []
        offsets = torch.arange(block_size)
        for q_len, ctx, table in zip(query_lens, context_lens, block_tables):
            cu.append(cu[-1] + q_len)
            slots = (torch.tensor(table, dtype=torch.long)[:, None] * block_size + offsets).flatten()[:ctx]
            ctx_slots.append(slots)
            slots_new.append(slots[ctx - q_len:])
        return cls(cu_seqlens_q=cu, context_lens=list(context_lens),
                   slot_mapping=torch.cat(slots_new).to(device) if slots_new else torch.empty(0, dtype=torch.long),
                   context_slots=[s.to(device) for s in ctx_slots])

    @classmethod
    def _for_decode(cls, context_lens: list[int], block_tables: list[list[int]], block_size: int,
                    device) -> "AttentionMetadata":
        """One new token per sequence: its cache slot, and each context's slots padded to a multiple of
        DECODE_KEY_MULTIPLE for one batched attention call (the padding reads block 0 and is masked out).
        Built from whole block tables at once: this runs every decode step."""
        b = len(context_lens)
        n = -(-max(context_lens) // DECODE_KEY_MULTIPLE) * DECODE_KEY_MULTIPLE
        nb = -(-n // block_size)
        tables = torch.tensor([t[:nb] + [0] * (nb - len(t[:nb])) for t in block_tables], dtype=torch.long)
        slots = (tables[:, :, None] * block_size + torch.arange(block_size)).view(b, -1)[:, :n]
        new = [t[(c - 1) // block_size] * block_size + (c - 1) % block_size for t, c in zip(block_tables, context_lens)]
        return cls(cu_seqlens_q=list(range(b + 1)), context_lens=list(context_lens),
                   slot_mapping=torch.tensor(new, device=device), decode_slots=slots.to(device),
                   decode_lens=torch.tensor(context_lens, device=device))


def _causal_mask(q_len: int, ctx: int, device) -> torch.Tensor:
    """Boolean mask letting the j-th of the last `q_len` positions see keys up to its own position."""
    return torch.ones(q_len, ctx, dtype=torch.bool, device=device).tril(ctx - q_len)


# Decode attends over keys padded to a multiple of this. CPU bf16 matmuls (oneDNN) JIT-compile a kernel
# for every new shape, about 1 ms each: a context that grows by one token per step would pay that in
# every layer of every step (measured 1.2 ms vs 0.09 ms per layer at 140 tokens, 1 thread).
DECODE_KEY_MULTIPLE = 64
# Inference attention of one sequence on a CPU: written out whole below this many score elements (q_len x
# context x query heads), in blocks of keys from it. M2's heads (48 query, 8 KV), 2 threads, bf16 (Zen 5):
# 64 queries over 64 keys 0.51 ms whole, 1.14 in blocks; 512 over 512 39 / 29 ms; 512 queries over 2,048
# keys 303 / 106 ms (torch's SDPA 395); over 8,192 keys 393 ms in blocks, SDPA 2,515.
BLOCKED_MIN_SCORES = 1 << 18
MANUAL_MAX_SCORES = 1 << 24  # elsewhere (GPUs, training): written out up to here, SDPA above
KEY_BLOCK = 2048  # keys per block: [G * queries, KEY_BLOCK] float32 scores at a time
QUERY_BLOCK = 1024  # queries per call of the blocked path (G = 6: 48 MiB of scores)


def _manual_attention(q, k, v, mask, scale):
    """One sequence: q [n, Hq, D] against k, v [ctx, KV, D]; float32 softmax. ~2x CPU bf16 SDPA."""
    n, hq, d = q.shape
    kv = k.shape[1]
    qg = q.view(n, kv, hq // kv, d).permute(1, 2, 0, 3)  # [KV, G, n, D]
    scores = torch.matmul(qg, k.permute(1, 2, 0)[:, None]) * scale  # [KV, G, n, ctx]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, v.transpose(0, 1)[:, None]).permute(2, 0, 1, 3).reshape(n, hq, d)


def _blocked_attention(q, k, v, scale):
    """One sequence whose n queries q [n, Hq, D] are the last n of its ctx positions (a prefill chunk after
    its cached prefix), against k, v [ctx, KV, D]: causal GQA attention one KV head at a time, each product
    one GEMM of all that head's queries ([G * n, D]) with a block of keys, the softmax kept as a running max
    and sum in float32 (online softmax), so the score matrix never exists whole. Scores are rounded to the
    model dtype as in `_manual_attention` (and the reference's eager attention); probabilities go to the
    product with V in the model dtype, the output is summed in float32."""
    n, hq, d = q.shape
    ctx, kvh = k.shape[0], k.shape[1]
    if n > QUERY_BLOCK:  # later queries see more keys: each block of queries is the last of its own context
        return torch.cat([_blocked_attention(q[a:a + QUERY_BLOCK], k[:ctx - n + min(n, a + QUERY_BLOCK)],
                                             v[:ctx - n + min(n, a + QUERY_BLOCK)], scale)
                          for a in range(0, n, QUERY_BLOCK)])
    g = hq // kvh
    out = torch.empty_like(q)
    pos = torch.arange(ctx - n, ctx, device=q.device)[:, None]  # the queries' positions
    for h in range(kvh):
        qh = q[:, h * g:(h + 1) * g].transpose(0, 1).reshape(g * n, d)  # rows: (query head, query)
        kh, vh = k[:, h].contiguous(), v[:, h].contiguous()
        m = total = o = None
        for s in range(0, ctx, KEY_BLOCK):
            e = min(ctx, s + KEY_BLOCK)
            sc = ((qh @ kh[s:e].T) * scale).float()
            if e > ctx - n:  # the block holds some queries' own positions: hide the keys after them
                sc.view(g, n, e - s).masked_fill_(torch.arange(s, e, device=q.device) > pos, float("-inf"))
            top = sc.amax(1, keepdim=True)  # finite: key 0 is visible to every query
            if m is not None:
                top = torch.maximum(m, top)
                fade = (m - top).exp_()
            p = sc.sub_(top).exp_()
            pv = (p.to(q.dtype) @ vh[s:e]).float()
            if m is None:
                total, o = p.sum(1, keepdim=True), pv
            else:
                total, o = total.mul_(fade).add_(p.sum(1, keepdim=True)), o.mul_(fade).add_(pv)
            m = top
        out[:, h * g:(h + 1) * g] = o.div_(total).to(q.dtype).view(g, n, d).transpose(0, 1)
    return out


def _decode_attention(q, k_cache, v_cache, slots, mask, scale):
    """One query per sequence, all sequences at once: [B, Hq, D] against padded cached keys.

    Written out rather than through SDPA, whose CPU bf16 path is >10x slower for a single query.
    Scores are computed in the model dtype and softmaxed in float32, as the reference does.
    """
    b, n = slots.shape
    kv_heads, d = k_cache.shape[1], k_cache.shape[2]
    # contiguous [B, KV, n, D] operands: the matmul on permuted views is 2-3x slower
    ks = k_cache.index_select(0, slots.flatten()).view(b, n, kv_heads, d).transpose(1, 2).contiguous()
    vs = v_cache.index_select(0, slots.flatten()).view(b, n, kv_heads, d).transpose(1, 2).contiguous()
    qg = q.view(b, kv_heads, -1, d)  # query heads grouped by their KV head
    scores = torch.matmul(qg, ks.transpose(-1, -2)) * scale  # [B, KV, G, n]
    if mask is not None:
        scores = scores.masked_fill(~mask.view(b, 1, 1, n), float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, vs).view(b, -1, d)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, meta: AttentionMetadata,
           k_cache: torch.Tensor | None, v_cache: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Causal GQA attention. q [T, Hq, D]; k, v [T, Hkv, D], written to the caches [slots, Hkv, D] first
    when there are caches. Returns [T, Hq, D]. (The native decode pair, bound by `Attention.bind_kernels`,
    writes k, v in its prologue and reads the cache itself.)"""
    cu, ctx_lens = meta.cu_seqlens_q, meta.context_lens
    use_cache = meta.slot_mapping is not None
    if use_cache:
        k_cache.index_copy_(0, meta.slot_mapping, k)
        v_cache.index_copy_(0, meta.slot_mapping, v)
    elif len(set(ctx_lens)) == 1 and cu[-1] == ctx_lens[0] * len(ctx_lens):
        # Equal-length, cache-free batch (training): one fused call.
        b, n = len(ctx_lens), ctx_lens[0]
        out = F.scaled_dot_product_attention(
            q.view(b, n, *q.shape[1:]).transpose(1, 2), k.view(b, n, *k.shape[1:]).transpose(1, 2),
            v.view(b, n, *v.shape[1:]).transpose(1, 2), is_causal=True, scale=scale, enable_gqa=True)
        return out.transpose(1, 2).reshape(q.shape)
    if use_cache and meta.decode_slots is not None:
        n = meta.decode_slots.shape[1]
        mask = torch.arange(n, device=q.device)[None, :] < meta.decode_lens[:, None]
        return _decode_attention(q, k_cache, v_cache, meta.decode_slots, mask, scale)
    out = torch.empty_like(q)
    blocked = q.device.type == "cpu" and not (torch.is_grad_enabled() and q.requires_grad)  # in-place softmax
    for i, ctx in enumerate(ctx_lens):
        s, e = cu[i], cu[i + 1]
        if e == s:
            continue
        if use_cache:
            slots = meta.context_slots[i]
            ki, vi = k_cache.index_select(0, slots), v_cache.index_select(0, slots)
        else:
            ki, vi = k[s:e], v[s:e]
        q_len = e - s
        scores = q_len * ctx * q.shape[1]
        if scores >= BLOCKED_MIN_SCORES and blocked:
            out[s:e] = _blocked_attention(q[s:e], ki, vi, scale)
        elif scores <= MANUAL_MAX_SCORES:
            mask = None if q_len == 1 else _causal_mask(q_len, ctx, q.device)
            out[s:e] = _manual_attention(q[s:e], ki, vi, mask, scale)
        else:  # long contexts on a GPU or with gradients: SDPA never materialises the score matrix
            o = F.scaled_dot_product_attention(q[s:e].transpose(0, 1), ki.transpose(0, 1), vi.transpose(0, 1),
                                               attn_mask=_causal_mask(q_len, ctx, q.device), scale=scale,
                                               enable_gqa=True)
            out[s:e] = o.transpose(0, 1)
    return out
