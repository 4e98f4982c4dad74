"""Read a sandboxed command's output as it comes, into a bounded head + tail buffer, while
enforcing its wall-time limit and the sandbox's disk cap. Memory stays O(limit) whatever the
command prints (`yes` included)."""
from __future__ import annotations

import os
import selectors
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CHUNK = 1 << 16
GRACE_S = 2.0  # after a kill, how long we still wait for the pipe to close


class HeadTail:
    """Keeps the first and last `limit // 2` bytes of a stream and counts the rest."""

    def __init__(self, limit: int):
        self.half = max(1, limit // 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.half:  # trim in amortised O(1)
                del self.tail[:-self.half]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + min(len(self.tail), self.half)

    def text(self) -> str:
        tail = bytes(self.tail[-self.half:])
        head = self.head.decode("utf-8", errors="replace")
        if not self.truncated:
            return head + tail.decode("utf-8", errors="replace")
        cut = self.total - len(self.head) - len(tail)
        return (f"{head}\n[... {cut} bytes elided ...]\n"
                f"{tail.decode('utf-8', errors='replace')}")


def disk_usage(paths: list[Path]) -> int:
    """Bytes allocated under paths (symlinks not followed)."""
    total = 0
    stack = [str(p) for p in paths]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        continue
        except OSError:
            continue
    return total


@dataclass
class Collected:
    output: str
    truncated: bool
    timed_out: bool
    killed_reason: str  # "" | "timeout" | "disk cap"


def collect(proc: subprocess.Popen, timeout: float, limit: int, watch: list[Path], disk_limit: int,
            kill: Callable[[], None]) -> Collected:
    """Drain proc.stdout until EOF (or until GRACE_S after a kill); kill on timeout or disk cap."""
    buf, reason = HeadTail(limit), ""
    start = time.monotonic()
    deadline, hard_stop = start + timeout, None
    next_disk, disk_every = start + 0.25, 0.25
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    try:
        while True:
            now = time.monotonic()
            if hard_stop is not None and now >= hard_stop:
                break  # something outside our reach still holds the pipe: stop waiting for it
            if not reason and now >= deadline:
                reason = "timeout"
            if not reason and watch and now >= next_disk:
                t0 = time.monotonic()
                if disk_usage(watch) > disk_limit:
                    reason = "disk cap"
                disk_every = max(0.25, 5 * (time.monotonic() - t0))  # stay under ~20% of a core
                next_disk = time.monotonic() + disk_every
            if reason and hard_stop is None:
                kill()
                hard_stop = time.monotonic() + GRACE_S
            wake = min(x for x in (deadline, next_disk, hard_stop) if x is not None)
            if not sel.select(max(0.0, min(wake - time.monotonic(), 0.25))):
                continue
            data = os.read(fd, CHUNK)
            if not data:
                break
            buf.add(data)
    finally:
        sel.close()
    if reason == "disk cap":
        buf.add(f"\n[minimax2 sandbox: killed: disk use over the cap of {disk_limit} bytes]\n".encode())
    return Collected(buf.text(), buf.truncated, reason == "timeout", reason)
