"""`minimax2 eval compare RUN...`: runs side by side, with an exact McNemar test on the tasks
each pair of runs shares, mean +- sd of the resolved rate across runs, and an optional HTML page."""
from __future__ import annotations

import json
from html import escape
from itertools import combinations
from pathlib import Path

from . import results, stats, summary, svg


def load_run(run_dir: Path) -> tuple[str, dict, dict]:
    run_dir = Path(run_dir)
    records = {r["instance_id"]: r for r in results.load_records(run_dir)}
    meta_path = run_dir / "summary.json"
    data = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return data.get("run_id") or run_dir.name, data, records


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row(name: str, data: dict, recs: dict) -> tuple[str, float | None]:
    r = summary.rate(list(recs.values()))
    calls = [c for rec in recs.values() for c in rec.get("calls", [])]
    cost = sum(rec.get("cost_usd") or 0.0 for rec in recs.values())
    ep = (data.get("endpoint") or {}).get("name") or f"oracle:{data.get('oracle')}"
    lo, hi = r["wilson95"]
    cells = [name, ep, f"{r['resolved']}/{r['n']}", _num(r["rate"], ".3f"), f"{lo:.3f}-{hi:.3f}",
             f"{cost:.4f}", _num(cost / r["resolved"] if r["resolved"] else None, ".4f"),
             _num(stats.percentile([c.get("ttft_any") for c in calls], 50), ".3f"),
             _num(stats.percentile([c.get("decode_tps") for c in calls], 50), ".1f")]
    return "| " + " | ".join(cells) + " |", r["rate"]


def _paired(runs: list) -> list[str]:
    lines = ["| run A | run B | shared tasks | only A | only B | McNemar p |", "|---|---|---|---|---|---|"]
    for (na, _, ra), (nb, _, rb) in combinations(runs, 2):
        shared = [t for t in sorted(set(ra) & set(rb))
                  if "infra_error" not in (ra[t].get("status"), rb[t].get("status"))]
        test = stats.mcnemar([bool(ra[t].get("resolved")) for t in shared],
                             [bool(rb[t].get("resolved")) for t in shared])
        lines.append(f"| {na} | {nb} | {len(shared)} | {test['only_a']} | {test['only_b']} | "
                     f"{test['p_value']:.4g} |")
    return lines


def compare(run_dirs: list[Path], html_path: Path | None = None) -> str:
    runs = [load_run(d) for d in run_dirs]
    lines = ["| run | endpoint | resolved | rate | Wilson 95% | cost $ | $/resolved | p50 TTFT s | p50 tok/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    rates = []
    for name, data, recs in runs:
        row, rate = _row(name, data, recs)
        lines.append(row)
        rates.append(rate)
    mean, sd = stats.mean_sd([x for x in rates if x is not None])
    lines += ["", f"Resolved rate across runs: mean {_num(mean, '.3f')} +- sd {_num(sd, '.3f')}", ""]
    text = "\n".join(lines + _paired(runs)) + "\n"
    if html_path:
        tasks = sorted({t for _, _, recs in runs for t in recs})
        names = [name for name, _, _ in runs]
        cells = {(t, name): recs[t].get("status") for name, _, recs in runs for t in recs}
        points = [(sum(r.get("cost_usd") or 0.0 for r in recs.values()), rate or 0.0, name)
                  for (name, _, recs), rate in zip(runs, rates)]
        body = (f"<pre>{escape(text)}</pre>"
                + svg.scatter("resolved rate vs total cost", points, "cost $", "resolved rate")
                + svg.matrix("task x run", tasks, names, cells))
        Path(html_path).write_text("<!doctype html><html><head><meta charset='utf-8'><title>compare"
                                   f"</title></head><body style='font-family:sans-serif'>{body}</body></html>\n")
    return text
