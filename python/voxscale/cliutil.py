"""Options shared by the ``voxscale`` sub-commands (kept apart from cli.py so that modules
defining their own sub-commands can use them without importing the whole command line)."""
from __future__ import annotations

import argparse

__all__ = ["nonnegative_int", "add_common_options"]


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0.

    Parameters
    ----------
    text : str

    Returns
    -------
    int
    """
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def add_common_options(parser: argparse.ArgumentParser, *, threads: bool = True,
                       out: bool = True, max_memory: bool = False,
                       force_help: str = "replace existing outputs") -> None:
    """Add --threads, --out, --max-memory, --force and --quiet as a command needs them.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    threads, out, max_memory : bool, optional
        Which of these options the command has.
    force_help : str, optional
        What --force does for this command.
    """
    if threads:
        parser.add_argument("--threads", type=nonnegative_int, default=0,
                            help="threads (default 0 = all cores)")
    if out:
        parser.add_argument("--out", required=True, help="output folder")
    if max_memory:
        parser.add_argument("--max-memory", metavar="SIZE",
                            help="refuse to start when the estimated memory exceeds SIZE (e.g. "
                                 "8G; default 80 %% of the available memory)")
    parser.add_argument("--force", action="store_true", help=force_help)
    parser.add_argument("--quiet", action="store_true", help="no progress or summary")
