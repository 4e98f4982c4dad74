"""Files shipped inside the package: the demo checkpoint (M2 architecture and format, trained here on
synthetic data, not MiniMax's weights), used when a command is given no --model."""

from __future__ import annotations

from pathlib import Path

DEMO_MODEL = Path(__file__).parent / "demo"


def resolve_model(path: str | None) -> str:
    """The --model a user gave, or the bundled demo model."""
    if path:
        return path
    if (DEMO_MODEL / "config.json").exists():
        return str(DEMO_MODEL)
    raise ValueError("no --model given and this install has no bundled demo model; pass --model DIR "
                     "(a random one: `minimax2 init --out DIR`)")
