"""Progress of long steps on stderr, through tqdm.

A bar is drawn only on a terminal (tqdm's own check), so output redirected to a log file gets
no carriage returns; ``--quiet`` turns it off altogether.
"""
from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["ProgressBar"]


class ProgressBar:
    """A progress callback ``bar(done, total, message)`` drawing one tqdm bar.

    Parameters
    ----------
    label : str
        What is being done.
    enabled : bool, optional
        False draws nothing (``--quiet``).
    stream : file, optional
        Default ``sys.stderr``.

    Examples
    --------
    >>> with ProgressBar("scan", enabled=False) as bar:
    ...     for i in range(3):
    ...         bar(i + 1, 3, "working")
    """

    def __init__(self, label: str, *, enabled: bool = True, stream=None):
        self._bar = tqdm(total=1, desc=label, file=sys.stderr if stream is None else stream,
                         disable=None if enabled else True, leave=True, dynamic_ncols=True,
                         bar_format="{desc} [{bar:28}] {n_fmt}/{total_fmt} {elapsed} {postfix}")

    def __call__(self, done: int, total: int, message: str = "") -> None:
        bar = self._bar
        bar.total = max(int(total), 1)
        bar.n = min(max(int(done), 0), bar.total)
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    def close(self) -> None:
        """End the bar (idempotent)."""
        self._bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
