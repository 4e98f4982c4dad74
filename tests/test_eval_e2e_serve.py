"""End to end against the project's own server (`minimax2 serve`, a tiny random checkpoint): the
smoke tier runs through both protocols and writes its report, and `bench serve` prints its table.
A random model solves nothing; this checks the plumbing, not the model."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from minimax2 import cli
from minimax2 import eval as eval_pkg

pytestmark = pytest.mark.slow
MAIN = "import sys; from minimax2.cli import main; sys.exit(main())"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    subprocess.run([sys.executable, "-c", MAIN, "init", "--out", str(root / "tiny")], check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", MAIN, "serve", "--model", str(root / "tiny"),
                             "--port", str(port), "--max-model-len", "4096"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "XDG_STATE_HOME": str(root / "state")})  # not the real home
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("minimax2 serve did not start")
            time.sleep(0.5)
    yield root, port
    proc.terminate()
    proc.wait(timeout=60)


def test_smoke_tier_against_minimax2_serve(server, monkeypatch, capsys):
    root, port = server
    monkeypatch.setenv("MINIMAX2_CACHE", str(root / "cache"))
    endpoints = root / "endpoints.toml"
    sampling = 'sampling = { temperature = 1.0, top_p = 0.95, top_k = 40, max_tokens = 48 }\n'
    endpoints.write_text(
        f'[[endpoint]]\nname = "ours"\nprotocol = "openai"\nbase_url = "http://127.0.0.1:{port}/v1"\n'
        f'model = "tiny"\nprice = "local"\n{sampling}'
        f'[[endpoint]]\nname = "ours-a"\nprotocol = "anthropic"\nbase_url = "http://127.0.0.1:{port}"\n'
        f'model = "tiny"\nprice = "local"\n{sampling}')
    assert cli.main(["eval", "build", "--tier", "smoke"]) == 0
    smoke_tasks = len(list((Path(eval_pkg.__file__).parent / "tasks").glob("smoke-*.toml")))
    for name in ("ours", "ours-a"):
        assert cli.main(["eval", "run", "--tier", "smoke", "--endpoint", name, "--endpoints", str(endpoints),
                         "--results", str(root / "results"), "--run-id", name, "--max-steps", "2"]) == 0
        summary = json.loads((root / "results" / name / "summary.json").read_text())
        assert summary["statuses"].get("agent_error", 0) == 0 and summary["resolved"]["n"] == smoke_tasks
        assert summary["latency"]["e2e"]["n"] >= smoke_tasks and summary["tokens"]["output"] > 0
        assert (root / "results" / name / "report.html").exists()
    endpoints.write_text(endpoints.read_text() + f'[[endpoint]]\nname = "wrong"\nprotocol = "openai"\n'
                         f'base_url = "http://127.0.0.1:{port}/v1"\nmodel = "MiniMax-M2"\nprice = "local"\n{sampling}')
    capsys.readouterr()
    assert cli.main(["eval", "run", "smoke-add", "--endpoint", "wrong", "--endpoints", str(endpoints),
                     "--results", str(root / "results"), "--run-id", "wrong", "--max-steps", "2"]) == 0
    out = capsys.readouterr().out  # the console says why the endpoint failed, not only the grade
    assert "smoke-add: agent_error - NotFoundError" in out and "MiniMax-M2" in out, out
    assert cli.main(["bench", "serve", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "tiny",
                     "--num-prompts", "6", "--max-concurrency", "3", "--output-len", "16"]) == 0
    assert "ttft_ms" in capsys.readouterr().out
