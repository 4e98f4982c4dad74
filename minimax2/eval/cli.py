"""Command line: `minimax2 eval new|build|run|report|compare` (new: scaffold.py) and `minimax2 bench serve`.

The main `minimax2` CLI calls register_eval(subparsers) and register_bench_serve(bench_subparsers);
it is not run on its own (`python -m minimax2 eval ...` is the same command)."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from .records import TASK_TYPES, cache_dir, load_tasks


def _quiet_http_logs() -> None:
    """One INFO line per HTTP request from the SDKs' transport drowns the progress bar."""
    import logging

    for name in ("httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _announce_isolation() -> None:
    """Say at start which sandbox protections hold on this machine (isolation.py)."""
    from . import isolation

    print(isolation.detect().describe(), file=sys.stderr)


def _select(args) -> list:
    return load_tasks(select=args.tasks or None, tier=args.tier, types=args.type or None,
                      extra_dirs=args.task_dirs)


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("tasks", nargs="*", help="instance ids or globs (default: every task, or every task of --tier)")
    p.add_argument("--tier", choices=["main", "smoke"], default=None,
                   help="only this tier (main: PyPI tasks, smoke: tiny inline tasks)")
    p.add_argument("--type", action="append", choices=TASK_TYPES, help="only this task type (repeatable)")
    p.add_argument("--tasks", dest="task_dirs", action="append", type=Path, default=[], metavar="DIR",
                   help="also read task records from DIR (repeatable; also $MINIMAX2_EVAL_TASKS, a path list)")
    p.add_argument("--cache", type=Path, default=None,
                   help="build cache (default $MINIMAX2_CACHE/eval or ~/.cache/minimax2/eval)")


def build_line(meta: dict) -> str:
    """One task's build result as rich markup; ids and reasons are escaped, so test ids such as
    `test_x[args-1 Bytes]` print literally, and the reason is printed whole."""
    from rich.markup import escape

    name = escape(meta["instance_id"])
    if meta["status"] == "valid":
        note = "cached" if meta.get("cached") else f"{meta['build_seconds']}s"
        return f"[green]valid[/]   {name} ({note}, {meta['validation']['pass_to_pass']} PASS_TO_PASS)"
    return f"[red]INVALID[/] {name}: skipped: {escape(meta['reason'])}"


def cmd_build(args) -> int:
    from rich.console import Console
    from rich.markup import escape

    from . import build

    console, cache = Console(), args.cache or cache_dir()
    tasks = _select(args)
    _announce_isolation()
    start = time.monotonic()
    metas, bad = [], 0
    with ThreadPoolExecutor(max(1, args.workers)) as pool:  # each task's line as soon as it is built
        for done in as_completed([pool.submit(build.build_task, t, cache, force=args.force) for t in tasks]):
            meta = done.result()
            metas.append(meta)
            bad += meta["status"] != "valid"
            console.print(escape(f"[{len(metas)}/{len(tasks)} {time.monotonic() - start:.0f}s] ") + build_line(meta),
                          highlight=False)
    console.print(f"{len(metas) - bad}/{len(metas)} tasks valid in {time.monotonic() - start:.1f}s "
                  f"(cache {cache})")
    return 1 if bad else 0


def cmd_run(args) -> int:
    from . import endpoints, runner

    _quiet_http_logs()
    if not args.oracle and not args.endpoint:
        print("give --endpoint NAME (see --endpoints) or --oracle gold|empty", file=sys.stderr)
        return 2
    endpoint = endpoints.load(args.endpoint, args.endpoints) if args.endpoint else None
    _announce_isolation()
    name = args.oracle and f"oracle-{args.oracle}" or endpoint["name"]
    run_id = args.run_id or f"{dt.datetime.now():%Y%m%d-%H%M%S}-{name}"
    limits = {"steps": args.max_steps, "wall_s": args.max_wall, "cost_usd": args.max_cost}
    cfg = runner.RunConfig(run_id=run_id, out_dir=args.results, cache=args.cache or cache_dir(),
                           oracle=args.oracle, endpoint=endpoint, limits=limits,
                           strip_thinking=args.strip_thinking, prompt_version=args.prompts,
                           workers=args.workers)
    run_dir = runner.run(_select(args), cfg)
    print(f"results in {run_dir}: report.md, report.html, summary.json")
    return 0


def cmd_report(args) -> int:
    from . import results

    data = results.finish(args.run_dir)
    print((Path(args.run_dir) / "report.md").read_text() if data else "")
    return 0


def cmd_compare(args) -> int:
    from . import compare

    print(compare.compare(args.runs, args.html))
    return 0


def register_eval(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="repo-level coding evaluation (build, run, report, compare)",
                              description="Build repo-level coding tasks from PyPI releases, run an "
                              "agent (or an oracle) on them, grade SWE-bench style, report.")
    sub = p.add_subparsers(dest="eval_command", required=True)
    b = sub.add_parser("build", help="download sdists, make buggy trees, validate every task")
    _add_selection(b)
    b.add_argument("--force", action="store_true", help="rebuild tasks already built")
    b.add_argument("--workers", type=int, default=2, help="tasks built in parallel (default 2)")
    b.set_defaults(func=cmd_build)
    r = sub.add_parser("run", help="solve and grade tasks; writes results/<run-id>/")
    _add_selection(r)
    r.add_argument("--endpoint", help="endpoint name from the endpoints file")
    r.add_argument("--endpoints", type=Path, default=None,
                   help="endpoints TOML (default ./endpoints.toml, else the packaged example)")
    r.add_argument("--oracle", choices=["gold", "empty"], help="no model: apply the reference fix / nothing")
    r.add_argument("--run-id", help="run id (reuse one to resume an interrupted run)")
    r.add_argument("--results", type=Path, default=Path("results"), help="results root (default results/)")
    r.add_argument("--workers", type=int, default=1, help="tasks in parallel (default 1)")
    r.add_argument("--max-steps", type=int, default=50, help="model calls per task (default 50)")
    r.add_argument("--max-wall", type=float, default=1800, help="seconds per task (default 1800)")
    r.add_argument("--max-cost", type=float, default=2.0, help="dollars per task (default 2.0)")
    r.add_argument("--strip-thinking", action="store_true",
                   help="ablation: drop reasoning from the history sent back to the model")
    r.add_argument("--prompts", default="v1", help="prompt version under minimax2/eval/prompts/")
    r.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="recompute summary.json, report.md and report.html of a run")
    rep.add_argument("run_dir", type=Path)
    rep.set_defaults(func=cmd_report)
    c = sub.add_parser("compare", help="runs side by side, paired McNemar test on shared tasks")
    c.add_argument("runs", nargs="+", type=Path, help="run directories")
    c.add_argument("--html", type=Path, default=None, help="also write a self-contained HTML page")
    c.set_defaults(func=cmd_compare)
    from . import scaffold

    scaffold.register(sub)
    return p


def register_bench_serve(bench_subparsers) -> argparse.ArgumentParser:
    from . import loadgen

    parser = loadgen.register(bench_subparsers)
    parser.set_defaults(func=cmd_bench_serve)
    return parser


def cmd_bench_serve(args) -> int:
    from . import loadgen

    _quiet_http_logs()
    return loadgen.cmd_serve(args)


if __name__ == "__main__":  # not an entry point: say which one is, rather than exit silently
    sys.exit("minimax2.eval.cli only registers `eval` and `bench serve`; run `python -m minimax2 eval ...`")
