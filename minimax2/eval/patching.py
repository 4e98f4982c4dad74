"""Hunks between two versions of a file, selective reverse application, unified diffs, and a diff
split back into its files (`split_patch`).

A hunk is one group of difflib opcodes (3 lines of context), numbered from 0 in file order.
Reverse-applying a hunk to the new text restores the old lines of that hunk only, which is how
the buggy tree is made from the fixed release: the other changes of the release stay in place.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

CONTEXT = 3


@dataclass(frozen=True)
class Hunk:
    index: int
    opcodes: tuple  # ((tag, i1, i2, j1, j2), ...) from SequenceMatcher(old, new)
    text: str  # the hunk in unified form, for selectors and humans


def split_lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def file_hunks(old: str, new: str) -> list[Hunk]:
    a, b = split_lines(old), split_lines(new)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    hunks = []
    for index, group in enumerate(matcher.get_grouped_opcodes(CONTEXT)):
        lines = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [" " + line for line in a[i1:i2]]
                continue
            lines += ["-" + line for line in a[i1:i2]]
            lines += ["+" + line for line in b[j1:j2]]
        hunks.append(Hunk(index, tuple(group), "".join(lines)))
    return hunks


def select_hunks(hunks: list[Hunk], selector) -> list[Hunk]:
    """`selector` is "all", a list of hunk indices, or a dict {"matching": regex, "excluding": regex}."""
    if selector == "all":
        return list(hunks)
    if isinstance(selector, list):
        known = {h.index for h in hunks}
        missing = [i for i in selector if i not in known]
        if missing:
            raise ValueError(f"hunk indices {missing} not in 0..{len(hunks) - 1}")
        return [h for h in hunks if h.index in selector]
    if isinstance(selector, dict):
        keep = list(hunks)
        if "matching" in selector:
            keep = [h for h in keep if re.search(selector["matching"], h.text)]
        if "excluding" in selector:
            keep = [h for h in keep if not re.search(selector["excluding"], h.text)]
        if not keep:
            raise ValueError(f"selector {selector!r} matched no hunk")
        return keep
    raise ValueError(f"bad hunk selector {selector!r}")


def reverse_apply(old: str, new: str, selected: list[Hunk]) -> str:
    """The new text with the selected hunks turned back into the old text."""
    a, b = split_lines(old), split_lines(new)
    out = list(b)
    edits = [op for h in selected for op in h.opcodes if op[0] != "equal"]
    for _tag, i1, i2, j1, j2 in sorted(edits, key=lambda op: op[3], reverse=True):
        out[j1:j2] = a[i1:i2]
    return "".join(out)


def unified_diff(old: str, new: str, path: str, old_exists: bool = True, new_exists: bool = True) -> str:
    """A git-style unified diff of one file (empty when equal); a missing side means creation or
    deletion."""
    if old == new and old_exists == new_exists:
        return ""
    a, b = split_lines(old), split_lines(new)
    for lines in (a, b):
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n\\ No newline at end of file\n"
    head = f"diff --git a/{path} b/{path}\n"
    if not old_exists:
        head += "new file mode 100644\n"
    elif not new_exists:
        head += "deleted file mode 100644\n"
    before = f"a/{path}" if old_exists else "/dev/null"
    after = f"b/{path}" if new_exists else "/dev/null"
    body = "".join(difflib.unified_diff(a, b, before, after, n=CONTEXT))
    return head + body


def _unquote(text: str) -> str:
    """A path as git quotes it ("a/x\\ty"): C escapes, octal bytes in UTF-8."""
    raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), text.encode("latin-1", "backslashreplace"))
    return raw.decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def patch_path(header: str) -> str | None:
    """The path of one `diff --git a/P b/P` header (the harness diffs without rename detection, so both
    halves name the same file). Spaces are not quoted by git: the halves are split by length."""
    rest = header[len("diff --git "):]
    if rest.startswith('"'):
        m = re.match(r'"a/((?:[^"\\]|\\.)*)" "b/((?:[^"\\]|\\.)*)"$', rest)
        return _unquote(m.group(2)) if m else None
    n = (len(rest) - 5) // 2
    path = rest[2:2 + n]
    return path if rest == f"a/{path} b/{path}" else None


def _side_path(line: str) -> str | None:
    """The path of a `--- a/P` / `+++ b/P` line (None for /dev/null); a tab ends it (a timestamp)."""
    name = line[4:].split("\t", 1)[0].rstrip("\n")
    if name == "/dev/null":
        return None
    name = _unquote(name[1:-1]) if name.startswith('"') and name.endswith('"') else name
    return name[2:] if name[:2] in ("a/", "b/") else name


def split_patch(patch: str) -> dict[str, str]:
    """{path: that file's part of a diff}, for git diffs and plain unified diffs (`--- a/P` then
    `+++ b/P`, as task records spell gold patches). A git part whose path cannot be read is kept under
    its header line, so no filter below mistakes it for an ordinary file."""
    lines = patch.splitlines(keepends=True)
    starts = []
    for i, line in enumerate(lines):
        if line.startswith("diff --git "):
            starts.append(i)
        elif (line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")
              and not (starts and lines[starts[-1]].startswith("diff --git ")
                       and not any(x.startswith("@@") for x in lines[starts[-1]:i]))):
            starts.append(i)  # a plain unified diff's next file (not the ---/+++ of a git part's header)
    parts: dict[str, str] = {}
    for begin, end in zip(starts, [*starts[1:], len(lines)]):
        chunk = lines[begin:end]
        sides = [_side_path(x) for x in chunk if x.startswith(("--- ", "+++ "))][:2]
        path = next((p for p in reversed(sides) if p), None)
        if chunk[0].startswith("diff --git "):
            path = patch_path(chunk[0].rstrip("\n")) or path or chunk[0].rstrip("\n")
        parts[path or "".join(chunk[:1])] = "".join(chunk)
    return parts
