"""Rendering a checkpoint's own Jinja chat template the way ``transformers`` does.

The environment matches ``transformers``' ``apply_chat_template``:

- ``jinja2.sandbox.ImmutableSandboxedEnvironment`` (templates from the Hub are untrusted code) with
  ``trim_blocks=True`` and ``lstrip_blocks=True``;
- the ``jinja2.ext.loopcontrols`` extension (``{% break %}`` / ``{% continue %}``) and a
  ``{% generation %}...{% endgeneration %}`` tag that renders its body unchanged;
- a ``tojson`` filter that, unlike Jinja's own, keeps key order and non-ASCII characters by
  default, does no HTML escaping, and accepts ``ensure_ascii``, ``indent``, ``separators`` and
  ``sort_keys``;
- globals ``raise_exception(message)`` (raises ``ChatTemplateError``) and ``strftime_now(fmt)``.

Messages go through ``normalize_messages`` first, exactly as for the native renderer, so both
paths see the same input.

``render_chat_template_segments`` renders the same text as a ``Prompt`` whose structural segments
are exactly the text the template wrote itself (its literals and template data; see
``provenance.py``), so that markers spelled in messages, tools or keyword arguments stay text.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .prompt import Prompt
from .provenance import segments, trace_environment
from .markers import EMPTY_THINK_PREFILL
from .render import ChatTemplateError, normalize_messages, render_prompt, render_prompt_segments


def _tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    """JSON of ``value``: insertion order and non-ASCII kept unless asked otherwise."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _GenerationTag(jinja2.ext.Extension):
    """``{% generation %}body{% endgeneration %}``: renders ``body`` (transformers uses the tag to
    mark assistant tokens; parsing it keeps such templates loadable)."""

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller: Any) -> str:
        return caller()


def _make_environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTag, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = _make_environment()
_TRACING_ENV = trace_environment(_make_environment())


@lru_cache(maxsize=32)
def compile_chat_template(template: str, trace: bool = False) -> jinja2.Template:
    """Compile ``template`` once; later calls with the same string reuse the compiled template.
    ``trace``: compile it so that its output tells the template's own text apart."""
    try:
        return (_TRACING_ENV if trace else _ENV).from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ChatTemplateError(f"chat template has a syntax error on line {exc.lineno}: {exc.message}") from exc


def render_chat_template(
    template: str,
    messages: list[dict],
    tools: list[dict] | None = None,
    add_generation_prompt: bool = True,
    **kwargs: Any,
) -> str:
    """Render ``messages`` (normalised first) and ``tools`` with the Jinja ``template``.

    Extra ``kwargs`` (``model_identity``, ``bos_token``, ...) become template variables. Errors the
    template raises through ``raise_exception`` come out as ``ChatTemplateError``.
    """
    compiled = compile_chat_template(template)
    return compiled.render(
        messages=normalize_messages(messages),
        tools=tools,
        add_generation_prompt=add_generation_prompt,
        **kwargs,
    )


def render_chat_template_segments(
    template: str,
    messages: list[dict],
    tools: list[dict] | None = None,
    add_generation_prompt: bool = True,
    **kwargs: Any,
) -> Prompt:
    """``render_chat_template`` as a ``Prompt``: the text the template wrote is structural, all of
    ``messages``, ``tools`` and ``kwargs`` is content (whatever markers it spells)."""
    rendered = compile_chat_template(template, trace=True).render(
        messages=normalize_messages(messages),
        tools=tools,
        add_generation_prompt=add_generation_prompt,
        **kwargs,
    )
    return Prompt.of(segments(rendered))


def load_chat_template(checkpoint_dir: str | Path) -> str | None:
    """The chat template shipped with a checkpoint, or ``None`` when it has none.

    Looks at ``chat_template.jinja`` first, then the ``chat_template`` key of
    ``tokenizer_config.json``: a string, or a list of ``{"name", "template"}`` entries of which the
    one named ``default`` is taken.
    """
    directory = Path(checkpoint_dir)
    jinja_file = directory / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    config_file = directory / "tokenizer_config.json"
    if not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{config_file} is not valid JSON: {exc}") from exc
    template = config.get("chat_template") if isinstance(config, dict) else None
    if template is None or isinstance(template, str):
        return template
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        if isinstance(named.get("default"), str):
            return named["default"]
        raise ValueError(f"{config_file}: chat_template lists {sorted(map(str, named))} but no 'default'")
    raise ValueError(f"{config_file}: chat_template must be a string or a list, got {type(template).__name__}")


def thinking_enabled(template_kwargs: dict | None) -> bool:
    """Whether a chat asks for reasoning: all do unless ``enable_thinking`` is ``False`` (the
    ``chat_template_kwargs`` switch vLLM and SGLang clients send)."""
    return (template_kwargs or {}).get("enable_thinking", True) is not False


class Renderer:
    """The M2 prompt of a conversation, the one render path of `LLM.chat` and the server: the
    checkpoint's Jinja template if it has one (``template``), else the native renderer. Returns a
    `Prompt` (encode it with `Tokenizer.encode_prompt`, so markers spelled in messages stay text).
    ``thinking=False`` pre-fills an empty think block (``markers.EMPTY_THINK_PREFILL``): M2 cannot
    turn reasoning off, so the prompt closes it for the model."""

    def __init__(self, template: str | None):
        self.template = template

    def __call__(self, messages: list[dict], tools: list[dict] | None = None, *, thinking: bool = True,
                 add_generation_prompt: bool = True, **template_kwargs: Any) -> Prompt:
        if self.template is not None:
            prompt = render_chat_template_segments(self.template, messages, tools=tools,
                                                   add_generation_prompt=add_generation_prompt, **template_kwargs)
        else:
            prompt = render_prompt_segments(messages, tools=tools, add_generation_prompt=add_generation_prompt,
                                            **template_kwargs)
        return prompt if thinking or not add_generation_prompt else prompt + EMPTY_THINK_PREFILL

    def text(self, messages: list[dict], tools: list[dict] | None = None, *, add_generation_prompt: bool = True,
             **template_kwargs: Any) -> str:
        """The prompt as one string (no segments traced: for display and raw completion prompts)."""
        if self.template is not None:
            return render_chat_template(self.template, messages, tools=tools,
                                        add_generation_prompt=add_generation_prompt, **template_kwargs)
        return render_prompt(messages, tools=tools, add_generation_prompt=add_generation_prompt, **template_kwargs)
