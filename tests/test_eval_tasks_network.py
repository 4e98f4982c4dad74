"""Acceptance on the shipped tasks (needs PyPI for a cold cache; minutes): every task builds and
validates, `--oracle gold` resolves all of them, `--oracle empty` none, and the add-tests grader
rejects a trivial test on a real task. Uses $MINIMAX2_CACHE (or ~/.cache/minimax2) so that a warm
cache makes reruns fast."""
import pytest

from minimax2.eval import build, grading, records, results, runner
from minimax2.eval.patching import unified_diff

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.fixture(scope="module")
def built():
    cache = records.cache_dir()
    tasks = records.load_tasks()
    metas = [build.build_task(t, cache) for t in tasks]
    invalid = {m["instance_id"]: m.get("reason") for m in metas if m["status"] != "valid"}
    assert not invalid
    return cache, tasks


@pytest.mark.parametrize("mode,expected", [("gold", True), ("empty", False)])
def test_oracles(built, tmp_path, mode, expected):
    cache, tasks = built
    cfg = runner.RunConfig(run_id=f"oracle-{mode}", out_dir=tmp_path, cache=cache, oracle=mode, workers=2)
    run_dir = runner.run(tasks, cfg)
    recs = results.load_records(run_dir)
    assert len(recs) == len(tasks)
    wrong = {r["instance_id"]: r["grade_reason"] for r in recs if r["resolved"] is not expected}
    assert not wrong
    assert all(r["status"] != "infra_error" for r in recs)


def test_add_tests_grader_rejects_trivial_test_on_real_task(built):
    cache, _ = built
    task, folder = build.load_built("add_tests-pathspec-0.12.1-84", cache)
    trivial = unified_diff("", "def test_trivial():\n    assert True\n", "tests/test_trivial.py", old_exists=False)
    assert grading.grade(task, folder, trivial).status == "unresolved"
    assert grading.grade(task, folder, runner.oracle_patch(task, folder, "gold")).status == "resolved"
