"""Terminal progress for long stages: one line per epoch, an in-place batch counter on a TTY."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.perf_counter()
        self.live = sys.stderr.isatty()

    def batch(self, epoch: int, epochs: int, batch: int, batches: int) -> None:
        if self.live and (batch % 10 == 0 or batch == batches):
            print(f"\r[{self.label}] epoch {epoch}/{epochs} batch {batch}/{batches}",
                  end="", file=sys.stderr, flush=True)

    def log(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        prefix = "\r" if self.live else ""
        print(f"{prefix}[{self.label}] {message} ({elapsed:.1f} s)", file=sys.stderr, flush=True)
