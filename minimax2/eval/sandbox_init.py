"""First process inside a sandbox's fresh mount namespace, run as (namespace) root before the command.

Usage: python -I -S sandbox_init.py SPEC_JSON COMMAND...
SPEC: {"reveal": [paths], "hide": [dirs], "writable": [dirs], "cover": [paths]}
1. `reveal` paths are cloned (open_tree), `hide` dirs are covered by an empty read-only tmpfs
   (a home directory that holds the interpreter, say), and the clones are put back at their old
   paths, so the command sees them and nothing else of the hidden folder.
2. Every `cover` path (where answers are kept, even inside what was revealed) is covered too: a
   folder by an empty tmpfs, a file by /dev/null; then every `tidy` path (host clutter) the same
   way, best effort (one that cannot be covered is left, not fatal).
3. Every `writable` dir is bind-mounted onto itself; every other mount is remounted read-only.
4. exec COMMAND (which drops the user and capabilities: see isolation.py).
Any failure exits 125 before the command starts: the sandbox never runs a command half-isolated.
Standard library only, no site: it must start in a few milliseconds.
"""
import ctypes
import json
import os
import re
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
# statvfs f_flag bit -> the mount flag that must be passed again when remounting (locked flags)
KEPT_FLAGS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME,
              2048: MS_NODIRATIME, 4096: MS_RELATIME}
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429  # the same number on every architecture
OPEN_TREE_CLONE, AT_RECURSIVE, AT_FDCWD, MOVE_MOUNT_F_EMPTY_PATH = 1, 0x8000, -100, 4
LIBC = ctypes.CDLL(None, use_errno=True)


def fail(message: str) -> None:
    print(f"minimax2 sandbox: setup failed, command not run: {message}", file=sys.stderr)
    sys.exit(125)


def checked(ret: int, what: str) -> int:
    if ret < 0:
        fail(f"{what}: {os.strerror(ctypes.get_errno())}")
    return ret


def mount(source, target: str, fstype, flags: int, data=None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    checked(LIBC.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        fields = [line.split()[4] for line in f]
    return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), p) for p in fields]


def inside(path: str, dirs: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def cover(path: str, required: bool) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        args = ("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
    elif os.path.isfile(path) and not os.path.islink(path):
        args = ("/dev/null", path, None, MS_BIND)
    else:
        return  # gone, a link (its target is what counts) or a socket/FIFO: nothing to read
    if required:
        mount(*args)
    else:
        LIBC.mount(*(None if a is None else a.encode() if isinstance(a, str) else a for a in args))


def main() -> None:
    spec, command = json.loads(sys.argv[1]), sys.argv[2:]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    clones = {p: checked(LIBC.syscall(SYS_OPEN_TREE, AT_FDCWD, p.encode(), OPEN_TREE_CLONE | AT_RECURSIVE),
                         f"open_tree {p}") for p in spec["reveal"]}
    for top in spec["hide"]:
        mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
    for path, fd in clones.items():
        os.makedirs(path, exist_ok=True)
        checked(LIBC.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, path.encode(), MOVE_MOUNT_F_EMPTY_PATH),
                f"move_mount {path}")
    for path in spec.get("cover", []):
        cover(path, required=True)
    for path in spec.get("tidy", []):
        cover(path, required=False)
    for path in spec["writable"]:
        mount(path, path, None, MS_BIND | MS_REC)
    for point in mount_points():
        if inside(point, spec["writable"]):
            continue
        try:
            flags = os.statvfs(point).f_flag
        except OSError:
            continue  # covered by a later mount: unreachable by path
        if flags & 1:
            continue
        kept = sum(ms for bit, ms in KEPT_FLAGS.items() if flags & bit)
        mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
    try:
        os.chdir(os.getcwd())  # the working directory still pins the mount it was on: take the new one
    except FileNotFoundError:  # it was under a covered folder (the harness's own, in a probe)
        os.chdir("/")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
