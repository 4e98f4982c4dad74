"""The command line's answers to wrong arguments, from a newcomer's first session (2026-12-05 review):
each is one line naming the argument and what would do, never a traceback, and a busy port is found
before the model loads. Real subprocesses of `python -m minimax2`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest


def minimax2(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minimax2", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args,message", [
    (["serve", "--port", "99999"], "argument --port: a port is 0-65535, got 99999"),
    (["generate", "--device", "foo", "-p", "hi"], "argument --device: 'foo': choose cpu, cuda, cuda:N or auto"),
    (["generate", "--threads", "0", "-p", "hi"], "argument --threads: must be at least 1, got 0"),
    (["generate", "--max-model-len", "0", "-p", "hi"], "argument --max-model-len: must be at least 1, got 0"),
    (["chat", "--kv-cache-gb", "0"], "argument --kv-cache-gb: must be a number above 0, got 0"),
    (["serve", "--max-body-mb", "nan"], "argument --max-body-mb: must be a number above 0, got nan"),
])
def test_bad_values_are_usage_errors(args, message):
    r = minimax2(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_file_given_as_the_model_is_named_as_a_file(tmp_path):
    f = tmp_path / "README.md"
    f.write_text("not a checkpoint")
    r = minimax2("generate", "--model", str(f), "-p", "hi")
    assert r.returncode == 1 and f"checkpoint directory {f} is a file, not a directory" in r.stderr, r.stderr


def test_tools_file_that_is_not_a_list_of_tools(tmp_path):
    bad, obj = tmp_path / "tools.txt", tmp_path / "tools.json"
    bad.write_text("# tools\n")
    obj.write_text(json.dumps({"name": "f"}))
    r = minimax2("chat", "--tools", str(bad))
    assert r.returncode == 1 and f"--tools {bad} is not JSON" in r.stderr and "Traceback" not in r.stderr
    r = minimax2("chat", "--tools", str(obj))
    assert r.returncode == 1 and "holds a JSON dict, not a list" in r.stderr


def test_info_takes_demo_as_the_other_commands_do():
    r = minimax2("info", "--model", "demo")
    assert r.returncode == 0 and "parameters, total" in r.stdout, r.stderr


def test_a_busy_port_is_refused_before_the_model_loads(tiny_ckpt):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = minimax2("serve", "--model", str(tiny_ckpt), "--port", str(port))
    assert r.returncode == 1, r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "--port picks another" in r.stderr
    assert "serving" not in r.stderr and "KV cache" not in r.stderr  # nothing was loaded


def test_python_api_names_bad_devices_and_forms():
    from minimax2 import LLM

    with pytest.raises(ValueError, match="unknown device 'foo'; choose cpu, cuda, cuda:N or auto"):
        LLM("demo", device="foo")
    with pytest.raises(ValueError, match="choose bf16, fp8, int8, int4, or None"):
        LLM("demo", quantization="none")
