"""Hunks between two versions of a file, selective reverse application, and unified diffs.

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
