"""Conversation, thinking-disabled and JSON families (dialog.py, json_answers.py): what is trained,
how it is judged, that held-out problems stay out of training, that JSON answers are exactly what
the server's json_schema grammar allows, and continuing a recipe from a checkpoint."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer as HFTokenizer

from minimax2.chat import markers as m
from minimax2.chat import render_prompt
from minimax2.chat.tokenizer import Tokenizer
from minimax2.train.data import encode_conversations
from minimax2.train.dialog import FOLLOW_ASKS
from minimax2.train.evaluate import cases, judge
from minimax2.train.recipe import CHAT_MIX, build_model, build_tokenizer, export, get_recipe, prepare
from minimax2.train.synthetic import heldout_examples, make_example, training_example

DEMO = Path(__file__).resolve().parents[1] / "minimax2" / "assets" / "demo"
NEW = ("followup", "noreason", "nothink", "json")


@pytest.fixture(scope="module")
def tok():
    """The bundled tokenizer as training uses it (the `tokenizers` object)."""
    return HFTokenizer.from_file(str(DEMO / "tokenizer.json"))


def _reference(ex, msgs) -> tuple[str, str]:
    """(inference prompt, the reply the model is trained to generate after it, `[e~[` included)."""
    prompt = render_prompt(msgs, tools=ex.tools) + ex.prefill
    last = render_prompt(ex.messages[: len(msgs) + 1], tools=ex.tools, add_generation_prompt=False)
    if ex.prefill:  # rendered history has no think block; the reply follows the pre-filled one
        reply = last[len(render_prompt(msgs, tools=ex.tools, add_generation_prompt=False)) + len("]~b]ai\n"):]
    else:
        reply = last[len(prompt):]
    return prompt, reply[: reply.index(m.END_OF_MESSAGE) + len(m.END_OF_MESSAGE)]


@pytest.mark.parametrize("family", NEW)
def test_only_replies_to_the_last_request_are_trained(tok, family):
    """Earlier turns are history; after the last user message every reply the model generates counts
    (a tool call and the answer after its result), except a call sent back without its reasoning."""
    for seed in range(12):
        ex = make_example(family, random.Random(seed))
        last_user = max(k for k, msg in enumerate(ex.messages) if msg["role"] == "user")
        trained = [k for k in range(last_user + 1, len(ex.messages))
                   if ex.messages[k]["role"] == "assistant" and (ex.prefill or ex.messages[k].get("reasoning_content"))]
        if ex.prefill:
            trained = trained[-1:]
        enc = encode_conversations(tok, [ex.conversation()])[0]
        want = []
        for n, k in enumerate(trained):
            prompt, reply = _reference(ex, ex.messages[:k])
            ids = tok.encode(prompt, add_special_tokens=False).ids
            assert enc.ids[: len(ids)] == ids, "the inference prompt is a prefix of the training sequence"
            assert enc.targets[len(ids)] and (n > 0 or not any(enc.targets[: len(ids)]))
            want.append(reply)
            if family == "nothink":
                assert prompt.endswith(m.GENERATION_PROMPT + m.EMPTY_THINK_PREFILL) and m.THINK_END not in reply
            else:
                assert m.THINK_END in reply
        assert tok.decode([i for i, t in zip(enc.ids, enc.targets) if t], skip_special_tokens=False) == "".join(want)
        if family == "noreason":
            assert len(trained) == 1 and trained[0] == len(ex.messages) - 1


def test_history_keeps_tool_calls_and_drops_reasoning_as_clients_send_it():
    exs = [training_example(0, i, CHAT_MIX) for i in range(600)]
    followups = [e for e in exs if e.family == "followup"]
    assert sum(sum(msg["role"] == "user" for msg in e.messages) >= 3 for e in followups) > 20
    assert any(msg.get("tool_calls") for e in followups for msg in e.messages[:-2])
    history = [msg for e in followups for msg in e.messages[:-1] if msg["role"] == "assistant"]
    assert 0.3 < sum("reasoning_content" in msg for msg in history) / len(history) < 0.7
    asks = {a.split("{")[0] for op in FOLLOW_ASKS.values() for a in op}
    assert any(e.messages[-2]["content"].startswith(tuple(asks)) for e in followups)
    assert all("reasoning_content" not in e.messages[1] for e in exs if e.family == "noreason")


def _followup_problem(ex) -> tuple[int, str, int]:
    a, op, b = ex.messages[-1]["content"].split(" = ")[0].split()
    return int(a), op, int(b)


def test_heldout_followups_never_occur_in_training():
    trained = {_followup_problem(e) for e in (training_example(0, i, CHAT_MIX) for i in range(3000))
               if e.family == "followup" and e.expected["kind"] == "follow"}
    held = {_followup_problem(e) for e in heldout_examples("followup", 300)}
    assert len(trained) > 200 and len(held) > 250 and not trained & held


@pytest.mark.parametrize("family", NEW)
def test_judge_accepts_the_reference_and_rejects_the_failures_seen(family):
    for ex, msgs in cases(family, 30):
        _, reply = _reference(ex, msgs)
        assert judge(family, ex, reply), reply
        body = reply[: -len(m.END_OF_MESSAGE)]
        if family == "followup":
            wrong = body.rsplit("= ", 1)[0] + f"= {ex.expected['answer'] + 1}"
        elif family == "noreason":  # the answer given twice
            answer = body.split(m.THINK_END)[1]
            wrong = body + answer
        elif family == "nothink":  # it reasoned anyway and closed a think block in the text
            wrong = "The user asks something.\n" + m.THINK_END + "\n\n" + body
        else:  # never closed
            wrong = body[:-1] + ',"'
        assert not judge(family, ex, wrong), wrong


def test_json_answers_are_what_the_response_format_grammar_allows():
    try:
        from minimax2.chat.grammar import GrammarFactory
    except ImportError:
        from minimax2.server.grammar import GrammarFactory
    pytest.importorskip("llguidance")
    import llguidance

    tok = Tokenizer(DEMO)  # what the server builds its grammars with
    factory = GrammarFactory(tok, (DEMO / "tokenizer.json").read_text(), tok.vocab_size, [tok.eos_token_id])
    exs = [make_example("json", random.Random(s)) for s in range(20)] + heldout_examples("json", 20)
    exs += [e for e in heldout_examples("nothink", 200) if e.expected["kind"] == "json"][:10]
    for ex in exs:
        _, reply = _reference(ex, ex.messages[:-1])
        matcher = llguidance.LLMatcher(factory.ll, llguidance.LLMatcher.grammar_from_lark(
            factory.json_grammar(ex.expected["schema"], not ex.prefill)))
        for i in tok.encode(reply):
            assert matcher.consume_token(i), (reply, matcher.get_error())
        assert matcher.is_stopped() or matcher.is_accepting(), reply
        assert json.loads(reply.split(m.THINK_END)[-1].strip()[: -len(m.END_OF_MESSAGE)]) == ex.expected["object"]


def test_a_recipe_continues_from_a_checkpoint(tmp_path):
    r = get_recipe("tiny")
    tok = build_tokenizer(r)
    model = build_model(r, tok)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)  # not what a fresh model starts from
    export(model, tok, tmp_path / "start")
    tok2, model2 = prepare(get_recipe("tiny", init_from=tmp_path / "start"), tmp_path / "run", resume=False)
    assert tok2.get_vocab() == tok.get_vocab() and (tmp_path / "run" / "tokenizer.json").exists()
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a.to(torch.bfloat16).float(), b) or torch.equal(a, b), name
    with pytest.raises(FileNotFoundError):
        prepare(get_recipe("tiny", init_from=tmp_path / "missing"), tmp_path / "run2", resume=False)
