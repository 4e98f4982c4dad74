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
    """Prints generated text as it streams: dimmed while in <think>, hidden once a tool call starts."""

    def __init__(self, console: Console):
        self.console, self.buf, self.shown, self.thinking = console, "", 0, True

    def __call__(self, _i: int, delta: str) -> None:
        self.buf += delta
        while True:
            if self.thinking:
                end = self.buf.find(m.THINK_END, self.shown)
                stop = len(self.buf) if end < 0 else end
                safe = stop if end >= 0 else max(self.shown, stop - len(m.THINK_END) + 1)
                self._emit(safe, "dim")
                if end < 0:
                    return
                self.shown, self.thinking = end + len(m.THINK_END), False
                self.console.print()
                continue
            call = self.buf.find(m.TOOL_CALL_START, self.shown)
            limit = call if call >= 0 else max(self.shown, len(self.buf) - len(m.TOOL_CALL_START) + 1)
            self._emit(limit, None)
            return

    def _emit(self, upto: int, style: str | None) -> None:
        if upto > self.shown:
            text = self.buf[self.shown:upto]
            self.console.print(text.lstrip("\n") if self.shown == 0 else text, style=style, end="",
                               markup=False, highlight=False)
            self.shown = upto


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
        reply = llm.chat(history, tools=tools, sampling_params=sampling, on_delta=_StreamView(console))
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
                      f"{reply.finish_reason})[/]")
