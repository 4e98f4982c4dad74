"""Which text of a rendered Jinja chat template the template itself wrote.

A chat template mixes its own text (``']~b]user' ~ '\\n'``) with the conversation's
(``{{ message.content }}``), and transforms the latter (``content.split('</think>')``), so the
template cannot simply be rendered with placeholders in place of the content. Instead the text the
template writes is tagged where it is born and the tag travels with it:

- every string literal of the template source and every piece of its raw template data compiles to
  a ``Literal`` (a ``str`` subclass) through ``TracingCodeGenerator``;
- ``~``, ``+``, the output buffer of the template, its macros and ``{% set %}`` blocks join strings
  with ``join``, which keeps track of which spans came from literals;
- ``strip``, ``split``, slicing and a few more methods of a literal whose every character is the
  template's own (and with only such arguments) give literals again.

Everything else is the conversation's: values passed in, the output of filters (``tojson``,
``trim`` of a value, ...), ``str.format``, numbers. An operation this module does not know loses
the tag, which makes its text content: a marker in it is then encoded as ordinary text. That is the
safe way to be wrong: an unusual template may lose a control token, but no value from a request can
ever become one.
"""

from __future__ import annotations

from typing import Any, Iterable

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst

Parts = tuple[tuple[str, bool], ...]


class Literal(str):
    """A string with the spans the template wrote (``True``) and the rest (``False``)."""

    parts: Parts

    def __new__(cls, text: str, parts: Parts | None = None) -> "Literal":
        self = super().__new__(cls, text)
        self.parts = ((str.__str__(self), True),) if parts is None else parts
        return self

    @property
    def template_only(self) -> bool:
        return all(trusted for _, trusted in self.parts)

    def __str__(self) -> "Literal":  # keeps the tag through the str(...) of every template output
        return self

    def __add__(self, other: Any) -> Any:
        return join((self, other)) if isinstance(other, str) else NotImplemented

    def __radd__(self, other: Any) -> Any:
        return join((other, self)) if isinstance(other, str) else NotImplemented


def _from_template_only(name: str):
    base = getattr(str, name)

    def method(self: Literal, *args: Any, **kwargs: Any) -> Any:
        result = base(self, *args, **kwargs)
        if not self.template_only or not all(_is_template_only(a) for a in (*args, *kwargs.values())):
            return result
        if isinstance(result, str):
            return Literal(result)
        if isinstance(result, list):
            return [Literal(r) if isinstance(r, str) else r for r in result]
        return result

    method.__name__ = name
    return method


def _is_template_only(value: Any) -> bool:
    return not isinstance(value, str) or (isinstance(value, Literal) and value.template_only)


for _name in ("__getitem__", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "replace",
              "upper", "lower", "title", "capitalize", "removeprefix", "removesuffix"):
    setattr(Literal, _name, _from_template_only(_name))


def join(values: Iterable[Any]) -> str:
    """``"".join(map(str, values))`` that keeps the template's spans (a plain ``str`` when the result
    holds none of them)."""
    parts: list[tuple[str, bool]] = []
    for value in values:
        text = str(value)
        if isinstance(text, Literal):
            parts.extend(text.parts)
        elif text:
            parts.append((text, False))
    whole = "".join(text for text, _ in parts)
    if not any(trusted for _, trusted in parts):
        return whole
    return Literal(whole, tuple(parts))


def segments(rendered: str) -> Parts:
    """The ``(text, written_by_template)`` spans of a rendered template."""
    if isinstance(rendered, Literal):
        return rendered.parts
    return ((str(rendered), False),)


class TracingCodeGenerator(CodeGenerator):
    """Compiles string literals and template data to ``environment.literal(...)`` and ``~`` to
    ``environment.concat(...)``; the environment must provide both (see ``trace_environment``).
    Not for autoescaping environments."""

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        return f"environment.literal({''.join(map(str, group))!r})"

    def visit_Const(self, node: nodes.Const, frame: Frame) -> None:
        value = node.as_const(frame.eval_ctx)
        if isinstance(value, str):
            self.write(f"environment.literal({value!r})")
        else:
            super().visit_Const(node, frame)

    def visit_TemplateData(self, node: nodes.TemplateData, frame: Frame) -> None:
        self.write(f"environment.literal({node.data!r})")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def trace_environment(env: Any) -> Any:
    """Make ``env`` (a fresh, non-autoescaping environment) tag its templates' own text."""
    if env.autoescape:
        raise ValueError("tracing the template's text needs an environment without autoescaping")
    env.code_generator_class = TracingCodeGenerator
    env.literal = Literal
    env.concat = join
    return env
