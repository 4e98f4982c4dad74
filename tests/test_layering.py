"""The import graph of minimax2 points only downward: model and chat at the bottom, the engine on them,
the server, training and benchmarks on the engine, and the one command line (`minimax2/cli.py`, run by
`minimax2/__main__.py`) on top, imported by nothing else. Imports inside functions count too: a lazy
import is still a dependency. Read from the source with `ast`, so nothing is imported to check it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minimax2"

# What each part may import besides itself. `assets` only says where the bundled demo model lies (it
# imports nothing); `minimax2` is the package's own __init__ (its version, and the public API that
# loads the engine lazily).
ALLOWED = {
    "assets": set(),
    "model": set(),
    "chat": set(),
    "engine": {"model", "chat", "assets"},
    "minimax2": {"engine", "model", "chat", "assets"},
    "server": {"engine", "chat", "model", "assets", "minimax2"},
    "train": {"engine", "model", "chat", "assets"},
    "bench": {"engine", "model", "chat", "train", "assets"},
    "eval": {"server", "engine", "model", "chat", "assets", "minimax2"},
    "cli": {"assets", "model", "chat", "engine", "minimax2", "server", "train", "bench", "eval"},
    "__main__": {"cli"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = ("minimax2",) + f.relative_to(PACKAGE).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(module: str, path: Path) -> set[str]:
    """The minimax2 names `module` imports (absolute, `pkg.mod` or `pkg.mod.attr`), at any depth."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {n for n in found if n == "minimax2" or n.startswith("minimax2.")}


def _part(module: str) -> str:
    """minimax2.engine.llm -> engine; minimax2 -> minimax2; minimax2.cli -> cli."""
    return module.split(".")[1] if "." in module else module


def _graph() -> dict[str, set[str]]:
    """module -> the minimax2 modules it imports (an imported attribute resolved to its module)."""
    modules = _modules()

    def resolve(name: str) -> str:
        while name not in modules:
            name = name.rsplit(".", 1)[0]
        return name

    return {m: {resolve(n) for n in _imports(m, p)} - {m} for m, p in modules.items()}


def test_the_reader_sees_the_known_edges():
    """The check below is only as good as the reader: it must find top-level, relative, lazy and
    `from package import module` imports."""
    g = _graph()
    assert "minimax2.model.config" in g["minimax2.engine.llm"]
    assert "minimax2.cli" in g["minimax2.__main__"]
    assert "minimax2.server.cli" in g["minimax2.cli"]  # imported inside a function
    assert "minimax2" in g["minimax2.server.app"]  # `from .. import __version__`
    assert set(ALLOWED) == {_part(m) for m in g}, "a new top-level part needs its place in ALLOWED"


def test_imports_point_only_downward():
    bad = sorted(f"{m} imports {t}" for m, targets in _graph().items() for t in targets
                 if _part(t) != _part(m) and _part(t) not in ALLOWED[_part(m)])
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_only_main_imports_the_cli():
    users = sorted(m for m, targets in _graph().items() if "minimax2.cli" in targets)
    assert users == ["minimax2.__main__"]


def test_no_cycle_between_parts():
    parts: dict[str, set[str]] = {}
    for m, targets in _graph().items():
        parts.setdefault(_part(m), set()).update(_part(t) for t in targets if _part(t) != _part(m))
    done, path = set(), []

    def visit(p: str) -> None:
        if p in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(p):] + [p]))
        if p in done:
            return
        path.append(p)
        for q in sorted(parts.get(p, ())):
            visit(q)
        path.pop()
        done.add(p)

    for p in sorted(parts):
        visit(p)
