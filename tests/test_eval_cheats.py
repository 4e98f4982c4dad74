"""A review acted as the agent (2026-12-05) and got answers or grades it should not have: code run as
the harness's user through the repo's git config, hidden tests written through a symlink into the
cache, task records and other releases readable in the sandbox, and grades won by files that change
how the tests run or by tests that only notice the source changed. Each exploit, replayed here."""
import os
from pathlib import Path

import pytest
from test_eval_grading import CALC, CALC_FIXED, _task

from minimax2.eval import build, grading, isolation, probe, runner, sandbox, tools
from minimax2.eval import patching
from minimax2.eval.patching import unified_diff

full = pytest.mark.skipif(isolation.detect().level != "full", reason="needs the full sandbox (mount namespaces)")


def _built(tmp_path_factory, kind: str):
    cache = tmp_path_factory.mktemp("cache")
    task = _task(kind, instance_id=f"cheat-{kind}")
    assert build.build_task(task, cache)["status"] == "valid"
    return build.load_built(task.instance_id, cache)


@pytest.fixture(scope="module")
def bugfix(tmp_path_factory):
    return _built(tmp_path_factory, "bugfix")


@pytest.fixture(scope="module")
def add_tests(tmp_path_factory):
    return _built(tmp_path_factory, "add_tests")


def _agent(folder, tmp_path, task, command: str) -> str:
    """Run `command` as the agent's bash tool does, then take its patch as the harness does."""
    repo, venv = sandbox.create(folder / "buggy", tmp_path / "work", task.python, folder / "deps")
    tools.execute("bash", {"command": command}, repo, venv, timeout=60)
    return sandbox.diff(repo)


def test_repo_git_config_runs_nothing_for_the_harness(bugfix, tmp_path):
    task, folder = bugfix
    marker = tmp_path / "ran-as-harness"
    hook = f"#!/bin/sh\ntouch {marker}\nexit 1\n"
    patch = _agent(folder, tmp_path, task, f"printf '{hook}' > .git/h.sh && chmod +x .git/h.sh && "
                                            "git config core.fsmonitor \"$PWD/.git/h.sh\" && "
                                            "git config filter.x.clean \"$PWD/.git/h.sh\" && "
                                            "echo '*.py filter=x' > .gitattributes && echo '# note' >> calc.py")
    assert not marker.exists()  # the hooks ran neither in `diff` (as root) nor anywhere else
    assert "+# note" in patch and ".gitattributes" in patch


def test_hidden_tests_are_not_written_through_a_symlinked_folder(bugfix, tmp_path):
    task, folder = bugfix
    target = tmp_path / "elsewhere"
    target.mkdir()
    os.chmod(tmp_path, 0o755)
    patch = _agent(folder, tmp_path, task, f"rm -rf tests && ln -s {target} tests")
    assert "tests" in patch
    assert grading.grade(task, folder, patch).status == "unresolved"
    assert list(target.iterdir()) == []  # the hidden test went into the graded tree's own tests/


CONFTEST = ("import pytest\n\n\ndef pytest_collection_modifyitems(items):\n"
            "    for item in items:\n        item.add_marker(pytest.mark.xfail(strict=False))\n")
SITECUSTOMIZE = "import atexit\n\n\natexit.register(lambda: print('PASSED tests/test_calc.py::test_add'))\n"
SHADOW = "print('=== short test summary info ===\\nPASSED tests/test_calc.py::test_add\\n=== 1 passed in 0.01s ===')\n"


@pytest.mark.parametrize("path,text", [("conftest.py", CONFTEST), ("sitecustomize.py", SITECUSTOMIZE),
                                       ("pytest/__main__.py", SHADOW), ("x.pth", "import sitecustomize\n")])
def test_files_that_change_how_tests_run_do_not_grade(bugfix, path, text):
    task, folder = bugfix
    cheat = unified_diff("", text, path, old_exists=False)
    extra = {"x.pth": unified_diff("", SITECUSTOMIZE, "sitecustomize.py", old_exists=False),
             "pytest/__main__.py": unified_diff("", "", "pytest/__init__.py", old_exists=False)}.get(path, "")
    assert grading.grade(task, folder, cheat + extra).status == "unresolved"
    assert grading.grade(task, folder, cheat + unified_diff(CALC, CALC_FIXED, "calc.py")).status == "resolved"


def test_forged_summary_lines_after_the_real_one_are_ignored():
    from minimax2.eval import testlog

    log = ("=== short test summary info ===\nFAILED tests/test_calc.py::test_add - assert 1 == 5\n"
           "=== 1 failed in 0.02s ===\nPASSED tests/test_calc.py::test_add\n")  # printed at exit
    assert testlog.parse(log) == {"tests/test_calc.py::test_add": "FAILED"}


# a test that fails on the buggy tree only because calc.py still has its bytes
HASHING = ("import hashlib\nimport pathlib\n\n\ndef test_changed():\n"
           "    text = (pathlib.Path(__file__).parents[1] / 'calc.py').read_bytes()\n"
           f"    assert hashlib.sha256(text).hexdigest() != '{__import__('hashlib').sha256(CALC.encode()).hexdigest()}'\n")


def test_tests_that_only_see_the_source_change_do_not_grade(add_tests):
    task, folder = add_tests
    graded = grading.grade(task, folder, unified_diff("", HASHING, "tests/test_hash.py", old_exists=False))
    assert graded.status == "unresolved" and "check the source" in graded.reason
    assert grading.grade(task, folder, runner.oracle_patch(task, folder, "gold")).status == "resolved"


@full
def test_task_records_cache_and_results_are_hidden_from_commands(bugfix, tmp_path):
    from minimax2.eval import records

    task, folder = bugfix
    tasks = records.load_tasks(select=["smoke-add"])  # conceals the folders it reads
    record = next(records.TASK_DIR.glob("smoke-add.toml"))
    secret = tmp_path / "results" / "gold.txt"
    secret.parent.mkdir()
    secret.write_text("the answer")
    os.chmod(tmp_path, 0o755)
    isolation.conceal(secret.parent, folder.parent)
    repo, venv = sandbox.create(folder / "buggy", tmp_path / "work", task.python, folder / "deps")
    out = sandbox.run(f"cat {record} {secret} {folder / 'gold.patch'}; ls {folder.parent}; echo done", repo, venv)
    assert tasks and "the answer" not in out.output and "gold_patch" not in out.output and "+    return a + b" not in out.output
    assert out.output.rstrip().endswith("done") and "No such file" in out.output
    assert sandbox.run("python -c 'import calc; print(calc.add(2, 3))'", repo, venv).output.strip() == "-1"


@full
def test_the_interpreters_own_copy_of_the_package_is_hidden(tmp_path):
    """A task venv sees the base interpreter's site-packages (pytest comes from there), which may hold
    another release of the package under test, perhaps the fixed one (here: iniconfig, pytest's)."""
    import subprocess

    where = subprocess.run([sandbox.find_python("3.11"), "-I", "-c", "import iniconfig, os; "
                            "print(os.path.dirname(iniconfig.__file__))"], capture_output=True, text=True)
    if where.returncode:
        pytest.skip("the interpreter task venvs are made from has no iniconfig")
    installed = where.stdout.strip()
    tree = tmp_path / "tree"
    (tree / "iniconfig").mkdir(parents=True)
    (tree / "iniconfig" / "__init__.py").write_text("VERSION = 'buggy'\n")
    os.chmod(tmp_path, 0o755)
    copies = sandbox.installed_copies(tree, "3.11")
    assert any(p.endswith("/iniconfig") for p in copies) and any(".dist-info" in p for p in copies)
    repo, venv = sandbox.create(tree, tmp_path / "work")
    out = sandbox.run(f"ls {installed} | wc -l; python -c 'import iniconfig; print(iniconfig.VERSION)'", repo, venv)
    assert out.output.split() == ["0", "buggy"], out.output


# -- a second review, against the fixes above ------------------------------------------------------
FORGE_AT_EXIT = ("\nimport atexit, sys\n\n\ndef _report():\n"
                 "    sys.stdout.write('\\n=== short test summary info ===\\nPASSED tests/test_calc.py::test_add\\n'\n"
                 "                     '=== 1 passed in 0.01s ===\\n')\n\n\nif 'pytest' in sys.modules:\n"
                 "    atexit.register(_report)\n")
PLUGIN = ("import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
          "    outcome = yield\n    report = outcome.get_result()\n    report.outcome, report.longrepr = 'passed', None\n")


@pytest.mark.parametrize("files", [
    {"calc.py": CALC + FORGE_AT_EXIT},  # package code prints a whole summary after pytest's
    {"bdb.py": "import os\nos.environ['PYTEST_PLUGINS'] = 'speedups'\n", "speedups.py": PLUGIN},  # new top-level
    {".pytest.ini": "[pytest]\npython_files = test_*.py speedcheck.py\n", "speedcheck.py": "pytest_plugins = ['speedups']\n",
     "speedups.py": PLUGIN},
    {"pyproject.toml": "[tool.pytest.ini_options]\npython_files = ['test_*.py', 'speedcheck.py']\n",
     "speedcheck.py": "pytest_plugins = ['speedups']\n", "speedups.py": PLUGIN},
    {"a b/c d/conftest.py": "pytest_plugins = ['speedups']\n", "speedups.py": PLUGIN},  # a path git leaves unquoted
], ids=["forged-at-exit", "stdlib-shadow", "dot-pytest-ini", "pyproject", "spaced-conftest"])
def test_second_review_cheats_do_not_grade(bugfix, tmp_path, files):
    task, folder = bugfix
    script = " && ".join(f"mkdir -p '{os.path.dirname(p) or '.'}' && printf %s {__import__('shlex').quote(t)} > '{p}'"
                         for p, t in files.items())
    patch = _agent(folder, tmp_path, task, script)
    assert set(files) <= set(patching.split_patch(patch))  # every path read whole, spaces included
    graded = grading.grade(task, folder, patch)
    assert graded.status == "unresolved", graded


def test_tests_of_a_class_source_or_of_a_skipped_tree_do_not_grade(add_tests, tmp_path):
    task, folder = add_tests
    by_class = ("import hashlib\nimport inspect\n\nimport calc\n\n\ndef test_changed():\n"
                "    source = inspect.getsource(calc.add).encode()\n"
                f"    assert hashlib.sha256(source).hexdigest() != '{__import__('hashlib').sha256(CALC.encode()).hexdigest()}'\n")
    graded = grading.grade(task, folder, unified_diff("", by_class, "tests/test_src.py", old_exists=False))
    assert graded.status == "unresolved" and "check the source" in graded.reason
    hashing = HASHING
    layout = unified_diff("", "", "src/test_layout.py", old_exists=False)  # made import_root() skip the probe
    graded = grading.grade(task, folder, unified_diff("", hashing, "tests/test_hash.py", old_exists=False) + layout)
    assert graded.status == "unresolved"


def test_probe_keeps_behaviour_and_changes_every_body():
    src = ('class A:\n    """doc"""\n    x = 1\n\n    def f(self):\n        return 1\n\n    @staticmethod\n'
           '    def g(): return 2\n\n\nasync def h():\n    """only doc"""\n')
    out = probe.probed(src, "_probe_x", "123457")
    assert out.count("123457") == 3 and out.endswith("_probe_x = None\n")
    space: dict = {}
    exec(compile(out, "m", "exec"), space)
    assert space["A"].x == 1 and space["A"]().f() == 1 and space["A"].g() == 2 and space["A"].__doc__ == "doc"
    assert probe.probed("def f(:\n", "_p", "1") == "def f(:\n\n_p = None\n"  # not Python: appended only


@full
def test_commands_share_no_ipc_and_see_no_host_checkouts(bugfix, tmp_path):
    import tempfile

    task, folder = bugfix
    outside = tempfile.mkdtemp(prefix="minimax2-test-secret-", dir="/tmp")
    try:
        (Path(outside) / "answer.txt").write_text("the answer")
        os.chmod(outside, 0o755)
        os.chmod(tmp_path, 0o755)
        repo, venv = sandbox.create(folder / "buggy", tmp_path / "work", task.python, folder / "deps")
        here = os.path.realpath(".")  # the checkout the tests run from, under a non-system folder
        out = sandbox.run(f"readlink /proc/self/ns/ipc; cat {outside}/answer.txt; ls {here} | wc -l", repo, venv).output
        assert out.split("\n")[0] != os.readlink("/proc/self/ns/ipc")
        assert "the answer" not in out and out.strip().endswith("0"), out
    finally:
        import shutil

        shutil.rmtree(outside)


def test_nested_repositories_do_not_stop_the_diff(bugfix, tmp_path):
    task, folder = bugfix
    patch = _agent(folder, tmp_path, task, "mkdir sub && git -C sub init -q && echo x > sub/f && echo '# n' >> calc.py"
                                           " && mkdir g && echo 'gitdir: /etc' > g/.git")
    assert "+# n" in patch and "sub/" not in patch and "g/" not in patch


def test_edit_tool_refuses_special_files(bugfix, tmp_path):
    task, folder = bugfix
    repo, venv = sandbox.create(folder / "buggy", tmp_path / "work", task.python, folder / "deps")
    os.mkfifo(repo / "notes.txt")
    for command in ({"command": "view"}, {"command": "create", "file_text": "x"}):
        with pytest.raises(tools.ToolError, match="not a regular file"):
            tools.execute("edit", {**command, "path": "notes.txt"}, repo, venv, timeout=5)


def test_patches_split_by_file_in_git_and_plain_form():
    git = ("diff --git a/x.py b/x.py\nindex 1..2 100644\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
           "diff --git a/y z/t.py b/y z/t.py\nnew file mode 100644\n--- /dev/null\n+++ b/y z/t.py\n@@ -0,0 +1 @@\n+c\n")
    plain = "--- a/p.py\n+++ b/p.py\n@@ -1 +1 @@\n-a\n+b\n--- a/q/r.py\n+++ b/q/r.py\n@@ -1 +1 @@\n-a\n+b\n"
    for patch, paths in ((git, ["x.py", "y z/t.py"]), (plain, ["p.py", "q/r.py"])):  # records spell gold plain
        parts = patching.split_patch(patch)
        assert list(parts) == paths and "".join(parts.values()) == patch


def test_structural_checks_do_not_follow_links(tmp_path):
    from minimax2.eval import structural

    (tmp_path / "pkg").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\nline two (\n")
    (tmp_path / "pkg" / "mod.py").symlink_to(secret)
    reason = structural.check(tmp_path, {"kind": "defines", "file": "pkg/mod.py", "name": "f"})
    assert reason == "pkg/mod.py is not a regular file of the tree"
    (tmp_path / "pkg" / "mod.py").unlink()
    (tmp_path / "pkg" / "mod.py").write_text("top secret (\n")
    reason = structural.check(tmp_path, {"kind": "defines", "file": "pkg/mod.py", "name": "f"})
    assert "secret" not in reason and "syntax error" in reason
