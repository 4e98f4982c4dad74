"""report.md and a self-contained report.html (inline SVG) for one run."""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

from . import svg


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown(data: dict, records: list[dict]) -> str:
    res = data["resolved"]
    lo, hi = res["wilson95"]
    ep = data.get("endpoint") or {}
    lines = [f"# Run {data['run_id']}", "",
             f"- endpoint: {ep.get('name', '-')} ({ep.get('protocol', '-')}, model {ep.get('model', '-')})"
             if ep else f"- oracle: {data.get('oracle')}",
             f"- scaffold {data['scaffold_version']}, prompts {data.get('prompt_version')}, "
             f"strip_thinking={data.get('strip_thinking')}, git {data['git_sha']}",
             f"- sampling: {json.dumps(data.get('sampling'))}; limits: {json.dumps(data.get('limits'))}",
             f"- started {data['started']}, finished {data['finished']}", "",
             f"**Resolved: {res['resolved']}/{res['n']} = {_fmt(res['rate'])} "
             f"(Wilson 95% {lo:.3f}-{hi:.3f})**; statuses {json.dumps(data['statuses'])}", "",
             "| task type | resolved | n | rate |", "|---|---|---|---|"]
    for kind, r in data["by_task_type"].items():
        lines.append(f"| {kind} | {r['resolved']} | {r['n']} | {_fmt(r['rate'])} |")
    cost = data["cost_usd"]
    lines += ["", f"Cost: total ${cost['total']:.4f}, per task ${_fmt(cost['per_task'])}, "
              f"per resolved ${_fmt(cost['per_resolved'])}. Tokens: {json.dumps(data['tokens'])}.",
              f"Time (s): {json.dumps(data['time_s'])}. Format errors: {data['format_errors']}.", "",
              "| latency | n | mean | p50 | p90 | p99 |", "|---|---|---|---|---|---|"]
    for k, d in data["latency"].items():
        lines.append(f"| {k} | {d['n']} | {_fmt(d['mean'])} | {_fmt(d['p50'])} | {_fmt(d['p90'])} | "
                     f"{_fmt(d['p99'])} |")
    caps = ", ".join(f"<= {k}: {_fmt(v)}" for k, v in data["resolved_at_step_cap"].items())
    lines += ["", f"Resolved rate at step caps: {caps}", "",
              "| task | type | status | steps | cost $ | wall s | reason |", "|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: r["instance_id"]):
        lines.append(f"| {r['instance_id']} | {r.get('task_type')} | {r.get('status')} | "
                     f"{r.get('steps', '-')} | {_fmt(r.get('cost_usd'))} | "
                     f"{_fmt((r.get('time') or {}).get('total'))} | "
                     f"{(r.get('grade_reason') or '').replace('|', '/')[:80]} |")
    return "\n".join(lines) + "\n"


def _md_to_html(md: str) -> str:
    out, table = [], False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            out.append(("<table>" if not table else "") + "<tr>" + "".join(f"<td>{c}</td>" for c in cells)
                       + "</tr>")
            table = True
            continue
        if table:
            out.append("</table>")
            table = False
        if line.startswith("# "):
            out.append(f"<h1>{escape(line[2:])}</h1>")
        elif line.strip():
            out.append(f"<p>{escape(line).replace('**', '')}</p>")
    return "\n".join(out + (["</table>"] if table else []))


def html(md: str, records: list[dict], run_id: str) -> str:
    calls = [c for r in records for c in r.get("calls", [])]
    points = [((r.get("cost_usd") or 0.0), 1.0 if r.get("resolved") else 0.0, r["instance_id"])
              for r in records]
    plots = [svg.scatter("resolved (1/0) vs cost per task", points, "cost $", "resolved"),
             svg.histogram("TTFT (any token)", [c.get("ttft_any") for c in calls], "seconds"),
             svg.histogram("end-to-end latency per call", [c.get("e2e") for c in calls], "seconds"),
             svg.histogram("decode speed", [c.get("decode_tps") for c in calls], "tokens/s"),
             svg.matrix("task x run", sorted(r["instance_id"] for r in records), [run_id],
                        {(r["instance_id"], run_id): r.get("status") for r in records})]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}td{border:1px solid #ccc;"
             "padding:2px 6px}table{border-collapse:collapse}svg{margin:6px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(run_id)}</title>"
            f"<style>{style}</style></head><body>{_md_to_html(md)}<div>{''.join(plots)}</div>"
            "</body></html>\n")


def write(run_dir: Path, data: dict, records: list[dict]) -> None:
    md = markdown(data, records)
    (Path(run_dir) / "report.md").write_text(md)
    (Path(run_dir) / "report.html").write_text(html(md, records, data["run_id"]))
