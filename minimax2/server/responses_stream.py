"""`StreamParser` events -> OpenAI Responses output items and their streaming events.

One `OutputWriter` per response builds the output items (reasoning, message, function_call, in the
order the model produced them) and, as it goes, the events a streaming client receives:
`response.output_item.added`, `response.content_part.added`, `response.reasoning_text.delta`
(and `response.reasoning_summary_text.delta` when a summary was asked for: M2's reasoning is its own
summary), `response.output_text.delta`, `response.function_call_arguments.delta`, then each item's
`.done` events. The non-streaming route uses the same writer and drops the events, so both give
the same items."""

from __future__ import annotations

import json

from ..chat import Event
from .responses_format import call_item, message_item, new_item_id, reasoning_item


class OutputWriter:
    def __init__(self, summary: bool = False, parallel: bool = True, token=None):
        self.summary, self.parallel, self.token = summary, parallel, token  # token(text): encrypted_content
        self.items: list[dict] = []
        self.seq = -1
        self.open: str | None = None  # "reasoning" | "message" | "call<i>"
        self.text = ""  # of the open reasoning or message item
        self.calls: dict[int, int] = {}  # parser call index -> output index

    # -- events ------------------------------------------------------------------------------------
    def event(self, kind: str, **fields) -> dict:
        self.seq += 1
        return {"type": kind, "sequence_number": self.seq, **fields}

    def sse(self, obj: dict) -> str:
        """One server-sent event; an error body (from `guard_stream`) becomes an `error` event."""
        if "type" not in obj and isinstance(obj.get("error"), dict):
            err = obj["error"]
            obj = self.event("error", code=err.get("code") or err.get("type"), message=err.get("message", ""),
                             param=err.get("param"))
        return f"event: {obj['type']}\ndata: {json.dumps(obj, ensure_ascii=False)}\n\n"

    def _where(self) -> dict:
        idx = len(self.items) - 1
        return {"item_id": self.items[idx]["id"], "output_index": idx}

    def _add(self, kind: str, item: dict) -> list[dict]:
        out = self.close()
        self.items.append(item)
        self.open, self.text = kind, ""
        return out + [self.event("response.output_item.added", output_index=len(self.items) - 1, item=item)]

    def feed(self, ev) -> list[dict]:
        """Events for one `StreamParser` event."""
        out: list[dict] = []
        if ev.kind == "reasoning":
            if self.open != "reasoning":
                out = self._add("reasoning", reasoning_item(new_item_id("rs"), "", "in_progress", False))
                out.append(self.event("response.content_part.added", **self._where(), content_index=0,
                                      part={"type": "reasoning_text", "text": ""}))
                if self.summary:
                    out.append(self.event("response.reasoning_summary_part.added", **self._where(), summary_index=0,
                                          part={"type": "summary_text", "text": ""}))
            self.text += ev.text
            out.append(self.event("response.reasoning_text.delta", **self._where(), content_index=0, delta=ev.text))
            if self.summary:
                out.append(self.event("response.reasoning_summary_text.delta", **self._where(), summary_index=0,
                                      delta=ev.text))
            return out
        if ev.kind == "content":
            if self.open != "message":
                out = self._add("message", {**message_item(new_item_id("msg"), "", "in_progress"), "content": []})
                out.append(self.event("response.content_part.added", **self._where(), content_index=0,
                                      part={"type": "output_text", "text": "", "annotations": [], "logprobs": []}))
            self.text += ev.text
            if ev.text:
                out.append(self.event("response.output_text.delta", **self._where(), content_index=0, delta=ev.text,
                                      logprobs=[]))
            return out
        if not self.parallel and ev.index > 0:
            return []
        if ev.kind == "tool_start":
            self.calls[ev.index] = len(self.items)
            return self._add(f"call{ev.index}", call_item(new_item_id("fc"), ev.id, ev.name, "", "in_progress"))
        if self.open != f"call{ev.index}":  # late arguments of an earlier call (only after malformed output)
            return []
        self.items[-1]["arguments"] += ev.text
        return [self.event("response.function_call_arguments.delta", **self._where(), delta=ev.text)]

    def close(self, status: str = "completed") -> list[dict]:
        """Finish the open item: its `.done` events and `response.output_item.done`."""
        if self.open is None:
            return []
        where, out = self._where(), []
        if self.open == "reasoning":
            out.append(self.event("response.reasoning_text.done", **where, content_index=0, text=self.text))
            out.append(self.event("response.content_part.done", **where, content_index=0,
                                  part={"type": "reasoning_text", "text": self.text}))
            if self.summary:
                out.append(self.event("response.reasoning_summary_text.done", **where, summary_index=0, text=self.text))
                out.append(self.event("response.reasoning_summary_part.done", **where, summary_index=0,
                                      part={"type": "summary_text", "text": self.text}))
            tok = self.token(self.text) if self.token else None
            self.items[-1] = reasoning_item(where["item_id"], self.text, status, self.summary, tok)
        elif self.open == "message":
            self.items[-1] = message_item(where["item_id"], self.text, status)
            part = self.items[-1]["content"][0]
            out.append(self.event("response.output_text.done", **where, content_index=0, text=self.text, logprobs=[]))
            out.append(self.event("response.content_part.done", **where, content_index=0, part=part))
        else:
            item = self.items[-1]
            item["status"] = status
            out.append(self.event("response.function_call_arguments.done", **where, name=item["name"],
                                  arguments=item["arguments"]))
        self.open = None
        out.append(self.event("response.output_item.done", output_index=where["output_index"], item=self.items[-1]))
        return out

    def end(self, incomplete: bool) -> list[dict]:
        """Close the last item; a response with neither text nor calls still gets an (empty) message."""
        out = self.close("incomplete" if incomplete else "completed")
        if not any(i["type"] in ("message", "function_call") for i in self.items):
            out += self.feed(Event("content", "")) + self.close("incomplete" if incomplete else "completed")
        return out

    def replay(self, final) -> "OutputWriter":
        """A writer holding the items of a final parse (`ParsedOutput`); its events are not sent."""
        w = OutputWriter(self.summary, self.parallel, self.token)
        events = [Event("reasoning", final.reasoning)] if final.reasoning else []
        events += [Event("content", final.content)] if final.content else []
        for i, call in enumerate(final.tool_calls):
            events += [Event("tool_start", index=i, id=call.id, name=call.name),
                       Event("tool_args", call.arguments_json(), index=i)]
        for ev in events:
            w.feed(ev)
        return w

    @property
    def has_calls(self) -> bool:
        return any(i["type"] == "function_call" for i in self.items)
