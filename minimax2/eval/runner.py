"""`minimax2 eval run`: solve every task (agent or oracle), grade it, record it; resumable.

Each finished task is appended to results/<run-id>/results.jsonl at once, so an interrupted run
continues where it stopped when started again with the same run id."""
from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import build, grading, isolation, results
from .records import Task


@dataclass
class RunConfig:
    run_id: str
    out_dir: Path
    cache: Path
    oracle: str | None = None  # "gold" | "empty" | None (agent)
    endpoint: dict | None = None
    limits: dict = field(default_factory=lambda: {"steps": 50, "wall_s": 1800, "cost_usd": 2.0})
    strip_thinking: bool = False
    prompt_version: str = "v1"
    workers: int = 1


def oracle_patch(task: Task, built: Path, mode: str) -> str:
    if mode == "empty":
        return ""
    if mode != "gold":
        raise ValueError(f"unknown oracle {mode!r}")
    name = "test.patch" if task.task_type == "add_tests" else "gold.patch"
    return (built / name).read_text()


def solve_and_grade(task: Task, built: Path, cfg: RunConfig, traj_path: Path) -> dict:
    start = time.monotonic()
    record = {"instance_id": task.instance_id, "task_type": task.task_type, "tier": task.tier}
    if cfg.oracle:
        patch = oracle_patch(task, built, cfg.oracle)
        record.update(steps=0, format_errors=0, stop_reason=f"oracle:{cfg.oracle}", calls=[],
                      time={"model": 0.0, "tool": 0.0})
        traj_path.write_text(json.dumps({"type": "oracle", "mode": cfg.oracle, "patch": patch}) + "\n")
    else:
        from . import agent

        with tempfile.TemporaryDirectory(prefix=f"agent-{task.instance_id}-") as tmp:
            outcome = agent.solve(task, built, Path(tmp), cfg, traj_path)
        patch = outcome.pop("patch")
        record.update(outcome)
    grade = grading.grade(task, built, patch)
    record.update(status=grade.status, resolved=grade.resolved, grade_reason=grade.reason,
                  patch=patch)
    if record.get("stop_reason") == "agent_error" and grade.status != "resolved":
        record["status"] = "agent_error"
    wall = time.monotonic() - start
    t = record["time"]
    t.update(grading=round(grade.seconds, 3), total=round(wall, 3))
    t["overhead"] = round(wall - t["model"] - t["tool"] - t["grading"], 3)
    return record


def run(tasks: list[Task], cfg: RunConfig) -> Path:
    isolation.conceal(cfg.cache, cfg.out_dir)  # built trees, gold patches, hidden tests; earlier results
    run_dir = results.prepare(cfg)
    done = results.done_ids(run_dir)
    todo = [t for t in tasks if t.instance_id not in done]
    lock = threading.Lock()

    def one(task: Task) -> dict:
        try:
            built_task, built = build.load_built(task.instance_id, cfg.cache)
        except (FileNotFoundError, build.InvalidTask) as exc:
            return {"instance_id": task.instance_id, "task_type": task.task_type, "tier": task.tier,
                    "status": "infra_error", "resolved": False, "grade_reason": str(exc)}
        traj = run_dir / "trajectories" / f"{task.instance_id}.jsonl"
        try:
            return solve_and_grade(built_task, built, cfg, traj)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            return {"instance_id": task.instance_id, "task_type": task.task_type, "tier": task.tier,
                    "status": "infra_error", "resolved": False, "grade_reason": f"{type(exc).__name__}: {exc}"}

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("resolved {task.fields[ok]}"), TimeElapsedColumn()]
    with Progress(*columns) as progress, ThreadPoolExecutor(max(1, cfg.workers)) as pool:
        bar = progress.add_task(cfg.run_id, total=len(tasks), completed=len(tasks) - len(todo),
                                ok=sum(1 for r in results.load_records(run_dir) if r.get("resolved")))
        futures = {pool.submit(one, t): t for t in todo}
        for future in as_completed(futures):
            record = future.result()
            with lock:
                results.append_record(run_dir, record)
                ok = sum(1 for r in results.load_records(run_dir) if r.get("resolved"))
            progress.update(bar, advance=1, ok=ok)
            why = record.get("error") if record["status"] == "agent_error" else record.get("grade_reason")
            if why and len(why) > 300:
                why = why[:300] + "..."
            progress.console.print(f"{record['instance_id']}: {record['status']}{' - ' + why if why else ''}",
                                   markup=False)
    results.finish(run_dir, cfg)
    return run_dir
