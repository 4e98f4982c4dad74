"""Leak check at build: nothing distinctive of the fix may be visible to the agent.

Needles, taken from the gold patch's added lines: string literals (8+ characters) that the buggy
versions of the patched files do not contain, identifiers (snake_case / camelCase) that no Python
file of the buggy tree contains, plus the issue / pull request numbers named in the record's
provenance. Identifiers and one-word strings are looked for in prose (non-.py files) only; messages
(12+ characters with a space) everywhere. Any needle found in any text file of the
agent-visible buggy tree (a CHANGELOG naming the issue, docs quoting the new error message) is a leak,
reported with file and line.
"""
from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass
from pathlib import Path

STRING = re.compile(r""""((?:[^"\\\n]|\\.){8,})"|'((?:[^'\\\n]|\\.){8,})'""")
IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{5,}\b")
ISSUE = re.compile(r"(?:#|issues?\s*|pull/|issues/|PR\s*#?)(\d{2,6})\b", re.I)
MAX_FILE = 2_000_000  # bytes: bigger files are data, not prose


@dataclass(frozen=True)
class Leak:
    path: str
    line: int
    needle: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} contains {self.needle!r} from the fix"


def _changed_lines(patch: str) -> tuple[list[str], dict[str, str]]:
    """(added lines, {file: its removed lines joined}) of a unified diff."""
    added, removed, current = [], {}, ""
    for line in patch.splitlines():
        if line.startswith("+++ "):
            current = line[4:].removeprefix("b/")
        elif line.startswith("+") and not line.startswith("+++"):
            added.append(line[1:])
        elif line.startswith("-") and not line.startswith("---"):
            removed[current] = removed.get(current, "") + line[1:] + "\n"
    return added, removed


def _distinctive(ident: str) -> bool:
    """snake_case, camelCase or with digits: not a plain English word, keyword or builtin."""
    return (bool(re.search(r"[a-z0-9]_[a-z0-9]|[a-z][A-Z]|[A-Za-z]\d", ident))
            and not keyword.iskeyword(ident) and not hasattr(builtins, ident))


def needles(gold_patch: str, buggy: Path, provenance: dict) -> dict[str, tuple[re.Pattern, bool]]:
    """{description: (pattern, prose_only)} of what must not appear in the buggy tree."""
    added, removed = _changed_lines(gold_patch)
    before = "".join(removed.values())
    for rel in set(re.findall(r"(?m)^\+\+\+ b/(\S+)", gold_patch)):
        path = buggy / rel
        before += path.read_text(errors="replace") if path.is_file() else ""
    code = "\n".join(p.read_text(errors="replace") for p in buggy.rglob("*.py")
                     if p.is_file() and ".git" not in p.parts)
    found: dict[str, tuple[re.Pattern, bool]] = {}
    for line in added:
        if line.lstrip().startswith("#"):
            continue  # a comment: prose, not an answer
        for m in STRING.finditer(line):
            text = max(re.split(r"\{[^}]*\}|%[sdr]", m.group(1) or m.group(2)), key=len).strip()
            if len(text) >= 8 and text not in before and re.search(r"[A-Za-z]{3}", text):
                message = len(text) >= 12 and " " in text  # a keyword-like token may live in other code
                found[f"string {text!r}"] = (re.compile(re.escape(text)), not message)
        for ident in IDENT.findall(STRING.sub("", line)):
            if _distinctive(ident) and not re.search(rf"\b{ident}\b", before + code):
                found[f"identifier {ident}"] = (re.compile(rf"\b{re.escape(ident)}\b"), True)
    for value in provenance.values():
        for number in ISSUE.findall(str(value)):
            found[f"issue {number}"] = (re.compile(rf"(?:#|issues?[ /]|pull/|PR ?#?){number}\b", re.I), False)
    return found


def scan(buggy: Path, patterns: dict[str, tuple[re.Pattern, bool]], limit: int = 20) -> list[Leak]:
    """Every (file, line) of the buggy tree where a needle occurs (at most `limit`)."""
    leaks: list[Leak] = []
    for path in sorted(p for p in buggy.rglob("*") if p.is_file() and ".git" not in p.parts):
        if path.stat().st_size > MAX_FILE:
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            for what, (pattern, prose_only) in patterns.items():
                if not (prose_only and path.suffix == ".py") and pattern.search(line):
                    leaks.append(Leak(str(path.relative_to(buggy)), number, what))
                    if len(leaks) >= limit:
                        return leaks
    return leaks


def check(buggy: Path, gold_patch: str, provenance: dict) -> list[Leak]:
    return scan(buggy, needles(gold_patch, buggy, provenance))
