"""A tiny progress bar on standard error, for long commands (`db seed`, `replay`)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

_WIDTH = 30
_REDRAW_EVERY = 0.1  # seconds


class Progress:
    """Count work done out of `total` and redraw one line on stderr at most ten times a second.

    Disabled by default when stderr is not a terminal, so that logs and pipes stay clean.
    Use as a context manager: leaving it prints the final line.
    """

    def __init__(self, total: int, label: str, *, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.total = max(0, total)
        self.label = label
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._finished = False
        self._width = 0

    def advance(self, n: int = 1) -> None:
        """Record `n` more units of work; redraw when the last redraw is old enough."""
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn_at >= _REDRAW_EVERY:
            self._drawn_at = now
            self._draw(now, end="")

    def finish(self) -> None:
        """Print the final line (once)."""
        if self._finished:
            return
        self._finished = True
        if self.enabled:
            self._draw(time.monotonic(), end="\n")

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.finish()

    def _draw(self, now: float, *, end: str) -> None:
        elapsed = now - self._started
        fraction = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(fraction * _WIDTH)
        bar = "#" * filled + "." * (_WIDTH - filled)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        line = f"{self.label} [{bar}] {fraction:4.0%} {self.done}/{self.total} {elapsed:6.1f}s {rate:,.0f}/s"
        self._width = max(self._width, len(line))
        self.stream.write("\r" + line.ljust(self._width) + end)
        self.stream.flush()
