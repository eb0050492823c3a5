"""The training progress display: a rich bar, or plain lines when not on a terminal."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """A rich progress bar with losses and images/s; plain lines when not on a terminal."""

    def __init__(self, total: int, start: int, batch_size: int, enabled: bool = True) -> None:
        self.total, self.batch_size, self.enabled = total, batch_size, enabled
        self.start_step = self.last_step = start
        self.last_time = time.perf_counter()
        self.images_done = 0
        self.sums: dict[str, Any] = {}
        self.count = 0
        self.shown: dict[str, float] = {}
        self.curve: list[dict[str, float]] = []  # mean losses of each run.log_every window
        self.bar = None
        self.plain_every = 0
        self.next_plain = start
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    TextColumn,
                    TimeRemainingColumn,
                )
                from rich.progress import Progress as RichProgress

                self.bar = RichProgress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                        TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                        console=console)
                self.task = self.bar.add_task("train", total=total, completed=start, info="")
                self.bar.start()
            else:  # logs and CI: about ten plain lines
                self.plain_every = max(1, (total - start) // 10)

    def update(self, step: int, losses: dict[str, Any], force: bool = False) -> None:
        """Accumulate this step's losses; refresh the display every ``run.log_every`` steps."""
        self.images_done += self.batch_size
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        if not force:
            return
        now = time.perf_counter()
        rate = (step - self.last_step) * self.batch_size / max(now - self.last_time, 1e-9)
        self.shown = {k: float(v) / self.count for k, v in self.sums.items()}
        self.curve.append({"step": step, **{k: round(v, 5) for k, v in self.shown.items()}})
        self.sums, self.count = {}, 0
        self.last_step, self.last_time = step, now
        info = "  ".join(f"{k} {v:.4f}" for k, v in self.shown.items()) + f"  {rate:.1f} img/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif self.plain_every and (step >= self.next_plain or step == self.total):
            self.next_plain = step + self.plain_every
            print(f"step {step}/{self.total}  {info}", file=sys.stderr, flush=True)

    def last_losses(self) -> dict[str, float]:
        """Mean losses of the last display window."""
        return {k: round(v, 5) for k, v in self.shown.items()}

    def close(self) -> None:
        """Stop the live display."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
