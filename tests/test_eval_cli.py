"""The eval CLI end to end on the smoke tier against the scripted endpoint (both protocols),
plus build/run/report/compare wiring and --help."""
import json
import subprocess
import sys

import pytest

from minimax2 import cli
from eval_support.fake_m2 import FakeM2
from eval_support.scripts import SMOKE_ADD


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "minimax2", "eval", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    for word in ("build", "run", "report", "compare"):
        assert word in out.stdout
    out = subprocess.run([sys.executable, "-m", "minimax2", "bench", "serve", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "--request-rate" in out.stdout


def test_smoke_tier_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMAX2_CACHE", str(tmp_path / "cache"))
    assert cli.main(["eval", "build", "--tier", "smoke"]) == 0
    with FakeM2(SMOKE_ADD) as fake:
        (tmp_path / "endpoints.toml").write_text(
            f'[[endpoint]]\nname = "fake"\nprotocol = "openai"\nbase_url = "{fake.base_url}/v1"\n'
            f'model = "MiniMax-M2"\nprice = "minimax-m2"\n'
            f'[[endpoint]]\nname = "fake-a"\nprotocol = "anthropic"\nbase_url = "{fake.base_url}"\n'
            f'model = "MiniMax-M2"\nprice = "minimax-m2"\n')
        for name in ("fake", "fake-a"):
            code = cli.main(["eval", "run", "smoke-add", "--endpoint", name, "--endpoints",
                             str(tmp_path / "endpoints.toml"), "--results", str(tmp_path / "results"),
                             "--run-id", name, "--workers", "2"])
            assert code == 0
    for name in ("fake", "fake-a"):
        run = tmp_path / "results" / name
        summary = json.loads((run / "summary.json").read_text())
        assert summary["resolved"]["resolved"] == 1
        assert summary["endpoint"]["name"] == name and summary["git_sha"]
        assert summary["scaffold_version"] and summary["limits"]["steps"] == 50
        assert (run / "report.md").exists() and (run / "report.html").exists()
        assert (run / "trajectories" / "smoke-add.jsonl").exists()
    # resume: nothing left to do, the same results stay; other settings are refused
    with FakeM2(SMOKE_ADD) as fake:
        (tmp_path / "endpoints.toml").write_text(
            f'[[endpoint]]\nname = "fake"\nprotocol = "openai"\nbase_url = "{fake.base_url}/v1"\n'
            f'model = "MiniMax-M2"\nprice = "minimax-m2"\n')
        assert cli.main(["eval", "run", "smoke-add", "--endpoint", "fake", "--endpoints",
                         str(tmp_path / "endpoints.toml"), "--results", str(tmp_path / "results"),
                         "--run-id", "fake"]) == 0
        assert fake.state.requests == []
    with pytest.raises(SystemExit, match="different oracle"):
        cli.main(["eval", "run", "smoke-add", "--oracle", "empty", "--results",
                  str(tmp_path / "results"), "--run-id", "fake"])
    summary = json.loads((tmp_path / "results" / "fake" / "summary.json").read_text())
    assert summary["resolved"]["resolved"] == 1
    assert cli.main(["eval", "report", str(tmp_path / "results" / "fake")]) == 0
    html = tmp_path / "cmp.html"
    assert cli.main(["eval", "compare", str(tmp_path / "results" / "fake"),
                     str(tmp_path / "results" / "fake-a"), "--html", str(html)]) == 0
    assert "<svg" in html.read_text()


def test_run_needs_endpoint_or_oracle(capsys):
    assert cli.main(["eval", "run", "smoke-add"]) == 2


def test_a_task_id_that_matches_nothing_is_an_error(tmp_path, capsys):
    """A typo used to run nothing and report 0/0 resolved, exit 0."""
    assert cli.main(["eval", "run", "smoke-add", "smoke-nope*", "--oracle", "gold",
                     "--results", str(tmp_path)]) == 1
    assert "no task matches 'smoke-nope*'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no run directory written
