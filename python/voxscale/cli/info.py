"""``voxscale info MAP``: a map's grid, voxel size, origin and statistics."""
from __future__ import annotations

import argparse

import numpy as np

from ..maps.mrc import read_map
from ..pipeline.memory import check_memory
from .options import add_common_options

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register the sub-command."""
    p = subparsers.add_parser("info", help="print a map's grid, voxel size, origin and "
                                           "statistics")
    p.add_argument("map", help="MRC/CCP4 map (.mrc, .map, .ccp4, optionally .gz)")
    add_common_options(p, threads=False, out=False, max_memory=True, force=False)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the map's header and statistics; 0."""
    check_memory("info", args.map, limit=args.max_memory)
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
