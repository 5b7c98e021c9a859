"""A progress display for long passes (``detcore test``, ``detcore infer`` on videos) on stderr.

On a terminal it redraws one bar line with the rate and the time left; elsewhere (logs, CI) it
prints a plain line every tenth of the work (every ``50`` items when the total is unknown).
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import TextIO


class Progress:
    """Counts done items of ``total`` (None: unknown, e.g. a camera) and shows it on ``stream``."""

    def __init__(self, total: int | None, label: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = total if total and total > 0 else None
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.start = time.perf_counter()
        self._next_line = self._step()

    def _step(self) -> int:
        return max(self.total // 10, 1) if self.total else 50

    def update(self, count: int = 1) -> None:
        self.done += count
        if not self.enabled:
            return
        if self.interactive:
            self.stream.write("\r" + self.text() + " ")
            self.stream.flush()
        elif self.done >= self._next_line or self.done == self.total:
            self.stream.write(self.text() + "\n")
            self.stream.flush()
            self._next_line = self.done + self._step()

    def text(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total is None:
            return f"{self.label}: {self.done} done, {rate:.1f}/s"
        width = 30
        filled = int(width * min(self.done, self.total) / self.total)
        eta = datetime.timedelta(seconds=int((self.total - self.done) / rate)) if rate > 0 else "?"
        return f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}, {rate:.1f}/s, ETA {eta}"

    def close(self) -> None:
        if self.enabled and self.interactive:
            self.stream.write("\n")
            self.stream.flush()
