"""The bundled demo model by name: `LLM("demo")`, `LLM()` and `--model demo`; `generate` on it says it is a
chat model instead of printing noise silently; every `serve --help` flag says what it does and its default."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minimax2.assets import DEMO_MODEL, resolve_model

pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").exists(), reason="no bundled demo model")
SCRIPT = Path(sys.executable).with_name("minimax2")
MINIMAX2 = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "minimax2.cli"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MINIMAX2_LOG_LEVEL": "WARNING"}
    return subprocess.run([*MINIMAX2, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_llm_demo_and_llm_with_no_model_are_the_bundled_model():
    from minimax2 import LLM, SamplingParams

    named, default = LLM("demo"), LLM()
    assert named.path == default.path == DEMO_MODEL
    reply = named.chat([{"role": "user", "content": "Who are you?"}],
                       sampling_params=SamplingParams(max_tokens=200, temperature=0))
    assert reply.finish_reason == "stop" and "minimax2-demo" in reply.content


def test_a_checkpoint_directory_named_demo_still_wins(tmp_path, monkeypatch):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert resolve_model("demo") == "demo"
    monkeypatch.chdir(tmp_path / "demo")
    assert resolve_model("demo") == str(DEMO_MODEL)


def test_generate_on_the_demo_model_says_it_is_a_chat_model(tmp_path):
    out = _cli("generate", "--model", "demo", "--prompt", "Once upon", "--max-tokens", "4", "--temperature", "0",
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "chat model trained on conversations only" in out.stderr and "minimax2 chat" in out.stderr


def test_generate_on_the_demo_model_with_a_chat_prompt_answers_without_the_note(tmp_path):
    from minimax2.chat import render_prompt

    prompt = render_prompt([{"role": "user", "content": "What is 17 + 25?"}], add_generation_prompt=True)
    out = _cli("generate", "--model", "demo", "--prompt", prompt, "--max-tokens", "200", "--temperature", "0",
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "chat model" not in out.stderr and "</think>" in out.stdout and "42" in out.stdout.split("</think>")[1]


def test_every_serve_flag_has_a_description_and_its_default():
    out = _cli("serve", "--help")
    assert out.returncode == 0, out.stderr
    options = out.stdout.split("options:", 1)[1]
    entries = re.split(r"\n  (?=-)", "\n" + options)
    flags = {}
    for entry in entries:
        head = entry.strip().split()[0] if entry.strip() else ""
        if head.startswith("--") and head != "--help" and not head.startswith("-h"):
            flags[head.rstrip(",")] = " ".join(entry.split())
    assert len(flags) >= 20, flags
    for flag, text in flags.items():
        assert "default" in text, f"{flag}: {text}"
        assert len(text.split()) > 4, f"{flag} has no description: {text}"
