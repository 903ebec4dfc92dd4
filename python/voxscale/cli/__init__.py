"""The ``voxscale`` command line: one module per sub-command.

Every command exits with status 0 on success and 2 with one line on stderr when an input or an
option is unusable (every :class:`voxscale.VoxscaleError`), and never prints a traceback for
such errors; anything else is a bug and keeps its traceback.

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
import sys
import warnings

from .._version import __version__
from ..errors import VoxscaleError

__all__ = ["main", "build_parser", "COMMANDS"]

#: The sub-commands, in the order of ``voxscale --help``: module names in this package.
COMMANDS = ("info", "scan", "diff", "compare", "expansion", "absolute", "batch", "demo")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``voxscale`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
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
        Exit status: 0 success, 2 unusable input or option.
    """
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits with status 2 on bad options

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        print(f"voxscale {args.command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = one_line_warning  # restored when the block ends
        try:
            return args.run(args)
        except VoxscaleError as err:
            print(f"voxscale {args.command}: error: {err}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
