"""From request fields to `SamplingParams`, with the model card's defaults and the context limits."""

from __future__ import annotations

from ..engine.sampling_params import SamplingParams
from .errors import APIError

MODEL_CARD = {"temperature": 1.0, "top_p": 0.95, "top_k": 40}


def _pick(value, default):
    return default if value is None else value


def check_prompt(prompt_tokens: int, max_model_len: int, param: str = "messages") -> None:
    if prompt_tokens >= max_model_len:
        raise APIError(400, f"the prompt has {prompt_tokens} tokens but the model's context is {max_model_len} "
                            f"tokens (at least one must be left to generate); shorten the {param}",
                       param=param, code="context_length_exceeded")


def check_prompt_chars(chars: int, limit: int, max_model_len: int, param: str = "messages") -> None:
    """The cheap bound, before tokenizing: `limit` characters cannot fit in the context whatever they
    encode to (see `ModelService.max_prompt_chars`)."""
    if chars > limit:
        raise APIError(400, f"the prompt has {chars} characters, more than a {max_model_len}-token context can "
                            f"hold; shorten the {param}", param=param, code="context_length_exceeded")


def max_new_tokens(requested: int | None, prompt_tokens: int, max_model_len: int, clip: bool) -> int:
    """`requested` (None: all the room left). Too many: clipped (`clip`) or a 400 stating the numbers."""
    check_prompt(prompt_tokens, max_model_len)
    room = max_model_len - prompt_tokens
    if requested is None or (clip and requested > room):
        return room
    if requested > room:
        raise APIError(400, f"this model's context is {max_model_len} tokens; the prompt has {prompt_tokens} tokens "
                            f"and {requested} more were requested ({prompt_tokens + requested} > {max_model_len}); "
                            f"lower max_tokens", param="max_tokens", code="context_length_exceeded")
    return requested


def sampling_params(req, max_tokens: int, *, stop: list[str] | None = None, logprobs: int | None = None,
                    n: int = 1, processors=None) -> SamplingParams:
    """`req` carries temperature/top_p/top_k/min_p/penalties/seed (absent ones default to the model card)."""
    get = lambda name: getattr(req, name, None)  # noqa: E731
    try:
        return SamplingParams(
            max_tokens=max_tokens, temperature=_pick(get("temperature"), MODEL_CARD["temperature"]),
            top_p=_pick(get("top_p"), MODEL_CARD["top_p"]), top_k=_pick(get("top_k"), MODEL_CARD["top_k"]),
            min_p=_pick(get("min_p"), 0.0), repetition_penalty=_pick(get("repetition_penalty"), 1.0),
            presence_penalty=_pick(get("presence_penalty"), 0.0), frequency_penalty=_pick(get("frequency_penalty"), 0.0),
            seed=get("seed"), stop=list(stop or []), logprobs=logprobs, n=n, logits_processors=list(processors or []),
            ignore_eos=bool(get("ignore_eos")), stop_token_ids=_token_ids(get("stop_token_ids")))
    except ValueError as e:  # "<field> must ...": the field is the param
        raise APIError(400, str(e), param=str(e).split(" ", 1)[0]) from e


def _token_ids(value) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise APIError(400, "stop_token_ids must be a list of integers", param="stop_token_ids")
    return value


def stop_list(stop) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)
