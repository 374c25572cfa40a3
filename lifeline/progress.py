"""Progress of long work: a bar on a terminal, plain lines in a log."""

from __future__ import annotations

import logging
import sys
import time

logger = logging.getLogger(__name__)


class Progress:
    """Counts steps of ``total``; redraws a bar on a terminal, or logs a
    line every ``every_seconds`` when stderr goes to a file or the journal."""

    def __init__(self, what: str, total: int, every_seconds: float = 5.0) -> None:
        self.what = what
        self.total = total
        self.count = 0
        self.started = time.monotonic()
        self.last = self.started
        self.every = every_seconds
        self.tty = sys.stderr.isatty()

    def step(self) -> None:
        self.count += 1
        now = time.monotonic()
        if self.tty:
            self._draw()
        elif now - self.last >= self.every:
            self.last = now
            logger.info("%s: %d/%d mails, %.0f/s", self.what, self.count, self.total, self._rate(now))

    def done(self) -> None:
        if self.tty and self.total:
            sys.stderr.write("\n")
        logger.info(
            "%s: %d mails in %.1f s", self.what, self.count, time.monotonic() - self.started
        )

    def _rate(self, now: float) -> float:
        return self.count / max(now - self.started, 1e-9)

    def _draw(self) -> None:
        width = 30
        share = self.count / self.total if self.total else 1.0
        bar = "#" * int(share * width)
        sys.stderr.write(
            f"\r{self.what} [{bar:<{width}}] {self.count}/{self.total} "
            f"{self._rate(time.monotonic()):.0f}/s"
        )
        sys.stderr.flush()
