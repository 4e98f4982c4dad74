"""Files shipped inside the package: the demo checkpoint (M2 architecture and format, trained here on
synthetic data, not MiniMax's weights), used when a command is given no --model or `--model demo`
(`LLM("demo")` in Python)."""

from __future__ import annotations

from pathlib import Path

DEMO_MODEL = Path(__file__).parent / "demo"


DEMO_NAME = "demo"


def resolve_model(path: str | Path | None) -> str:
    """The model a user named: a checkpoint directory; "demo" (or nothing) for the bundled demo model, unless
    a directory ./demo holding a checkpoint is there."""
    if path and not (str(path) == DEMO_NAME and not (Path(path) / "config.json").exists()):
        return str(path)
    if (DEMO_MODEL / "config.json").exists():
        return str(DEMO_MODEL)
    raise ValueError("this install has no bundled demo model; pass a checkpoint directory "
                     "(a random one: `minimax2 init --out DIR`)")
