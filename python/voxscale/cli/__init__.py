"""The ``voxscale`` command line: one module per sub-command.

Every command exits with status 0 on success and 2 with one line on stderr when an input or an
option is unusable (every :class:`voxscale.VoxscaleError`, and argparse's own errors), and
never prints a traceback for such errors; anything else is a bug and keeps its traceback.
Interrupted by SIGINT (Ctrl-C) or SIGTERM, a command removes what it had staged, prints one
line and exits with 128 + the signal number (130, 143).

Modules
-------
options
    Options shared by the sub-commands.
progress
    The progress bar (tqdm).
info, scan, diff, compare, expansion, absolute, batch, demo
    The sub-commands, each with ``add_parser(subparsers)`` and ``run(args)``.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import warnings
from contextlib import contextmanager

from .._version import __version__
from ..errors import VoxscaleError

__all__ = ["main", "build_parser", "COMMANDS"]

#: The sub-commands, in the order of ``voxscale --help``: module names in this package.
COMMANDS = ("info", "scan", "diff", "compare", "expansion", "absolute", "batch", "demo")


class _OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that every cleanup runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM raises :class:`Interrupted` while the command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``voxscale`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = _OneLineParser(
        prog="voxscale",
        description="Find and correct voxel-size errors between cryo-EM maps and compare them.")
    parser.add_argument("--version", action="version", version=f"voxscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 success, 2 unusable input or option, 130 (SIGINT) or 143 (SIGTERM)
        when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits with status 2 on bad options

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        print(f"voxscale {args.command}: warning: {' '.join(str(message).split())}",
              file=sys.stderr)

    with warnings.catch_warnings(), _terminate_as_interrupt():
        warnings.showwarning = one_line_warning  # restored when the block ends
        try:
            return args.run(args)
        except VoxscaleError as err:
            print(f"voxscale {args.command}: error: {' '.join(str(err).split())}",
                  file=sys.stderr)
            return 2
        except KeyboardInterrupt as err:
            signum = getattr(err, "signum", signal.SIGINT)
            print(f"voxscale {args.command}: interrupted ({signal.Signals(signum).name}); "
                  "nothing of this run was kept", file=sys.stderr)
            return 128 + int(signum)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
