"""The loading progress bar: GB read of the checkpoint's total, GB/s and time left (rich, on stderr)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)


class LoadProgress:
    def __init__(self, total_bytes: int, description: str = "loading weights", min_interval: float = 0.1):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=False),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                 transient=False)
        self.task = self.progress.add_task(description, total=total_bytes)
        self.done, self.shown, self.min_interval = 0, 0.0, min_interval
        self.start = time.monotonic()
        self.progress.start()

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if now - self.shown >= self.min_interval:  # rich's refresh is cheap, but a layer has 768 reads
            self.progress.update(self.task, completed=self.done)
            self.shown = now

    def close(self) -> None:
        self.progress.update(self.task, completed=self.done)
        self.progress.stop()
