"""Progress of a long command (`monitor poll`, `db prune`, `rules backfill`) on stderr.

On a terminal it is one line redrawn in place with `\\r` (a bar when the total
is known, a count when it is not); anywhere else (a log file, a pipe, CI,
journald) it is plain lines, at most one every few seconds, because a `\\r`
there leaves one garbled line per update. No dependency: a bar is a few
characters, not worth a package in the image.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 24
TTY_EVERY = 0.1  # seconds between two redraws: a terminal does not need more


def on_terminal(stream: TextIO) -> bool:
    """Whether `stream` is a terminal that understands `\\r` redraws."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
    return tty and os.environ.get("TERM") != "dumb"


class Progress:
    """Counts work done out of `total` (None: unknown) and shows it on `stream`.

    `update` sets the count, `advance` adds to it (both thread-safe: poll workers
    report from their threads); `message` prints a line of its own without
    breaking the bar; `close` (or leaving the `with` block) prints the final
    state. Plain lines come at most every `every` seconds, never when `every`
    is None (for commands whose own messages already say how far they are).
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        stream: TextIO | None = None,
        *,
        every: float | None = 2.0,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = on_terminal(self.stream) if tty is None else tty
        self.every = every
        self.clock = clock
        self.done = 0
        self.detail = ""
        self._lock = threading.Lock()
        self._shown: int | None = None  # the count last written (plain) or drawn (tty)
        self._last = float("-inf")  # when it was
        self._drawn = False  # a bar is on the terminal's current line
        self._closed = False

    def update(self, done: int, detail: str = "") -> None:
        with self._lock:
            self.done = done
            self.detail = detail
            self._show(final=False)

    def advance(self, step: int = 1, detail: str = "") -> None:
        with self._lock:
            self.done += step
            self.detail = detail
            self._show(final=False)

    def message(self, text: str) -> None:
        """A line of its own (a feed's report, a warning), above the bar on a terminal."""
        with self._lock:
            if self.tty and self._drawn:
                self.stream.write("\r\x1b[K")
            self.stream.write(text + "\n")
            if self.tty and self._drawn:
                self.stream.write(self._line())
            self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._show(final=True)
            if self.tty and self._drawn:
                self.stream.write("\n")
                self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _show(self, final: bool) -> None:
        now = self.clock()
        if self.tty:
            finished = self.total is not None and self.done >= self.total
            if final and (self._drawn and self._shown == self.done or not self._drawn and self.done == 0):
                return  # drawn already, or nothing happened: no empty bar under an error message
            if not (final or finished) and now - self._last < TTY_EVERY:
                return
            self.stream.write(self._line())
            self._drawn = True
        else:
            if self.every is None or self._shown == self.done:
                return
            if not final and now - self._last < self.every:
                return
            self.stream.write(self._text() + "\n")
        self._shown, self._last = self.done, now
        self.stream.flush()

    def _text(self) -> str:
        if self.total is None:
            count = f"{self.done}"
        else:
            count = f"{self.done}/{self.total}"
        return f"{self.label}: {count}" + (f" {self.detail}" if self.detail else "")

    def _line(self) -> str:
        """`\\r` and the bar, cut to the terminal's width so that it never wraps
        (a wrapped line cannot be redrawn with `\\r`), then erase to the end."""
        if self.total:
            filled = min(BAR_WIDTH, BAR_WIDTH * self.done // self.total)
            percent = min(100, 100 * self.done // self.total)
            text = f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{self.total} {percent:3d}%"
            text += f" {self.detail}" if self.detail else ""
        else:
            text = self._text()
        columns = shutil.get_terminal_size((80, 24)).columns
        return "\r" + text[: max(10, columns - 1)] + "\x1b[K"
