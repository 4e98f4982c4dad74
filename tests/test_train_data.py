"""Synthetic data: families, held-out split, loss masks, and the judge used for acceptance scores."""

from __future__ import annotations

import random
import re

import pytest
from tokenizers import Tokenizer

from minimax2.chat import markers as m
from minimax2.chat import render_prompt
from minimax2.train import arith
from minimax2.train.data import encode_conversations, flat_batch
from minimax2.train.evaluate import cases, judge
from minimax2.train.recipe import build_tokenizer, get_recipe
from minimax2.train.synthetic import FAMILIES, heldout_examples, make_example, training_example
from minimax2.train.tools_pool import TOOLS
from minimax2.train.values import pool


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return build_tokenizer(get_recipe("tiny"))


def test_tool_pool_covers_every_schema_type():
    assert len(TOOLS) >= 30 and len({t.name for t in TOOLS}) == len(TOOLS)
    kinds = {p.type for t in TOOLS for p in t.params.values()}
    assert kinds == {"string", "integer", "number", "boolean", "enum", "array"}
    for t in TOOLS:
        assert t.schema()["function"]["parameters"]["required"], t.name


@pytest.mark.parametrize("arith_case", [(347, "*", 86), (47, "-", 286), (999, "+", 1), (0, "*", 7), (500, "-", 499)])
def test_arithmetic_reasoning_ends_with_the_exact_result(arith_case):
    a, op, b = arith_case
    text = arith.reasoning(a, op, b)
    assert text.endswith(f"The result is {arith.apply(a, op, b)}.")


def test_examples_are_a_pure_function_of_seed_and_index():
    assert training_example(7, 123) == training_example(7, 123)
    assert training_example(7, 123) != training_example(8, 123)


def test_value_pools_split_without_overlap():
    for name in ("city", "person", "word"):
        train, held = set(pool(name, "train")), set(pool(name, "heldout"))
        assert train and held and not train & held


def _arg_values(ex) -> set:
    vals = set()
    for msg in ex.messages:
        for call in msg.get("tool_calls") or []:
            for v in call["function"]["arguments"].values():
                if isinstance(v, bool):
                    continue
                vals.update(map(str, v) if isinstance(v, list) else [str(v)])
    return vals


def test_heldout_argument_values_never_occur_in_training():
    enum_values = {str(x) for t in TOOLS for p in t.params.values() for x in (p.enum or [])}
    seen = set().union(*(_arg_values(training_example(0, i)) for i in range(3000)))
    held = set().union(*(_arg_values(ex) for f in ("tool", "parallel") for ex in heldout_examples(f, 300)))
    free = held - enum_values
    assert len(free) > 300
    # the calculator's expression and file names combine held-out parts; compare whole values
    assert not free & seen
    trained = {_problem(ex) for ex in (training_example(0, i) for i in range(3000)) if ex.family == "arithmetic"}
    held_out = {_problem(ex) for ex in heldout_examples("arithmetic", 300)}
    assert len(trained) > 500 and len(held_out) > 250 and not trained & held_out


def _problem(ex):
    content = ex.messages[1]["content"]
    a, op, b = content.split(" = ")[0].split()
    return int(a), op, int(b)


def test_recipe_tokenizer_spells_copied_values_and_keeps_template_words_whole(tok):
    """A value the model must copy (any pool name, seen or held out, any enum member) is spelled
    one byte per token, exactly as in the request; frequent template words are single tokens."""
    spelled = pool("city", "heldout") + pool("person", "train") + pool("word", "heldout") + ["fahrenheit", "USD"]
    for word in spelled:
        for text, value in ((word, word), (f" {word}.", word), (f'<parameter name="city">{word}</parameter>', word),
                            (f"/home/{word.lower()}", word.lower())):
            enc = tok.encode(text)
            assert tok.decode(enc.ids) == text
            start = text.index(value)
            pieces = [text[i:j] for i, j in enc.offsets if i >= start and j <= start + len(value)]
            assert pieces == list(value), (text, enc.tokens)
    for word in ("user", "tool", "weather", "parameter", "name"):
        assert len(tok.encode(word).ids) == 1, word
    for text in (training_example(0, i) for i in range(50)):
        rendered = render_prompt(text.messages, text.tools)
        assert tok.decode(tok.encode(rendered).ids, skip_special_tokens=False) == rendered


def test_loss_mask_is_exactly_what_the_model_generates(tok):
    for family in FAMILIES:
        ex = make_example(family, random.Random(11))
        enc = encode_conversations(tok, [(ex.messages, ex.tools)])[0]
        want = []
        for k, msg in enumerate(ex.messages):
            if msg["role"] == "assistant":
                prompt = render_prompt(ex.messages[:k], tools=ex.tools)
                full = render_prompt(ex.messages[: k + 1], tools=ex.tools, add_generation_prompt=False)
                want.append(full[len(prompt):].rstrip("\n"))
                assert want[-1].endswith(m.END_OF_MESSAGE) and m.THINK_END in want[-1]
                # the inference prompt tokenizes to a prefix of the training sequence
                ids = tok.encode(prompt, add_special_tokens=False).ids
                assert enc.ids[: len(ids)] == ids and enc.targets[len(ids)] and not enc.targets[len(ids) - 1]
        got = tok.decode([i for i, t in zip(enc.ids, enc.targets) if t], skip_special_tokens=False)
        assert got == "".join(want), family


def test_flat_batch_keeps_sequences_apart_and_labels_only_targets(tok):
    encs = encode_conversations(tok, [(e.messages, e.tools) for e in (training_example(0, i) for i in range(5))])
    flat = flat_batch(encs)
    assert flat.meta.cu_seqlens_q[-1] == flat.num_tokens == sum(len(e.ids) - 1 for e in encs)
    assert flat.positions.tolist() == [p for e in encs for p in range(len(e.ids) - 1)]
    assert int((flat.labels >= 0).sum()) == sum(e.num_targets for e in encs) - sum(e.targets[0] for e in encs)


@pytest.mark.parametrize("family", ["arithmetic", "tool", "parallel", "answer", "no_tool"])
def test_judge_accepts_the_reference_reply_and_rejects_a_wrong_one(family):
    for ex, msgs in cases(family, 20):
        reply_msg = ex.messages[len(msgs)]
        full = render_prompt(ex.messages[: len(msgs) + 1], tools=ex.tools, add_generation_prompt=False)
        reference = full[len(render_prompt(msgs, tools=ex.tools)):].split(m.END_OF_MESSAGE)[0]
        assert judge(family, ex, reference), reference
        assert reply_msg["role"] == "assistant"
        if family == "no_tool":
            wrong = reference + '\n<minimax:tool_call>\n<invoke name="get_time">\n</invoke>\n</minimax:tool_call>'
        elif family in ("tool", "parallel"):
            wrong = re.sub(r'(<parameter name="[^"]+">)[^<]*', r"\1Xq9", reference, count=1)
        else:
            wrong = "I do not know.</think>\n\nNo idea."
        assert not judge(family, ex, wrong), wrong
