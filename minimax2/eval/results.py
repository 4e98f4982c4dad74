"""The files of one run: results/<run-id>/{summary.json, results.jsonl, trajectories/, report.*}."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
from pathlib import Path

from . import summary as summarise

SCAFFOLD_VERSION = "1.0"


def git_sha() -> str:
    here = Path(__file__).resolve().parent
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True)
    sha = out.stdout.strip() if out.returncode == 0 else "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True)
    return sha + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


RESUME_KEYS = ("oracle", "endpoint.name", "endpoint.model", "endpoint.protocol", "endpoint.sampling",
               "limits", "strip_thinking", "prompt_version")


def _key(config: dict, dotted: str):
    value = config
    for part in dotted.split("."):
        value = (value or {}).get(part)
    return value


def config_dict(cfg) -> dict:
    data = dataclasses.asdict(cfg)
    data["out_dir"], data["cache"] = str(cfg.out_dir), str(cfg.cache)
    endpoint = dict(cfg.endpoint or {})
    endpoint.pop("api_key", None)
    data["endpoint"] = endpoint or None
    return data


def prepare(cfg) -> Path:
    run_dir = Path(cfg.out_dir) / cfg.run_id
    (run_dir / "trajectories").mkdir(parents=True, exist_ok=True)
    meta_path = run_dir / "run.json"
    if meta_path.exists():
        before, now = json.loads(meta_path.read_text())["config"], config_dict(cfg)
        changed = [k for k in RESUME_KEYS if _key(before, k) != _key(now, k)]
        if changed:
            raise SystemExit(f"run {cfg.run_id} exists with a different {', '.join(changed)}: "
                             "use a new --run-id, or the same settings to resume")
    else:
        meta = {"run_id": cfg.run_id, "scaffold_version": SCAFFOLD_VERSION,
                "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "git_sha": git_sha(), "config": config_dict(cfg)}
        meta_path.write_text(json.dumps(meta, indent=1))
    return run_dir


def load_records(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def done_ids(run_dir: Path) -> set[str]:
    """Tasks already finished; infra errors and endpoint failures (agent_error) are retried on resume."""
    retry = ("infra_error", "agent_error")
    return {r["instance_id"] for r in load_records(run_dir) if r.get("status") not in retry}


def append_record(run_dir: Path, record: dict) -> None:
    records = [r for r in load_records(run_dir) if r["instance_id"] != record["instance_id"]]
    records.append(record)
    text = "".join(json.dumps(r) + "\n" for r in records)
    tmp = Path(run_dir) / "results.jsonl.tmp"
    tmp.write_text(text)
    tmp.replace(Path(run_dir) / "results.jsonl")


def finish(run_dir: Path, cfg=None) -> dict:
    from . import report

    meta = json.loads((Path(run_dir) / "run.json").read_text())
    meta["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    data = summarise.summarise(meta, load_records(run_dir))
    (Path(run_dir) / "summary.json").write_text(json.dumps(data, indent=1))
    report.write(run_dir, data, load_records(run_dir))
    return data
