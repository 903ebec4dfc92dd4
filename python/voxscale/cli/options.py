"""Options shared by the ``voxscale`` sub-commands, and their conversion to the API's."""
from __future__ import annotations

import argparse

from ..fit.scan import ScanOptions
from ..threads import MAX_THREADS

__all__ = ["nonnegative_int", "threads_count", "add_common_options", "add_pair_arguments",
           "add_scan_arguments", "scan_options", "add_resolution_argument"]


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0.

    Parameters
    ----------
    text : str

    Returns
    -------
    int
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def threads_count(text: str) -> int:
    """argparse type of ``--threads``: 0 (all cores) to :data:`voxscale.threads.MAX_THREADS`."""
    value = nonnegative_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"{value} is more than {MAX_THREADS}; give 0 for all "
                                         "cores")
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
        parser.add_argument("--threads", type=threads_count, default=0,
                            help="threads (default 0 = all cores)")
    if out:
        parser.add_argument("--out", required=True, help="output folder")
    if max_memory:
        parser.add_argument("--max-memory", metavar="SIZE",
                            help="refuse to start when the estimated memory exceeds SIZE (e.g. "
                                 "8G; default 80 %% of the available memory)")
    parser.add_argument("--force", action="store_true", help=force_help)
    parser.add_argument("--quiet", action="store_true", help="no progress or summary")


def add_pair_arguments(parser: argparse.ArgumentParser, *, model_help: str = "") -> None:
    """The two maps and their models."""
    parser.add_argument("ref", help="reference map")
    parser.add_argument("target", help="target map")
    parser.add_argument("--ref-model", help=f"model of the reference (PDB/mmCIF){model_help}")
    parser.add_argument("--target-model", help=f"model of the target (PDB/mmCIF){model_help}")


def add_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the voxel-scale scan (see :class:`voxscale.fit.ScanOptions`)."""
    defaults = ScanOptions()
    parser.add_argument("--range", nargs=2, type=float, default=defaults.scale_range,
                        metavar=("LO", "HI"), help="factors to scan (default 0.95 1.05)")
    parser.add_argument("--step", type=float, default=defaults.step,
                        help="finest step of the scan (default 0.002)")
    parser.add_argument("--contour", type=float, default=None,
                        help="target contour level for the fit points (default: the molecular "
                             "envelope, where the target low-passed to 15 Å exceeds mean + 1 "
                             "sd)")
    parser.add_argument("--anisotropic", action="store_true",
                        help="also refine a symmetric 3x3 scale matrix (anisotropic "
                             "magnification)")


def scan_options(args: argparse.Namespace) -> ScanOptions:
    """The :class:`ScanOptions` of parsed scan arguments (validated; OptionError names them)."""
    return ScanOptions(scale_range=tuple(args.range), step=args.step, contour=args.contour,
                       anisotropic=args.anisotropic)


def add_resolution_argument(parser: argparse.ArgumentParser, default_help: str) -> None:
    """``--resolution DMAX DMIN`` in Å (the API's d_max, d_min)."""
    parser.add_argument("--resolution", nargs=2, type=float, metavar=("DMAX", "DMIN"),
                        help=f"resolution range in Å (default: {default_help})")
