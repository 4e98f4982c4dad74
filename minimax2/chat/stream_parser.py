"""Incremental parsing of M2 output into channel events, for streaming responses.

`StreamParser.feed(text)` returns the events that are already certain; `finish()` flushes and then
reconciles with `parse_output` (the one non-streaming parser), so what a client assembles from the
events equals the non-streaming parse. Events:

- ``Event("reasoning", text=...)`` / ``Event("content", text=...)``: text to append to that channel;
- ``Event("tool_start", index=i, id=..., name=...)``: as soon as ``<invoke name="...">`` is complete;
- ``Event("tool_args", index=i, text=...)``: a fragment of the call's arguments JSON; the fragments of
  one call concatenate to exactly ``ToolCall.arguments_json()``. String-typed values stream while
  they are generated; other values are sent when their ``</parameter>`` arrives.

Text that could be the start of a marker is held back, so a partial ``<minimax:...`` never leaks;
each channel's surrounding whitespace is held the way ``parse_output`` strips it. With
``reasoning=False`` (empty think block pre-filled) text is held until it cannot be reasoning closed by
a ``</think>`` anyway (dropped if so): it becomes content at a tool call or at the end. A few malformed
outputs (an invoke whose block never closes, a repeated parameter) can announce a call the final
parse lacks; `mismatch` is then set and logged. `_states` maps each state to the method that
consumes text in it (returning whether it made progress).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from . import markers as m
from .parser import (ParsedOutput, clean_name, clean_value, convert_value, find_first, held_len, new_tool_call_id,
                     parse_output, partial_marker_len, schema_types, tool_param_types)

log = logging.getLogger("minimax2.chat")


@dataclass
class Event:
    kind: str  # reasoning | content | tool_start | tool_args
    text: str = ""
    index: int = 0
    id: str = ""
    name: str = ""


def _json_str_body(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)[1:-1]


class StreamParser:
    def __init__(self, tools: list | None = None, reasoning: bool = True, think_end_banned: bool = False):
        """reasoning=False (empty think block pre-filled): text waits for `</think>` unless it is banned."""
        self.tools, self.reasoning = tools, reasoning
        self.types = tool_param_types(tools)
        self._parts: list[str] = []  # everything fed, for the final parse
        self._pending = ""  # a possible start of the end-of-message marker, not yet certain
        self._ended = False  # the end-of-message marker was seen: the rest is ignored
        self.buf = ""  # certain text not consumed yet (kept short: only what may still be a marker)
        self.state = "start" if reasoning else "content" if think_end_banned else "unthought"
        self._unthought: list[str] = []  # reasoning=False: text that a later </think> makes reasoning
        self._states = {"start": self._st_start, "reasoning": self._st_reasoning, "unthought": self._st_unthought,
                        "content": self._st_content, "block": self._st_block, "between": self._st_between,
                        "invoke_head": self._st_invoke_head, "invoke_body": self._st_invoke_body,
                        "skip_invoke": self._st_skip_invoke, "param_head": self._st_param_head,
                        "param_skip": self._st_param_skip, "param_value": self._st_param_value}
        self.sent = {"reasoning": [], "content": []}
        self._ws = {"reasoning": "", "content": ""}
        self.calls: list[dict] = []  # {"id", "name", "args": [fragments]} as announced
        self.final: ParsedOutput | None = None
        self.mismatch = False
        self._out: list[Event] = []

    # -- public -----------------------------------------------------------------------------------
    def feed(self, chunk: str) -> list[Event]:
        self._parts.append(chunk)
        if self._ended or not chunk:
            return []
        text = self._pending + chunk
        cut = text.find(m.END_OF_MESSAGE)
        if cut >= 0:
            text, self._pending, self._ended = text[:cut], "", True
        else:
            hold = partial_marker_len(text, m.END_OF_MESSAGE)
            text, self._pending = text[:len(text) - hold], text[len(text) - hold:]
        self.buf += text
        self._advance(final=False)
        return self._take()

    def finish(self) -> list[Event]:
        self.buf += self._pending
        self._pending = ""
        self._advance(final=True)
        if self.state == "unthought":  # no </think> came: it was content after all
            self._channel("content", "".join(self._unthought))
        self._reconcile("".join(self._parts))
        return self._take()

    # -- emitting ---------------------------------------------------------------------------------
    def _take(self) -> list[Event]:
        out, self._out = self._out, []
        return out

    def _channel(self, ch: str, s: str) -> None:
        """Append text to reasoning/content, dropping leading and holding trailing whitespace."""
        if not self.sent[ch]:
            s = (self._ws[ch] + s).lstrip()
            self._ws[ch] = ""
        else:
            s = self._ws[ch] + s
        body = s.rstrip()
        self._ws[ch] = s[len(body):]
        if body:
            self.sent[ch].append(body)
            self._out.append(Event(ch, text=body))

    def _args(self, s: str) -> None:
        if s:
            self.calls[-1]["args"].append(s)
            self._out.append(Event("tool_args", text=s, index=len(self.calls) - 1))

    def _key(self) -> None:
        first = not self.calls[-1]["args"]
        self._args(("{" if first else ", ") + json.dumps(self.key, ensure_ascii=False) + ": ")

    # -- the state machine ------------------------------------------------------------------------
    def _advance(self, final: bool) -> None:
        while self.buf or (final and self.state == "start"):
            if not self._states[self.state](self.buf, final):
                return

    def _eat(self, n: int) -> None:
        self.buf = self.buf[n:]

    def _scan(self, buf: str, final: bool, marks: tuple[str, ...], emit) -> tuple[int, str]:
        """Find the first of `marks`; pass the text before it (or the safe part) to `emit`."""
        i, mk = find_first(buf, marks)
        if i < 0:
            safe = len(buf) if final else len(buf) - held_len(buf, marks)
            emit(buf[:safe])
            self._eat(safe)
            return -1, ""
        emit(buf[:i])
        self._eat(i + len(mk))
        return i, mk

    def _st_start(self, buf: str, final: bool) -> bool:
        s = buf.lstrip()
        if not final and (not s or m.THINK_START.startswith(s)):
            return False
        if s.startswith(m.THINK_START):
            self._eat(len(buf) - len(s) + len(m.THINK_START))
        self.state = "reasoning"
        return True

    def _goto(self, buf: str, final: bool, targets: dict[str, str], emit=lambda s: None) -> bool:
        """Scan for the markers of `targets` (marker -> the state it leads to), emitting the text before."""
        i, mk = self._scan(buf, final, tuple(targets), emit)
        if i >= 0:
            self.state = targets[mk]
        return i >= 0

    def _st_reasoning(self, buf: str, final: bool) -> bool:
        return self._goto(buf, final, {m.THINK_END: "content", m.TOOL_CALL_START: "block"},
                          lambda s: self._channel("reasoning", s))

    def _st_unthought(self, buf: str, final: bool) -> bool:
        i, mk = self._scan(buf, final, (m.THINK_END, m.TOOL_CALL_START), self._unthought.append)
        if mk == m.TOOL_CALL_START:
            self._channel("content", "".join(self._unthought))
        if mk:  # after </think>: reasoning after all, dropped since thinking is off
            self._unthought, self.state = [], "content" if mk == m.THINK_END else "block"
        return i >= 0

    def _st_content(self, buf: str, final: bool) -> bool:
        return self._goto(buf, final, {m.TOOL_CALL_START: "block"}, lambda s: self._channel("content", s))

    def _st_block(self, buf: str, final: bool) -> bool:
        return self._goto(buf, final, {m.INVOKE_START: "invoke_head", m.TOOL_CALL_END: "between"})

    def _st_between(self, buf: str, final: bool) -> bool:
        return self._goto(buf, final, {m.TOOL_CALL_START: "block"})

    def _st_invoke_head(self, buf: str, final: bool) -> bool:
        i = buf.find(">")
        if i < 0:
            return False
        head = buf[:i]
        self._eat(i + 1)
        name = clean_name(head)
        if "<" in head or not name:
            self.state = "skip_invoke"
            return True
        self.calls.append({"id": new_tool_call_id(), "name": name, "args": []})
        self._out.append(Event("tool_start", index=len(self.calls) - 1, id=self.calls[-1]["id"], name=name))
        self.params = self.types.get(name) or {}
        self.state = "invoke_body"
        return True

    def _st_invoke_body(self, buf: str, final: bool) -> bool:
        i, mk = self._scan(buf, final, (m.PARAMETER_START, m.INVOKE_END, m.TOOL_CALL_END), lambda s: None)
        if mk == m.PARAMETER_START:
            self.state = "param_head"
        elif mk == m.INVOKE_END:
            self._args("}" if self.calls[-1]["args"] else "{}")
            self.state = "block"
        elif mk:  # the block closed inside the invoke: not a call after all (reconcile notices)
            self.state = "between"
        return i >= 0

    def _st_skip_invoke(self, buf: str, final: bool) -> bool:
        return self._goto(buf, final, {m.INVOKE_END: "block", m.TOOL_CALL_END: "between"})

    def _st_param_head(self, buf: str, final: bool) -> bool:
        i = buf.find(">")
        if i < 0:
            return False
        head = buf[:i]
        self._eat(i + 1)
        self.key = clean_name(head)
        if "<" in head or not self.key:
            self.state = "param_skip"
            return True
        self.schema = self.params.get(self.key)
        self.stream_str = schema_types(self.schema) <= {"string", "null"}
        self.value, self.started, self.held = "", False, ""  # held: trailing whitespace of a streamed string
        self.state = "param_value"
        return True

    def _st_param_skip(self, buf: str, final: bool) -> bool:
        i, mk = self._scan(buf, final, (m.PARAMETER_END, m.INVOKE_END), lambda s: None)
        if mk == m.INVOKE_END:
            self.buf = mk + self.buf
        if i >= 0:
            self.state = "invoke_body"
        return i >= 0

    def _st_param_value(self, buf: str, final: bool) -> bool:
        i, mk = find_first(buf, (m.PARAMETER_END, m.INVOKE_END))
        if i < 0:
            safe = len(buf) if final else len(buf) - held_len(buf, (m.PARAMETER_END, m.INVOKE_END))
            self._value(buf[:safe])
            self._eat(safe)
            return False
        self._value(buf[:i])
        if mk == m.INVOKE_END:  # an unclosed parameter does not count
            self._eat(i)
        else:
            self._eat(i + len(mk))
            self._close_value()
        self.state = "invoke_body"
        return True

    def _value(self, text: str) -> None:
        """More of a parameter's value: buffered, or streamed as a JSON string once it is certainly
        one (not empty, not the literal null); trailing whitespace waits, since it may be stripped."""
        if not self.stream_str or not self.started:
            self.value += text
            body = self.value.strip()
            if not self.stream_str or "null".startswith(body.lower()):
                return
            self._key()
            self.started, text = True, self.value.lstrip()
            self._args('"')
        text = self.held + text
        body = text.rstrip()
        self.held = text[len(body):]
        self._args(_json_str_body(body))

    def _close_value(self) -> None:
        if self.started:
            self._args('"')
            return
        self._key()
        self._args(json.dumps(convert_value(clean_value(self.value), self.schema), ensure_ascii=False))

    # -- the end ----------------------------------------------------------------------------------
    def _reconcile(self, text: str) -> None:
        final = parse_output(text, self.tools, reasoning=self.reasoning)
        for ch, value in (("reasoning", final.reasoning), ("content", final.content)):
            sent = "".join(self.sent[ch])
            if value.startswith(sent):
                if value[len(sent):]:
                    self.sent[ch] = [value]
                    self._out.append(Event(ch, text=value[len(sent):]))
            else:
                self.mismatch = True
        for i, call in enumerate(final.tool_calls):
            full = call.arguments_json()
            if i < len(self.calls):
                got, args = self.calls[i], "".join(self.calls[i]["args"])
                call.id = got["id"]
                if got["name"] != call.name or not full.startswith(args):
                    self.mismatch = True
                elif full != args:
                    self._out.append(Event("tool_args", text=full[len(args):], index=i))
            else:
                self._out.append(Event("tool_start", index=i, id=call.id, name=call.name))
                self._out.append(Event("tool_args", text=full, index=i))
        if len(self.calls) > len(final.tool_calls):
            self.mismatch = True
        if self.mismatch:
            log.warning("streamed output differs from its final parse (malformed tool call markup)")
        self.final = final
