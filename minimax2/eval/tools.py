"""The agent's tools: `bash`, `edit` (view / create / str_replace) and `submit`.

Schemas are JSON Schema in the OpenAI function format; `anthropic_tools` converts them."""
from __future__ import annotations

from pathlib import Path

from . import sandbox

VIEW_LIMIT = 400  # lines shown by `edit view` without a view_range

SCHEMAS = [
    {"type": "function", "function": {
        "name": "bash",
        "description": "Run one shell command in the repository root and return its exit code and output.",
        "parameters": {"type": "object", "properties": {
            "command": {"type": "string", "description": "the command line"}},
            "required": ["command"]}}},
    {"type": "function", "function": {
        "name": "edit",
        "description": ("View a file (numbered lines) or a directory listing, create a file, or replace "
                        "one exact and unique occurrence of old_str with new_str in a file."),
        "parameters": {"type": "object", "properties": {
            "command": {"type": "string", "enum": ["view", "create", "str_replace"]},
            "path": {"type": "string", "description": "path relative to the repository root"},
            "file_text": {"type": "string", "description": "create: the whole file"},
            "old_str": {"type": "string", "description": "str_replace: the exact text to replace"},
            "new_str": {"type": "string", "description": "str_replace: the replacement"},
            "view_range": {"type": "array", "items": {"type": "integer"},
                           "description": "view: [first, last] line numbers, 1-based, last -1 = end"}},
            "required": ["command", "path"]}}},
    {"type": "function", "function": {
        "name": "submit",
        "description": "Finish: your changes to the repository are your answer.",
        "parameters": {"type": "object", "properties": {}}}},
]


class ToolError(ValueError):
    """A tool call that failed (no such file, ambiguous old_str, ...): reported to the model."""


class FormatError(ToolError):
    """A malformed tool call (unknown tool, missing or bad arguments): also counted as a format error."""


def anthropic_tools() -> list[dict]:
    return [{"name": s["function"]["name"], "description": s["function"]["description"],
             "input_schema": s["function"]["parameters"]} for s in SCHEMAS]


def _resolve(repo: Path, rel: str) -> Path:
    path = (repo / rel).resolve() if not Path(rel).is_absolute() else Path(rel).resolve()
    if path != repo.resolve() and repo.resolve() not in path.parents:
        raise ToolError(f"{rel}: outside the repository")
    return path


def _view(path: Path, view_range) -> str:
    if path.is_dir():
        entries = sorted(p for p in path.rglob("*") if ".git" not in p.parts and "__pycache__" not in p.parts)
        rels = [str(p.relative_to(path)) + ("/" if p.is_dir() else "") for p in entries]
        return "\n".join(rels[:500]) + ("\n[... more entries ...]" if len(rels) > 500 else "")
    if not path.exists():
        raise ToolError(f"{path.name}: no such file")
    _regular(path)
    lines = path.read_text(errors="replace").splitlines()
    first, last = 1, min(len(lines), VIEW_LIMIT)
    if view_range:
        if len(view_range) != 2:
            raise FormatError("view_range must be [first, last]")
        first, last = int(view_range[0]), int(view_range[1])
        last = len(lines) if last == -1 else min(last, len(lines))
    body = "\n".join(f"{i:6d}\t{lines[i - 1]}" for i in range(max(1, first), last + 1))
    more = f"\n[... {len(lines) - last} more lines: use view_range ...]" if last < len(lines) else ""
    return body + more


def _regular(path: Path) -> None:
    """The edit tool runs in the harness, outside the sandbox: a FIFO or device the agent made would
    block it (a FIFO's open waits for a writer) or never end."""
    if path.exists() and not path.is_file():
        raise ToolError(f"{path.name}: not a regular file")


def edit(repo: Path, args: dict) -> str:
    command, rel = args.get("command"), args.get("path")
    if not isinstance(rel, str) or not rel:
        raise FormatError("edit needs a path")
    path = _resolve(repo, rel)
    if command != "view" or not path.is_dir():
        _regular(path)
    if command == "view":
        return _view(path, args.get("view_range"))
    if command == "create":
        if "file_text" not in args:
            raise FormatError("create needs file_text")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(args["file_text"])
        return f"created {rel}"
    if command == "str_replace":
        if "old_str" not in args or "new_str" not in args:
            raise FormatError("str_replace needs old_str and new_str")
        if not path.is_file():
            raise ToolError(f"{rel}: no such file")
        text = path.read_text()
        count = text.count(args["old_str"])
        if count != 1:
            raise ToolError(f"old_str occurs {count} times in {rel}; it must occur exactly once")
        path.write_text(text.replace(args["old_str"], args["new_str"], 1))
        return f"edited {rel}"
    raise FormatError(f"unknown edit command {command!r} (view, create, str_replace)")


def bash(repo: Path, venv: Path, args: dict, timeout: float) -> str:
    command = args.get("command")
    if not isinstance(command, str) or not command.strip():
        raise FormatError("bash needs a non-empty command string")
    result = sandbox.run(command, repo, venv, timeout=timeout)
    status = "timed out (process group killed)" if result.timed_out else f"exit code {result.returncode}"
    return f"[{status}]\n{result.output}"


def execute(name: str, args: dict, repo: Path, venv: Path, timeout: float) -> str:
    if name == "bash":
        return bash(repo, venv, args, timeout)
    if name == "edit":
        return edit(repo, args)
    raise FormatError(f"unknown tool {name!r}; the tools are bash, edit and submit")
