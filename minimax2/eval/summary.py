"""Run-level metrics from per-task records: resolved rate with a Wilson interval, cost per task and
per resolved task, tokens, time split, latency percentiles, resolved rate at step caps."""
from __future__ import annotations

from . import stats

STEP_CAPS = (5, 10, 20, 30, 50, 100)


def _graded(records: list[dict]) -> list[dict]:
    """Records that count towards the resolved rate: infra errors are excluded, not failures."""
    return [r for r in records if r.get("status") != "infra_error"]


def rate(records: list[dict]) -> dict:
    graded = _graded(records)
    ok = sum(1 for r in graded if r.get("resolved"))
    n = len(graded)
    lo, hi = stats.wilson(ok, n)
    return {"n": n, "resolved": ok, "rate": ok / n if n else None, "wilson95": [lo, hi]}


def summarise(meta: dict, records: list[dict]) -> dict:
    cfg = meta.get("config", {})
    endpoint = cfg.get("endpoint") or {}
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r.get("status", "?")] = statuses.get(r.get("status", "?"), 0) + 1
    by_type = {}
    for kind in sorted({r.get("task_type") for r in records}):
        by_type[kind] = rate([r for r in records if r.get("task_type") == kind])
    calls = [c for r in records for c in r.get("calls", [])]
    cost = sum(r.get("cost_usd") or 0.0 for r in records)
    overall = rate(records)
    tokens = {}
    for r in records:
        for k, v in (r.get("tokens") or {}).items():
            tokens[k] = tokens.get(k, 0) + (v or 0)
    time_split = {}
    for r in records:
        for k, v in (r.get("time") or {}).items():
            time_split[k] = round(time_split.get(k, 0.0) + (v or 0.0), 3)
    graded = _graded(records)
    at_caps = {}
    for cap in STEP_CAPS:
        ok = sum(1 for r in graded if r.get("resolved") and (r.get("steps") or 0) <= cap)
        at_caps[str(cap)] = ok / len(graded) if graded else None
    return {
        "run_id": meta.get("run_id"), "scaffold_version": meta.get("scaffold_version"),
        "started": meta.get("started"), "finished": meta.get("finished"),
        "git_sha": meta.get("git_sha"), "oracle": cfg.get("oracle"),
        "endpoint": {k: endpoint.get(k) for k in ("name", "protocol", "base_url", "model")} if endpoint else None,
        "sampling": endpoint.get("sampling"), "limits": cfg.get("limits"),
        "strip_thinking": cfg.get("strip_thinking"), "prompt_version": cfg.get("prompt_version"),
        "statuses": statuses, "resolved": overall, "by_task_type": by_type,
        "cost_usd": {"total": cost, "per_task": cost / len(records) if records else None,
                     "per_resolved": cost / overall["resolved"] if overall["resolved"] else None},
        "tokens": tokens, "time_s": time_split,
        "latency": {k: stats.describe([c.get(k) for c in calls])
                    for k in ("ttft_any", "ttft_visible", "e2e", "decode_tps")},
        "steps": stats.describe([r.get("steps") for r in records]),
        "format_errors": sum(r.get("format_errors") or 0 for r in records),
        "resolved_at_step_cap": at_caps,
        "tasks": {r["instance_id"]: r.get("status") for r in records},
    }
