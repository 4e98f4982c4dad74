"""The agent loop: native tool calling with `bash`, `edit` and `submit`, limits on steps, wall
time and cost, format-error feedback, and a JSONL trajectory of every message and timing.

The history is kept in the endpoint's own protocol and assistant messages go back exactly as
received (reasoning included) unless the run strips thinking as an ablation."""
from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

from . import clients, endpoints, sandbox, tools
from .records import Task

PROMPTS = Path(__file__).parent / "prompts"
MAX_FORMAT_ERRORS = 5
COMMAND_TIMEOUT = 120


def render_prompts(version: str, task: Task, repo_dir: str) -> tuple[str, str]:
    folder = PROMPTS / version
    if not folder.is_dir():
        raise SystemExit(f"no prompt version {version!r} under {PROMPTS}")
    hints = tomllib.loads((folder / "hints.toml").read_text())
    system = (folder / "system.md").read_text().format(repo_dir=repo_dir, command_timeout=COMMAND_TIMEOUT)
    user = (folder / "task.md").read_text().format(task_type=task.task_type,
                                                   problem_statement=task.problem_statement.strip(),
                                                   task_type_hint=hints.get(task.task_type, ""))
    return system, user


class Trajectory:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w")

    def log(self, kind: str, **data) -> None:
        self.file.write(json.dumps({"type": kind, "t": time.time(), **data}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _tool_results(protocol: str, results: list[tuple[str, str]]) -> list[dict]:
    if protocol == "openai":
        return [{"role": "tool", "tool_call_id": cid, "content": out} for cid, out in results]
    return [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": cid, "content": out}
                                         for cid, out in results]}]


def _api_errors() -> tuple:
    import anthropic
    import openai

    return (openai.APIError, anthropic.APIError)


def _run_tools(calls: list, repo: Path, venv: Path, traj: Trajectory, step: int,
               format_errors: int) -> tuple[list, bool, int, float]:
    """Execute one turn's tool calls: ([(call id, output)], submitted, new format errors, seconds)."""
    results, submitted, bad, total = [], False, 0, 0.0
    for call in calls:
        t0 = time.monotonic()
        error = False
        try:
            args = json.loads(call.arguments or "{}")
            if not isinstance(args, dict):
                raise tools.FormatError("arguments must be a JSON object")
            if call.name == "submit":
                submitted, output = True, "submitted"
            else:
                output = tools.execute(call.name, args, repo, venv, COMMAND_TIMEOUT)
        except (json.JSONDecodeError, tools.FormatError) as exc:
            bad += 1
            error = True
            output = f"error: {exc} (format error {format_errors + bad} of {MAX_FORMAT_ERRORS})"
        except (tools.ToolError, OSError, UnicodeDecodeError) as exc:
            error, output = True, f"error: {exc}"
        seconds = time.monotonic() - t0
        total += seconds
        results.append((call.id, output))
        traj.log("tool", step=step, id=call.id, name=call.name, arguments=call.arguments, output=output,
                 seconds=seconds, error=error)
    return results, submitted, bad, total


def solve(task: Task, built: Path, workdir: Path, cfg, traj_path: Path) -> dict:
    endpoint, limits = cfg.endpoint, cfg.limits
    protocol = endpoint["protocol"]
    repo, venv = sandbox.create(built / "buggy", workdir, task.python, built / "deps")
    system, user = render_prompts(cfg.prompt_version, task, str(repo))
    client = clients.make_client(endpoint)
    tool_defs = tools.SCHEMAS if protocol == "openai" else tools.anthropic_tools()
    history = ([{"role": "system", "content": system}] if protocol == "openai" else [])
    history.append({"role": "user", "content": user})
    traj = Trajectory(traj_path)
    traj.log("start", instance_id=task.instance_id, endpoint=endpoint["name"], protocol=protocol,
             model=endpoint["model"], sampling=endpoint.get("sampling"), limits=limits,
             strip_thinking=cfg.strip_thinking, prompt_version=cfg.prompt_version, tools=tool_defs)
    for message in history:
        traj.log("message", step=0, message=message)
    start = time.monotonic()
    steps = format_errors = 0
    model_s = tool_s = cost = 0.0
    tokens = {"input": 0, "cached": 0, "cache_write": 0, "output": 0}
    calls, stop, error = [], None, None
    while stop is None:
        if steps >= limits.get("steps", 50):
            stop = "step_limit"
        elif time.monotonic() - start >= limits.get("wall_s", 1800):
            stop = "wall_limit"
        elif cost >= limits.get("cost_usd", 2.0):
            stop = "cost_limit"
        if stop:
            break
        steps += 1
        remaining = limits.get("wall_s", 1800) - (time.monotonic() - start)
        bounded = client.with_options(timeout=max(1.0, min(remaining, endpoint.get("timeout", 600))))
        try:
            if protocol == "openai":
                turn = clients.call_openai(bounded, endpoint, history, tool_defs)
            else:
                turn = clients.call_anthropic(bounded, endpoint, system, history, tool_defs)
        except _api_errors() as exc:
            error = f"{type(exc).__name__}: {exc}"
            traj.log("error", step=steps, error=error)
            over = time.monotonic() - start >= limits.get("wall_s", 1800)
            stop = "wall_limit" if over else "agent_error"
            break
        call_cost = endpoints.cost(turn.usage, endpoint["prices"])
        cost += call_cost
        model_s += turn.metrics["e2e"]
        for k in tokens:
            tokens[k] += turn.usage.get(k, 0)
        calls.append({**turn.metrics, **{f"{k}_tokens": v for k, v in turn.usage.items()},
                      "cost_usd": call_cost, "stop_reason": turn.stop_reason})
        traj.log("assistant", step=steps, message=turn.message, usage=turn.usage, metrics=turn.metrics,
                 cost_usd=call_cost, stop_reason=turn.stop_reason)
        history.append(clients.strip_thinking(turn.message) if cfg.strip_thinking else turn.message)
        if not turn.tool_calls:
            format_errors += 1
            note = ("Your reply contained no tool call. Use the bash or edit tool to work on the task, "
                    f"or call submit when you are done. (format error {format_errors} of {MAX_FORMAT_ERRORS})")
            history.append({"role": "user", "content": note})
            traj.log("message", step=steps, message=history[-1], format_error=True)
            if format_errors >= MAX_FORMAT_ERRORS:
                stop = "format_error_limit"
            continue
        results, submitted, bad, seconds = _run_tools(turn.tool_calls, repo, venv, traj, steps, format_errors)
        format_errors += bad
        tool_s += seconds
        stop = "submitted" if submitted else None
        for message in _tool_results(protocol, results):
            history.append(message)
        if stop is None and format_errors >= MAX_FORMAT_ERRORS:
            stop = "format_error_limit"
    try:
        patch = sandbox.diff(repo)
    except RuntimeError as exc:  # the agent's tree defeated the diff: its task, not the harness's
        patch, error = "", f"no patch could be taken: {exc}"
    traj.log("end", stop_reason=stop, steps=steps, format_errors=format_errors, cost_usd=cost,
             tokens=tokens, patch=patch)
    traj.close()
    return {"patch": patch, "steps": steps, "format_errors": format_errors, "stop_reason": stop, "error": error,
            "calls": calls, "tokens": tokens, "cost_usd": cost,
            "time": {"model": round(model_s, 3), "tool": round(tool_s, 3)}}
