"""LLMEngine: continuous batching over a paged KV cache with prefix caching.

`step()` asks the scheduler for a batch, runs it, samples, and returns one `StepOutput` per sequence
that produced something (new tokens, text, or a finish reason). Requests join between steps and
leave the moment they finish; `abort` frees a request's blocks at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..chat.tokenizer import Tokenizer
from ..model.config import ModelConfig
from ..model.minimax_m2 import MiniMaxM2
from .block_manager import BlockManager
from .model_runner import ModelRunner, kv_bytes_per_block
from .output import OutputText, StepOutput
from .sampler import NO_TOKEN, make_generator, sample
from .sampling_params import SamplingParams
from .scheduler import Scheduler, SchedulerConfig
from .sequence import Sequence

log = logging.getLogger("minimax2.engine")


@dataclass
class EngineConfig:
    block_size: int = 16
    kv_cache_gb: float | None = None  # KV memory budget; default: what max_num_seqs full contexts need, <= 4 GiB
    num_kv_blocks: int | None = None  # overrides kv_cache_gb (tests use tiny caches)
    max_num_seqs: int = 16
    max_num_batched_tokens: int = 512  # per-step token budget; long prompts are prefilled in chunks of this
    max_model_len: int | None = None  # default: the model's max_position_embeddings
    enable_prefix_caching: bool = True


def _history(seq: Sequence) -> tuple[list[int], list[int]] | None:
    """(prompt ids, output ids), copied only for the sequences whose sampling reads them."""
    if not (seq.params.has_penalties or seq.params.logits_processors):
        return None
    return seq.token_ids[:seq.num_prompt_tokens], seq.completion_ids


def kv_cache_blocks(cfg: ModelConfig, c: EngineConfig, dtype: torch.dtype) -> tuple[int, int]:
    """(number of KV blocks, bytes per block) for `c`: num_kv_blocks, else kv_cache_gb, else what
    max_num_seqs full contexts need, at most 4 GiB."""
    per_block = kv_bytes_per_block(cfg, c.block_size, dtype)
    if c.num_kv_blocks:
        return c.num_kv_blocks, per_block
    if c.kv_cache_gb:
        return int(c.kv_cache_gb * 2**30 // per_block), per_block
    want = c.max_num_seqs * -(-(c.max_model_len or cfg.max_position_embeddings) // c.block_size)
    return min(want, int(4 * 2**30 // per_block)), per_block


class RequestError(ValueError):
    """A request the engine cannot take (empty prompt, too long, bad token id)."""


class LLMEngine:
    def __init__(self, model: MiniMaxM2, tokenizer: Tokenizer | None, eos_token_ids: list[int],
                 config: EngineConfig | None = None):
        self.config = c = config or EngineConfig()
        self.model, self.tokenizer, self.eos = model, tokenizer, set(eos_token_ids)
        self.max_model_len = c.max_model_len or model.cfg.max_position_embeddings
        num_blocks, per_block = kv_cache_blocks(model.cfg, c, model.dtype)
        if num_blocks < 1:
            raise ValueError(f"KV budget too small: one block of {c.block_size} tokens needs {per_block} bytes")
        self.block_manager = BlockManager(num_blocks, c.block_size, c.enable_prefix_caching)
        self.scheduler = Scheduler(SchedulerConfig(c.max_num_seqs, c.max_num_batched_tokens), self.block_manager)
        self.runner = ModelRunner(model, c.block_size, num_blocks)
        self.requests: dict[str, list[Sequence]] = {}
        log.info("KV cache: %d blocks x %d tokens = %d tokens (%.1f MiB)", num_blocks, c.block_size,
                 num_blocks * c.block_size, self.runner.kv_bytes / 2**20)

    # -- requests -----------------------------------------------------------------------------------
    def add_request(self, request_id: str, prompt_ids: list[int], params: SamplingParams) -> None:
        if request_id in self.requests:
            raise RequestError(f"request id {request_id!r} is already running")
        if not prompt_ids:
            raise RequestError("empty prompt")
        vocab = self.model.cfg.vocab_size
        bad = next((t for t in prompt_ids if not 0 <= t < vocab), None)
        if bad is not None:
            raise RequestError(f"token id {bad} is outside the vocabulary (0..{vocab - 1})")
        if len(prompt_ids) >= self.max_model_len:
            raise RequestError(f"the prompt has {len(prompt_ids)} tokens; the context is {self.max_model_len} tokens "
                               f"and at least one must be left to generate")
        bs, blocks = self.config.block_size, len(self.block_manager.blocks)
        need = -(-min(len(prompt_ids) + params.max_tokens, self.max_model_len) // bs)
        if need > blocks:
            raise RequestError(f"the request needs up to {need * bs} tokens of KV cache but the whole cache holds "
                               f"{blocks * bs}; lower max_tokens or give the cache more memory (--kv-cache-gb)")
        seqs = []
        for i in range(params.n):
            out = OutputText(self.tokenizer, params.stop, self.tokenizer.special_ids) if self.tokenizer else None
            seq = Sequence(request_id, prompt_ids, params, i, out, make_generator(params, offset=i))
            seq.parent = seqs[0] if seqs else None
            seqs.append(seq)
        for seq in seqs:  # only once every completion could be made: nothing is queued for a failed request
            self.scheduler.add(seq)
        self.requests[request_id] = seqs

    def abort(self, request_id: str) -> bool:
        seqs = self.requests.pop(request_id, None)
        for seq in seqs or []:
            if not seq.is_finished:
                seq.finish_reason = "abort"
                self.scheduler.finish(seq)
        return seqs is not None

    def reset_prefix_cache(self) -> int:
        """Forget every cached prefix no running request holds (`BlockManager.reset_prefix_cache`)."""
        return self.block_manager.reset_prefix_cache()

    def has_unfinished(self) -> bool:
        return self.scheduler.has_work()

    @property
    def num_running(self) -> int:
        return len(self.scheduler.running)

    @property
    def num_waiting(self) -> int:
        return len(self.scheduler.waiting)

    # -- the loop -----------------------------------------------------------------------------------
    def step(self) -> list[StepOutput]:
        """One batch forward and its samples. A failure inside the step ends only the requests it touches
        (the whole batch when the model itself raises, only the offending rows when sampling does), with
        finish_reason "error" and the exception in `StepOutput.error`; their blocks are freed and the
        engine goes on serving the rest."""
        batch = self.scheduler.schedule()
        if not batch:
            return []
        try:
            logits, rows = self.runner.run(batch)
        except Exception as e:  # noqa: BLE001 - whatever the model raised, only this batch's requests fail
            log.exception("engine step failed; ending the %d requests of its batch", len(batch))
            return [self._fail(seq, e) for seq, _ in batch]
        for seq, n in batch:
            seq.num_cached_tokens += n
            self.block_manager.commit(seq)
        sampled = [batch[k][0] for k in rows]
        errors: dict[int, Exception] = {}
        tokens, infos = sample(logits, [s.params for s in sampled], [s.generator for s in sampled],
                               [_history(s) for s in sampled], errors)
        for i, e in errors.items():
            log.error("request %s: sampling failed (%r); ending it", sampled[i].request_id, e)
        return [self._fail(seq, errors[i]) if i in errors else self._append(seq, tok, info)
                for i, (seq, tok, info) in enumerate(zip(sampled, tokens, infos))]

    def _fail(self, seq: Sequence, error: Exception) -> StepOutput:
        """End `seq` (and its request's other completions) with `error`, freeing their blocks."""
        for s in self.requests.pop(seq.request_id, [seq]):
            if not s.is_finished:
                s.finish_reason = "error"
                self.scheduler.finish(s)
        return StepOutput(seq.request_id, seq.index, [], "", "error", seq.num_prompt_tokens, seq.num_completion_tokens,
                          seq.num_prefix_hit_tokens, error=error)

    def _append(self, seq: Sequence, tok: int, info: dict | None) -> StepOutput:
        sp, text, new, stop_reason = seq.params, "", [tok], None
        if tok == NO_TOKEN:
            log.warning("request %s: logits processors left no allowed token; ending it", seq.request_id)
            seq.finish_reason, new = "stop", []
        elif (tok in self.eos and not sp.ignore_eos) or tok in sp.stop_token_ids:
            seq.finish_reason, new = "stop", []
            stop_reason = tok if tok in sp.stop_token_ids else None
        else:
            seq.token_ids.append(tok)
            if info is not None:
                seq.logprobs.append(info)
            if seq.output is not None:
                text, stopped = seq.output.push(tok)
                if stopped:
                    seq.finish_reason, stop_reason = "stop", seq.output.matched
            if seq.finish_reason is None and (seq.num_completion_tokens >= sp.max_tokens
                                              or seq.num_tokens >= self.max_model_len):
                seq.finish_reason = "length"
        if seq.finish_reason is not None:
            if seq.output is not None:
                text += seq.output.finish()
            self.scheduler.finish(seq)
            if all(s.is_finished for s in self.requests.get(seq.request_id, [])):
                self.requests.pop(seq.request_id, None)
        return StepOutput(seq.request_id, seq.index, new, text, seq.finish_reason, seq.num_prompt_tokens,
                          seq.num_completion_tokens, seq.num_prefix_hit_tokens,
                          [info] if info is not None and new else [], stop_reason)
