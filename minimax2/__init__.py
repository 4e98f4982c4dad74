"""minimax2: run MiniMax-M2 on your own machines, and measure it.

    from minimax2 import LLM, SamplingParams
"""

__version__ = "0.1.0"

__all__ = ["LLM", "SamplingParams", "__version__"]


def __getattr__(name):  # lazy, so `import minimax2` stays cheap for the CLI's --help
    if name == "LLM":
        from .engine.llm import LLM

        return LLM
    if name == "SamplingParams":
        from .engine.sampling_params import SamplingParams

        return SamplingParams
    raise AttributeError(f"module 'minimax2' has no attribute {name!r}")
