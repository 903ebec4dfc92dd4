"""A small progress bar on stderr for long steps (quiet when disabled)."""
from __future__ import annotations

import sys
import time

__all__ = ["ProgressBar"]


class ProgressBar:
    """Progress of a step with a known number of items, drawn on one line of stderr.

    Parameters
    ----------
    label : str
        What is being done.
    total : int
        Number of items.
    enabled : bool, optional
        Draw nothing when False (``--quiet``).
    stream : file, optional
        Default ``sys.stderr``.

    Examples
    --------
    >>> bar = ProgressBar("scan", 3, enabled=False)
    >>> for i in range(3):
    ...     bar.update(i + 1, "working")
    >>> bar.close()
    """

    width = 28

    def __init__(self, label: str, total: int, *, enabled: bool = True, stream=None):
        self.label, self.total, self.enabled = label, max(int(total), 1), enabled
        self.stream = sys.stderr if stream is None else stream
        self.start = time.perf_counter()
        self._last = ""

    def update(self, done: int, message: str = "") -> None:
        """Redraw with ``done`` items finished and a short message."""
        if not self.enabled:
            return
        done = min(max(int(done), 0), self.total)
        filled = int(self.width * done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        line = f"{self.label} [{bar}] {done}/{self.total} {elapsed:5.1f}s {message}"
        pad = max(len(self._last) - len(line), 0)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._last = line

    def close(self) -> None:
        """End the line."""
        if self.enabled and self._last:
            self.stream.write("\n")
            self.stream.flush()
