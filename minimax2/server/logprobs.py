"""Logprob objects of the OpenAI APIs from the engine's per-token records ({token_id, logprob, top})."""

from __future__ import annotations

import itertools

LOGPROB_FLOOR = -9999.0  # what OpenAI reports for a token that cannot be sampled (JSON has no -Infinity)


def _lp(value: float) -> float:
    """A logprob fit for JSON: a token a grammar forbids has -inf, reported as the floor."""
    return max(value, LOGPROB_FLOOR)


def chat_logprobs(tok, infos: list[dict]) -> dict:
    """The Chat Completions logprobs object: each token with its bytes and top alternatives."""

    def entry(tid, lp):
        s = tok.decode([tid])
        return {"token": s, "logprob": _lp(lp), "bytes": list(s.encode())}

    return {"content": [{**entry(i["token_id"], i["logprob"]),
                         "top_logprobs": [entry(t, lp) for t, lp in i.get("top", [])]} for i in infos]}


def completion_logprobs(tok, infos: list[dict], start: int = 0) -> dict:
    """The /v1/completions logprobs object: tokens, token_logprobs, top_logprobs, text_offset (each token's
    place in the choice's text, which begins at `start`: after the prompt when it is echoed)."""
    tokens = [tok.decode([i["token_id"]]) for i in infos]
    offsets = list(itertools.accumulate((len(t) for t in tokens[:-1]), initial=start)) if tokens else []
    return {"tokens": tokens, "token_logprobs": [_lp(i["logprob"]) for i in infos], "text_offset": offsets,
            "top_logprobs": [{tok.decode([t]): _lp(lp) for t, lp in i.get("top", [])} for i in infos]}
