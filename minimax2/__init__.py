"""minimax2: run MiniMax-M2 on your own machines, and measure it.

    from minimax2 import LLM, SamplingParams
"""

import os

__version__ = "0.1.0"

# OpenMP threads that finish a parallel region spin for the next one (libgomp: 300,000 turns, about a
# millisecond) before they sleep. On a machine where another process wants the core, that spinning
# takes the core's time from the thread doing the work: with one busy process beside it, decode on
# the 4-layer M2 slice fell from 20 to 6 tok/s. 2,000 turns keep a small model's back-to-back regions
# as fast as before and give 12 tok/s there (measured, README "Cores shared with other work"). libgomp
# reads this once, when torch is loaded, so it counts only when minimax2 is imported first (the CLI
# and the server do); an explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "2000")

__all__ = ["LLM", "SamplingParams", "__version__"]


def __getattr__(name):  # lazy, so `import minimax2` stays cheap for the CLI's --help
    if name == "LLM":
        from .engine.llm import LLM

        return LLM
    if name == "SamplingParams":
        from .engine.sampling_params import SamplingParams

        return SamplingParams
    raise AttributeError(f"module 'minimax2' has no attribute {name!r}")
