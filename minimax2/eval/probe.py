"""The add_tests grader's probe: a copy of the buggy tree that behaves the same but differs in its
bytes, so that tests which only notice that the source changed (a hash of a file, or of
`inspect.getsource` of a function) are told apart from tests of behaviour (grading.py)."""
from __future__ import annotations

import ast
import re
import secrets
from pathlib import Path
from typing import Callable

# add_tests: a third run on a tree as buggy as the first but not byte-identical: every module of the
# tree gets a line at its end, and every function and class body a no-op statement (a random number)
# first. Tests that fail there too test behaviour; tests that pass there only noticed that the source
# (of a file, a class, a function) changed.
PROBE = "\n{name} = None\n"


def probe_tree(repo: Path, is_test: Callable[[str], bool]) -> None:
    """Probe every Python file of the tree but its tests (`is_test` of its path relative to the tree)."""
    name, token = f"_probe_{secrets.token_hex(4)}", str(secrets.randbelow(1 << 40) + (1 << 40))
    for path in sorted(repo.rglob("*.py")):
        rel = path.relative_to(repo).as_posix()
        if path.is_symlink() or not path.is_file() or ".git" in path.parts or is_test(rel):
            continue
        path.write_text(probed(path.read_text(errors="surrogateescape"), name, token), errors="surrogateescape")


def probed(text: str, name: str, token: str) -> str:
    """`text` with `token` as the first statement of every function and class body whose body starts
    on a line of its own (after a docstring), and PROBE at the end; unchanged where it would not compile."""
    tail = PROBE.format(name=name)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return text + tail
    lines = (text if text.endswith("\n") else text + "\n").splitlines(keepends=True)
    at = {}  # line index -> indentation of the statement inserted before it
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or not node.body:
            continue
        first = node.body[0]
        doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
        if doc:
            where = first.end_lineno  # the line after the docstring
        else:
            where = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", []))]) - 1
        if first.lineno == node.lineno:
            continue  # `def f(): return 1`
        indent = re.match(r"[ \t]*", lines[first.lineno - 1]).group()
        at[where] = indent
    for index in sorted(at, reverse=True):
        lines.insert(index, f"{at[index]}{token}\n")
    out = "".join(lines) + tail
    try:
        compile(out, "<probed>", "exec")
    except (SyntaxError, ValueError):
        return text + tail
    return out
