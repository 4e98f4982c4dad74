"""Parse test runner output into {test_id: status}; status is PASSED, FAILED, ERROR, SKIPPED, XFAIL
or XPASS. Parsers: `pytest` (its `-rA` short summary) and `unittest` (`python -m unittest -v`).
ANSI escape codes are stripped first: a suite that forces colour still parses."""
from __future__ import annotations

import re

STATUSES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S.*?)(?: - .*)?$")
# pytest >= 9 runs unittest subTests itself: a failing subtest is a "SUBFAILED(params) id" line while
# the test's own line may still say PASSED; the test failed.
_SUBFAILED = re.compile(r"^SUBFAILED\((?:[^()]|\([^()]*\))*\) (\S.*?)(?: - .*)?$")
_SUMMARY = re.compile(
    r"^=*\s*(\d+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed)|no tests ran)\b.* in [\d.]+s")
# unittest -v: "test_x (pkg.mod.Class.test_x) ... ok" (3.11+) or "test_x (pkg.mod.Class) ... ok";
# with a docstring the description line comes between the name and " ... status".
_UT_NAME = re.compile(r"^(\w+) \(([\w.]+)\)")
_UT_STATUS = re.compile(r"\.\.\. (ok|FAIL|ERROR|skipped|expected failure|unexpected success)\b")
_UT_MAP = {"ok": "PASSED", "FAIL": "FAILED", "ERROR": "ERROR", "skipped": "SKIPPED",
           "expected failure": "XFAIL", "unexpected success": "XPASS"}
_UT_RAN = re.compile(r"^Ran \d+ tests? in [\d.]+s$")


def strip_ansi(log: str) -> str:
    return ANSI.sub("", log)


def _last_summary(lines: list[str]) -> list[str]:
    """The lines of pytest's last short test summary, up to its final "N passed ... in Xs" line: what
    code under test prints before it (a forged summary) or after it (at exit) is not the runner's."""
    starts = [i for i, line in enumerate(lines) if line.startswith("=") and "short test summary info" in line]
    if not starts:
        return []
    section = lines[starts[-1] + 1:]
    end = next((i for i, line in enumerate(section) if _SUMMARY.match(line.strip())), len(section))
    return section[:end]


def parse_pytest(log: str) -> dict[str, str]:
    results: dict[str, str] = {}
    subfailed: set[str] = set()
    for line in _last_summary(strip_ansi(log).splitlines()):
        sub = _SUBFAILED.match(line)
        if sub:
            subfailed.add(sub.group(1))
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
    results.update(dict.fromkeys(subfailed, "FAILED"))
    return results


def _unittest_id(name: str, where: str) -> str:
    return where if where.endswith(f".{name}") else f"{where}.{name}"


def parse_unittest(log: str) -> dict[str, str]:
    """{pkg.mod.Class.test_x: status} from `python -m unittest -v` output."""
    results: dict[str, str] = {}
    pending = None  # a test whose " ... status" is on a later line (docstring, or output in between)
    for line in strip_ansi(log).splitlines():
        name = _UT_NAME.match(line)
        if name:
            pending = _unittest_id(*name.groups())
        status = _UT_STATUS.search(line)
        if status and pending:
            results[pending] = _UT_MAP[status.group(1)]
            pending = None
    for line in strip_ansi(log).splitlines():  # failures listed again at the end, authoritative
        m = re.match(r"^(FAIL|ERROR): (\w+) \(([\w.]+)\)", line)
        if m:
            results[_unittest_id(m.group(2), m.group(3))] = "FAILED" if m.group(1) == "FAIL" else "ERROR"
    return results


def summaries(log: str) -> int:
    """How many pytest final counts ("=== 3 passed in 0.1s ===") the output holds: pytest prints one.
    More means something else printed one too (code under test forging a report, at exit, say)."""
    return sum(1 for line in strip_ansi(log).splitlines() if _SUMMARY.match(line.strip()))


def suite_ran(log: str, parser: str = "pytest") -> bool:
    """Whether the runner reached its final summary (otherwise the run is an infra error)."""
    lines = [line.strip() for line in strip_ansi(log).splitlines()[-30:]]
    if parser == "unittest":
        return any(_UT_RAN.match(line) for line in lines)
    return any(_SUMMARY.match(line) for line in lines)


PARSERS = {"pytest": parse_pytest, "unittest": parse_unittest}


def parse(log: str, parser: str = "pytest") -> dict[str, str]:
    if parser not in PARSERS:
        raise ValueError(f"unknown log parser {parser!r} (one of {sorted(PARSERS)})")
    return PARSERS[parser](log)


def passed(status: str | None) -> bool:
    return status in ("PASSED", "XFAIL", "XPASS")
