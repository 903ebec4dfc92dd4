"""The ``voxscale`` command line.

Every command exits with status 0 on success, 2 with a one-line message on stderr when an input
is unusable (missing file, malformed map, bad option), and never prints a traceback for such
errors.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from . import __version__
from .errors import VoxscaleError
from .io import read_map

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    m = read_map(args.map)
    data = m.data
    nz, ny, nx = m.shape
    print(f"file        {args.map}")
    print(f"grid        {nx} x {ny} x {nz} (x, y, z)")
    print("voxel (Å)   " + ", ".join(f"{v:.4f}" for v in m.voxel_size))
    print("origin (Å)  " + ", ".join(f"{v:.3f}" for v in m.origin))
    print("box (Å)     " + ", ".join(f"{v:.2f}" for v in m.cell))
    print(f"density     min {data.min():.4g}  max {data.max():.4g}  "
          f"mean {data.mean(dtype=np.float64):.4g}  sd {data.std(dtype=np.float64):.4g}")
    print(f"Nyquist     {2 * float(np.max(m.voxel_size)):.3f} Å")
    return 0


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
    info = sub.add_parser("info", help="print a map's grid, voxel size, origin and statistics")
    info.add_argument("map", help="MRC/CCP4 map (.mrc, .map, .ccp4, optionally .gz)")
    info.set_defaults(run=_cmd_info)
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
        Exit status: 0 success, 2 unusable input.
    """
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits with status 2 on bad options
    try:
        return args.run(args)
    except (VoxscaleError, OSError, ValueError) as err:
        print(f"voxscale {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
