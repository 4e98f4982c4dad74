"""Parse test runner output into {test_id: status}; status is PASSED, FAILED, ERROR, SKIPPED, XFAIL
or XPASS. Only pytest's `-rA` short summary is supported (the runner of every shipped task)."""
from __future__ import annotations

import re

STATUSES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S.*?)(?: - .*)?$")
_SUMMARY = re.compile(
    r"^=*\s*(\d+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed)|no tests ran)\b.* in [\d.]+s")


def parse_pytest(log: str) -> dict[str, str]:
    results: dict[str, str] = {}
    in_summary = False
    for line in log.splitlines():
        if line.startswith("=") and "short test summary info" in line:
            in_summary = True
            continue
        if not in_summary:
            continue
        m = _LINE.match(line)
        if not m:
            continue
        status, test_id = m.groups()
        if status == "SKIPPED" and test_id.startswith("["):
            continue  # "SKIPPED [1] file:line: reason" has no node id
        if status == "ERROR" and "::" not in test_id:
            results[test_id] = "ERROR"  # collection error of a whole file
            continue
        results[test_id] = status
    return results


def suite_ran(log: str) -> bool:
    """Whether pytest reached its final summary line (otherwise the run is an infra error)."""
    return any(_SUMMARY.match(line.strip()) for line in log.splitlines()[-30:])


def parse(log: str, parser: str = "pytest") -> dict[str, str]:
    if parser != "pytest":
        raise ValueError(f"unknown log parser {parser!r}")
    return parse_pytest(log)


def passed(status: str | None) -> bool:
    return status in ("PASSED", "XFAIL", "XPASS")
