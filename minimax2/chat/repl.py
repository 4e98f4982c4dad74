"""`minimax2 chat`: an interactive terminal chat. Reasoning streams dimmed, answers plain, tool calls
are shown as structured JSON; `/tool TEXT` answers the pending tool call, `/reset` starts over.
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.panel import Panel

from . import markers as m

HELP = "commands: /tool TEXT (reply to the last tool call), /reset, /exit"


class _StreamView:
    """Prints generated text as it streams: the reasoning dimmed until </think>, then the answer, nothing from
    the first tool call on. Text that may be the start of a marker, and whitespace that may end a part, is
    held back until the next text decides it; `finish` prints what is still held once generation ends. The
    reasoning and the answer are separated by one line break (the format's own newlines are dropped)."""

    def __init__(self, console: Console):
        self.console, self.buf, self.shown = console, "", 0
        self.thinking, self.fresh, self.printed = True, True, False

    def __call__(self, _i: int, delta: str) -> None:
        self.buf += delta
        self._advance(final=False)

    def finish(self) -> None:
        self._advance(final=True)

    def _advance(self, final: bool) -> None:
        if self.thinking:
            end = self.buf.find(m.THINK_END, self.shown)
            if end < 0:
                self._emit(len(self.buf) if final else len(self.buf) - len(m.THINK_END) + 1, "dim", final)
                return
            self._emit(end, "dim", closing=True)
            self.shown, self.thinking, self.fresh = end + len(m.THINK_END), False, True
            if self.printed:
                self.console.print()
        call = self.buf.find(m.TOOL_CALL_START, self.shown)
        if call >= 0:
            self._emit(call, None, closing=True)
        else:
            self._emit(len(self.buf) if final else len(self.buf) - len(m.TOOL_CALL_START) + 1, None, final)

    def _emit(self, upto: int, style: str | None, closing: bool) -> None:
        """Print buf[shown:upto] without the part's leading whitespace and, unless the part ends here (closing),
        holding back its trailing whitespace."""
        text = self.buf[self.shown:max(upto, self.shown)]
        if self.fresh:
            lead = len(text) - len(text.lstrip())
            self.shown, text = self.shown + lead, text[lead:]
        body = text.rstrip()
        if body:
            self.console.print(body, style=style, end="", markup=False, highlight=False, soft_wrap=True)
            self.fresh, self.printed = False, True
        self.shown = upto if closing and upto > self.shown else self.shown + len(body)


def finish_reason(reply) -> str:
    """'tool_calls' for a turn that ended by calling tools (the engine itself only knows it stopped)."""
    return "tool_calls" if reply.tool_calls and reply.finish_reason == "stop" else reply.finish_reason


def run_repl(llm, sampling, tools: list | None = None, system: str | None = None) -> int:
    console = Console()
    base = [{"role": "system", "content": system}] if system else []
    history = list(base)
    console.print(f"[bold]minimax2 chat[/] — {llm.path}  ({HELP})")
    while True:
        try:
            line = console.input("[bold green]you> [/]").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        if not line:
            continue
        if line in ("/exit", "/quit"):
            return 0
        if line == "/reset":
            history = list(base)
            console.print("[dim](conversation reset)[/]")
            continue
        if line.startswith("/tool"):
            if not history or not history[-1].get("tool_calls"):
                console.print("[red]no pending tool call[/]")
                continue
            history.append({"role": "tool", "content": line[len("/tool"):].strip()})
        elif line.startswith("/"):
            console.print(f"[red]unknown command[/] {line.split()[0]} — {HELP}")
            continue
        else:
            history.append({"role": "user", "content": line})
        console.print("[bold blue]ai> [/]", end="")
        view = _StreamView(console)
        reply = llm.chat(history, tools=tools, sampling_params=sampling, on_delta=view)
        view.finish()
        console.print()
        msg = {"role": "assistant", "content": reply.content, "reasoning_content": reply.reasoning}
        if reply.tool_calls:
            msg["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
                                 for c in reply.tool_calls]
            for c in reply.tool_calls:
                console.print(Panel(json.dumps(c.arguments, indent=2, ensure_ascii=False), title=f"tool call: {c.name}",
                                    border_style="cyan"))
        history.append(msg)
        console.print(f"[dim]({reply.prompt_tokens} prompt + {reply.completion_tokens} generated tokens, "
                      f"{finish_reason(reply)})[/]")
