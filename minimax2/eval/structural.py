"""AST checks that confirm a requested refactoring, e.g. "module.py: function `f` exists and the
method `C.m` calls it". Each check is a TOML table with `kind`, `file` and kind-specific fields:

- defines:   name (dotted within the module: "func", "Class", "Class.method") must be defined
- absent:    name must not be defined
- calls:     name's body calls `callee` (a bare name or attribute name)
- not_calls: name's body does not call `callee`
- max_lines: name's definition spans at most `lines` source lines
"""
from __future__ import annotations

import ast
from pathlib import Path


def _definitions(tree: ast.AST, prefix: str = "") -> dict[str, ast.AST]:
    found = {}
    for node in getattr(tree, "body", []):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = prefix + node.name
            found[name] = node
            if isinstance(node, ast.ClassDef):
                found.update(_definitions(node, name + "."))
    return found


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
    return names


def check(repo: Path, spec: dict) -> str | None:
    """None when the check holds, else a short reason."""
    path = repo / spec["file"]
    # read as the harness's user, from a tree the agent's patch shaped: a file turned into a link (to
    # /dev/zero, or to a file only that user may read) is refused, and a parse error says no more than that
    if any(p.is_symlink() for p in (path, *path.parents) if repo in p.parents or p == path) or not path.is_file():
        return f"{spec['file']} is not a regular file of the tree"
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as exc:
        return f"{spec['file']}: syntax error at line {exc.lineno}"
    except (OSError, ValueError) as exc:
        return f"{spec['file']}: cannot be read ({type(exc).__name__})"
    defs = _definitions(tree)
    kind, name = spec["kind"], spec["name"]
    node = defs.get(name)
    if kind == "absent":
        return f"{name} is still defined" if node is not None else None
    if node is None:
        return f"{name} is not defined in {spec['file']}"
    if kind == "defines":
        return None
    if kind == "calls":
        return None if spec["callee"] in _called_names(node) else f"{name} does not call {spec['callee']}"
    if kind == "not_calls":
        return f"{name} still calls {spec['callee']}" if spec["callee"] in _called_names(node) else None
    if kind == "max_lines":
        span = node.end_lineno - node.lineno + 1
        return None if span <= spec["lines"] else f"{name} spans {span} lines > {spec['lines']}"
    raise ValueError(f"unknown structural check kind {kind!r}")


def failed_checks(repo: Path, specs: list[dict]) -> list[str]:
    return [reason for spec in specs if (reason := check(repo, spec))]
