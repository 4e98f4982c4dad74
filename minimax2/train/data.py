"""From conversations to training tensors: M2 rendering, tokenization, loss masks, flat batches.

A conversation is rendered with the same `render_prompt` that builds inference prompts. The loss
covers exactly what the model generates at inference: for each assistant turn, everything after
the generation prompt `]~b]ai\\n<think>\\n` up to and including the closing `[e~[` (reasoning,
`</think>`, content, tool calls). Batches are flat: sequences are concatenated without padding
and `AttentionMetadata` keeps each one attending only to itself, as in inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from ..chat import markers as m
from ..chat import render_prompt
from ..model.attention import AttentionMetadata


def assistant_spans(messages: list[dict], tools: list[dict] | None, prefill: str = "") -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and, per trained assistant turn, the [start, end) characters it generates.

    Trained turns are the assistant messages after the last user message that carry reasoning: earlier
    turns are history (the renderer drops their reasoning, so they are not what the model generates), and
    so is a turn a client sent back without its reasoning. With `prefill` (what a request asking for no
    thinking appends to the generation prompt) only the last message is trained, generated after it."""
    if prefill:
        return _prefilled_span(messages, tools, prefill)
    text = render_prompt(messages, tools=tools, add_generation_prompt=False)
    last_user = max((k for k, msg in enumerate(messages) if msg.get("role") == "user"), default=-1)
    spans = []
    for k, msg in enumerate(messages):
        if msg.get("role") != "assistant" or k < last_user or not msg.get("reasoning_content"):
            continue
        prompt = render_prompt(messages[:k], tools=tools, add_generation_prompt=True)
        upto = render_prompt(messages[: k + 1], tools=tools, add_generation_prompt=False)
        end = upto.rindex(m.END_OF_MESSAGE) + len(m.END_OF_MESSAGE)
        if not (upto.startswith(prompt) and text.startswith(upto[:end])):
            raise ValueError(f"assistant turn {k} does not extend its generation prompt; the loss mask would be wrong")
        spans.append((len(prompt), end))
    return text, spans


def _prefilled_span(messages: list[dict], tools: list[dict] | None, prefill: str) -> tuple[str, list[tuple[int, int]]]:
    *head, last = messages
    if last.get("role") != "assistant" or last.get("reasoning_content"):
        raise ValueError("a prefilled conversation ends with an assistant message without reasoning")
    before = render_prompt(head, tools=tools, add_generation_prompt=False)
    role = m.BEGIN_OF_ROLE + m.ROLE_ASSISTANT + "\n"
    reply = render_prompt(messages, tools=tools, add_generation_prompt=False)[len(before) + len(role):]
    prompt = render_prompt(head, tools=tools, add_generation_prompt=True) + prefill
    end = reply.rindex(m.END_OF_MESSAGE) + len(m.END_OF_MESSAGE)
    return prompt + reply[:end], [(len(prompt), len(prompt) + end)]


@dataclass
class Encoded:
    ids: list[int]
    targets: list[bool]  # targets[i]: token i is predicted (from tokens < i) and counts in the loss

    @property
    def num_targets(self) -> int:
        return sum(self.targets)


def encode_conversations(tok: Tokenizer, convs: list[tuple]) -> list[Encoded]:
    """`convs`: (messages, tools) or (messages, tools, prefill) per conversation."""
    rendered = [assistant_spans(*conv) for conv in convs]
    encodings = tok.encode_batch([text for text, _ in rendered], add_special_tokens=False)
    out = []
    for (_, spans), enc in zip(rendered, encodings):
        targets = [any(s <= start < e for s, e in spans) for start, _ in enc.offsets]
        out.append(Encoded(list(enc.ids), targets))
    return out


@dataclass
class FlatBatch:
    input_ids: torch.Tensor  # [T]
    positions: torch.Tensor  # [T]
    labels: torch.Tensor  # [T], -100 where no loss
    meta: AttentionMetadata
    num_tokens: int


def flat_batch(seqs: list[Encoded], device: str | torch.device = "cpu") -> FlatBatch:
    """Inputs are each sequence minus its last token; labels are the next tokens where they count."""
    ids, pos, labels, lens = [], [], [], []
    for s in seqs:
        n = len(s.ids) - 1
        ids += s.ids[:-1]
        pos += range(n)
        labels += [t if keep else -100 for t, keep in zip(s.ids[1:], s.targets[1:])]
        lens.append(n)
    cu = [0]
    for n in lens:
        cu.append(cu[-1] + n)
    meta = AttentionMetadata(cu_seqlens_q=cu, context_lens=lens)
    return FlatBatch(torch.tensor(ids, device=device), torch.tensor(pos, device=device),
                     torch.tensor(labels, device=device), meta, len(ids))

