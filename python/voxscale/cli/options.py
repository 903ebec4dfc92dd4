"""Options shared by the ``voxscale`` sub-commands, and their conversion to the API's."""
from __future__ import annotations

import argparse
import math
import sys

from ..errors import OptionError, ResolutionRangeError
from ..fit.scan import ScanOptions
from ..pipeline.memory import parse_size
from ..reciprocal.shells import RESOLUTION_BOUNDS, check_resolution_range
from ..threads import MAX_THREADS

__all__ = ["nonnegative_int", "positive_int", "threads_count", "finite_float", "positive_float",
           "bounded_float", "resolution_value", "memory_size", "add_common_options",
           "add_pair_arguments", "add_scan_arguments", "scan_options", "add_resolution_argument",
           "resolution_range", "add_strict_option", "report_quality"]

_FLOAT32_MAX = 3.4028234663852886e38


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


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = nonnegative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (and within float32, as the kernels take it)."""
    value = finite_float(text)
    if not 0 < value < _FLOAT32_MAX:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def bounded_float(lo: float, hi: float, unit: str = ""):
    """argparse type: a number with lo < value <= hi."""
    def parse(text: str) -> float:
        value = finite_float(text)
        if not lo < value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range: give more than {lo:g} "
                                             f"and at most {hi:g}{unit}")
        return value
    return parse


def resolution_value(text: str) -> float:
    """argparse type: a resolution in Å within :data:`voxscale.reciprocal.shells.RESOLUTION_BOUNDS`."""
    value = finite_float(text)
    lo, hi = RESOLUTION_BOUNDS
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{text} Å is not a resolution: give {lo:g} to "
                                         f"{hi:g} Å")
    return value


def memory_size(text: str) -> int:
    """argparse type of ``--max-memory``: bytes of a size such as 8G or 512M."""
    try:
        return parse_size(text)
    except OptionError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def threads_count(text: str) -> int:
    """argparse type of ``--threads``: 0 (all cores) to :data:`voxscale.threads.MAX_THREADS`."""
    value = nonnegative_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"{value} is more than {MAX_THREADS}; give 0 for all "
                                         "cores")
    return value


def add_common_options(parser: argparse.ArgumentParser, *, threads: bool = True,
                       out: bool = True, max_memory: bool = False, force: bool = True,
                       force_help: str = "replace existing outputs") -> None:
    """Add --threads, --out, --max-memory, --force and --quiet as a command needs them.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    threads, out, max_memory, force : bool, optional
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
        parser.add_argument("--max-memory", metavar="SIZE", type=memory_size,
                            help="refuse to start when the estimated memory exceeds SIZE (e.g. "
                                 "8G; default 80 %% of the available memory)")
    if force:
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
    parser.add_argument("--range", nargs=2, type=finite_float, default=defaults.scale_range,
                        metavar=("LO", "HI"), help="factors to scan (default 0.95 1.05)")
    parser.add_argument("--step", type=positive_float, default=defaults.step,
                        help="finest step of the scan (default 0.002)")
    parser.add_argument("--contour", type=finite_float, default=None,
                        help="target contour level for the fit points (default: the molecular "
                             "envelope, where the target low-passed to 15 Å exceeds mean + 1 "
                             "sd)")
    parser.add_argument("--anisotropic", action="store_true",
                        help="also refine a symmetric 3x3 scale matrix (anisotropic "
                             "magnification)")


def scan_options(args: argparse.Namespace) -> ScanOptions:
    """The :class:`ScanOptions` of parsed scan arguments (validated; OptionError names them)."""
    try:
        return ScanOptions(scale_range=tuple(args.range), step=args.step, contour=args.contour,
                           anisotropic=args.anisotropic)
    except OptionError as err:
        raise OptionError(f"--range {args.range[0]:g} {args.range[1]:g} --step {args.step:g}: "
                          f"{err}") from None


def resolution_range(values):
    """(d_max, d_min) of ``--resolution DMAX DMIN`` (or (None, None) without it), checked.

    Raises
    ------
    ResolutionRangeError
        Naming the option.
    """
    if not values:
        return None, None
    try:
        return check_resolution_range(*values)
    except ResolutionRangeError as err:
        raise ResolutionRangeError(f"--resolution {values[0]:g} {values[1]:g}: {err}") from None


def add_strict_option(parser: argparse.ArgumentParser) -> None:
    """``--strict``: exit with status 3 when the result's verdict is not "ok"."""
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 3 when the result is not ok (a warning or "
                             "unreliable); the outputs are written either way")


def report_quality(command: str, quality: dict, strict: bool) -> int:
    """Print one line per reason of a verdict on stderr; the exit status (0, or 3 with
    ``--strict`` when the status is not "ok").

    Parameters
    ----------
    command : str
    quality : dict
        ``Quality.to_dict()``.
    strict : bool

    Returns
    -------
    int
    """
    for r in quality["reasons"]:
        print(f"voxscale {command}: {r['severity']}: {r['message']} [{r['code']}]",
              file=sys.stderr)
    return 3 if strict and quality["status"] != "ok" else 0


def add_resolution_argument(parser: argparse.ArgumentParser, default_help: str) -> None:
    """``--resolution DMAX DMIN`` in Å (the API's d_max, d_min)."""
    parser.add_argument("--resolution", nargs=2, type=resolution_value, metavar=("DMAX", "DMIN"),
                        help=f"resolution range in Å (default: {default_help})")
