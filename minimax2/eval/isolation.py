"""What isolates a sandboxed command on this machine: probed once, reported at start.

Levels, best first (the first whose probe passes is used):
  full     PID + IPC + UTS + network + mount namespaces (no shared memory outlives a command); the
           command runs as an unprivileged user (uid 65534 when the harness is root; the harness's
           own user mapped to root of a user namespace otherwise) with no capabilities; every mount read-only except the sandbox's folders;
           folders not reachable by that user (a 0700 home holding the interpreter) are covered
           by an empty tmpfs with only the interpreter's prefix put back.
  pidns    PID + IPC + UTS + network namespaces only: killing the command kills everything it started.
  netns    `unshare -n` only: no network; process-group kill plus reaping by an environment marker.
  none     process-group kill plus marker reaping.
File-size limit (RLIMIT_FSIZE), the disk cap and the minimal environment hold at every level.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 65534  # nobody: the host user commands run as when the harness is root
INIT = Path(__file__).with_name("sandbox_init.py")
DROP_CAPS = ("setpriv", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all")
LEVELS = ("full", "pidns", "netns", "none")


@dataclass(frozen=True)
class Isolation:
    level: str
    as_root: bool  # the harness runs as root: commands drop to SANDBOX_UID

    @property
    def protections(self) -> dict[str, bool]:
        full, pid = self.level == "full", self.level in ("full", "pidns")
        return {"kill everything a command started (PID namespace)": pid,
                "no network (network namespace)": self.level != "none",
                "unprivileged user, no capabilities": full,
                "read-only filesystem outside the sandbox folders": full,
                "file size limit (RLIMIT_FSIZE)": True, "sandbox disk cap": True,
                "minimal allow-listed environment": True}

    def describe(self) -> str:
        lines = [f"eval sandbox isolation: level {self.level!r}"]
        lines += [f"  [{'on ' if on else 'OFF'}] {name}" for name, on in self.protections.items()]
        return "\n".join(lines)

    def argv(self, script: str, writable: list[Path], reveal: list[Path], network: bool,
             cover: list[Path] = ()) -> list[str]:
        """The command line that runs `bash -c script` at this level (`cover`: paths the command must
        not see, e.g. where answers are kept; only the full level can hide them)."""
        net = [] if network else ["--net"]
        user = [] if self.as_root else ["--user", "--map-root-user"]
        if self.level == "full":
            spec = mount_spec(writable, reveal, SANDBOX_UID if self.as_root else os.getuid(), cover)
            drop = [*DROP_CAPS[:1], f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}",
                    "--clear-groups", *DROP_CAPS[1:]] if self.as_root else list(DROP_CAPS)
            return ["unshare", *user, "--mount", "--pid", "--ipc", "--uts", "--fork", "--mount-proc", "--kill-child",
                    *net,
                    "--", sys.executable, "-I", "-S", str(INIT), json.dumps(spec),
                    *drop, "--", "bash", "-c", script]
        if self.level == "pidns":
            return ["unshare", *user, "--pid", "--ipc", "--uts", "--fork", "--mount-proc", "--kill-child", *net,
                    "--", "bash", "-c", script]
        if self.level == "netns" and not network:
            return ["unshare", "-n" if self.as_root else "-rn", "--", "bash", "-c", script]
        return ["bash", "-c", script]

    def prepare(self, writable: list[Path]) -> None:
        """Give the sandbox's folders to the unprivileged user (the harness may have added files)."""
        if self.level != "full" or not self.as_root:
            return
        for top in writable:
            os.lchown(top, SANDBOX_UID, SANDBOX_UID)
            for root, dirs, files in os.walk(top):
                for name in dirs + files:
                    os.lchown(os.path.join(root, name), SANDBOX_UID, SANDBOX_UID)


def _closed_ancestor(path: Path, uid: int) -> Path | None:
    """The highest ancestor of path that `uid` cannot traverse (not its own, no o+x)."""
    for parent in reversed(path.parents):  # from / downwards
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            return parent
    return None


_concealed: set[Path] = set()


def conceal(*paths: Path | str) -> None:
    """Hide these paths from every sandboxed command of this process (task records, the build cache,
    results: whatever holds answers), even where the sandbox's user could read them."""
    _concealed.update(Path(os.path.realpath(p)) for p in paths if p)


def concealed() -> list[Path]:
    return sorted(_concealed)


# What a command needs of the host's tree; every other top-level folder (/home, /work, /opt, /srv,
# /mnt: where checkouts of this project, with every task's record in their history, and other
# installs live) and every other entry of /tmp and /var/tmp is covered, best effort.
SYSTEM_TOP = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys",
              "usr", "tmp", "var"}


def clutter() -> list[Path]:
    """Host paths no command needs: top-level folders outside SYSTEM_TOP, and the entries of the shared
    temporary folders (other runs, other tools' caches)."""
    out = []
    for parent, keep in ((Path("/"), SYSTEM_TOP), (Path("/tmp"), set()), (Path("/var/tmp"), set())):
        try:
            out += [parent / name for name in sorted(os.listdir(parent)) if name not in keep]
        except OSError:
            continue
    return out


def mount_spec(writable: list[Path], reveal: list[Path], uid: int, cover: list[Path] = ()) -> dict:
    paths = sorted({Path(os.path.realpath(p)) for p in [*writable, *reveal]}, key=lambda p: len(p.parts))
    hide, shown = [], []
    for path in paths:
        top = _closed_ancestor(path, uid)
        if top is None or any(path == s or s in path.parents for s in shown):
            continue
        shown.append(path)
        if top not in hide:
            hide.append(top)
    keep = [*paths]  # a cover over one of these (or above it) would hide the sandbox's own folders

    def usable(paths) -> list[str]:
        return [str(c) for c in dict.fromkeys(Path(os.path.realpath(c)) for c in paths)
                if not any(k == c or c in k.parents for k in keep)]

    return {"reveal": [str(p) for p in shown], "hide": [str(h) for h in hide],
            "writable": [str(os.path.realpath(w)) for w in writable], "cover": usable(cover),
            "tidy": usable(clutter())}


def interpreter_prefix(venv: Path | None) -> list[Path]:
    exe = Path(os.path.realpath((venv / "bin" / "python") if venv else sys.executable))
    return [exe.parent.parent]


def _probe(level: str, as_root: bool) -> bool:
    iso = Isolation(level, as_root)
    with tempfile.TemporaryDirectory(prefix="minimax2-probe-") as tmp:
        box = Path(tmp) / "box"
        box.mkdir()
        script = f': > "{box}/ok" && {{ : > "{tmp}/escaped"; }} 2>/dev/null; exit 0'
        try:
            iso.prepare([box])
            argv = iso.argv(script, [box], interpreter_prefix(None), network=False)
            proc = subprocess.run(argv, capture_output=True, timeout=30, cwd=box)
        except (OSError, subprocess.TimeoutExpired):
            return False
        ok = proc.returncode == 0 and (box / "ok").exists()
        return ok and (level != "full" or not (Path(tmp) / "escaped").exists())


@functools.cache
def detect() -> Isolation:
    """The best level that works here; warns loudly (stderr and warnings) about what is off."""
    as_root = os.geteuid() == 0
    usable = shutil.which("unshare") is not None
    level = "none"
    for candidate in LEVELS[:-1]:
        if usable and (candidate != "full" or shutil.which("setpriv")) and _probe(candidate, as_root):
            level = candidate
            break
    iso = Isolation(level, as_root)
    off = [name for name, on in iso.protections.items() if not on]
    if off:
        msg = f"eval sandbox: protections NOT active on this machine: {'; '.join(off)}"
        warnings.warn(msg)
        print(f"WARNING: {msg}", file=sys.stderr)
    return iso


def reap(marker: str) -> int:
    """SIGKILL every process whose environment carries the run's marker (fallback levels)."""
    killed, needle = 0, f"MINIMAX2_SANDBOX_RUN={marker}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    os.kill(int(entry), signal.SIGKILL)
                    killed += 1
        except (OSError, ProcessLookupError):
            continue
    return killed
