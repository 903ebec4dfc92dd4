"""``voxscale absolute MAP MODEL``: absolute-scale hints for a map from its own model."""
from __future__ import annotations

import argparse
import sys

from .._version import __version__
from ..analysis.absolute_scale import absolute_scale
from ..pipeline.memory import check_memory
from ..pipeline.output import OutputDir
from ..pipeline.plots import plot_absolute
from .options import (add_common_options, bounded_float, finite_float, nonnegative_int,
                      positive_float, resolution_value)
from .progress import ProgressBar

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register the sub-command."""
    p = subparsers.add_parser(
        "absolute", help="absolute-scale hints for MAP from its model MODEL",
        description="Model-to-map correlation as a function of the map's voxel-scale factor "
                    "(model refitted at each) and backbone bond lengths against ideal values. "
                    "Factors are for the map's voxel size (s < 1: header voxel too large). "
                    "Writes absolute.json and absolute.png into --out.")
    p.add_argument("map", help="map (MRC/CCP4)")
    p.add_argument("model", help="its atomic model (PDB/mmCIF), placed in the map")
    p.add_argument("--resolution", type=resolution_value, default=None, metavar="DMIN",
                   help="map resolution in Å for the model map (default 2.5 × voxel size; "
                        "giving the real one is better)")
    p.add_argument("--range", nargs=2, type=finite_float, default=(0.95, 1.05),
                   metavar=("LO", "HI"),
                   help="factors of the curve (default 0.95 1.05)")
    p.add_argument("--step", type=positive_float, default=0.005,
                   help="step of the curve (default 0.005)")
    p.add_argument("--mask-radius", type=bounded_float(0.0, 20.0, " Å"), default=3.0,
                   help="mask radius around atoms in Å (default 3)")
    p.add_argument("--max-points", type=nonnegative_int, default=100000,
                   help="fit at most about this many map points (default 100000, 0 = all)")
    add_common_options(p, max_memory=True)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compute the hints, write absolute.json and absolute.png; 0."""
    with OutputDir(args.out, ["absolute.json", "absolute.png"], force=args.force) as out:
        check_memory("absolute", args.map, limit=args.max_memory)
        with ProgressBar("absolute", enabled=not args.quiet) as bar:
            result = absolute_scale(args.map, args.model, d_min=args.resolution,
                                    scale_range=tuple(args.range), step=args.step,
                                    mask_radius=args.mask_radius, max_points=args.max_points,
                                    nthreads=args.threads, progress=bar)
        report = result.to_dict()
        report["version"] = __version__
        out.create()
        plot_absolute(result, out / "absolute.png")
        out.write_json("absolute.json", report)
    if result.peak_at_edge and not args.quiet:
        print(f"voxscale absolute: warning: the correlation is largest at the end of the range "
              f"({result.model_cc_best_scale:.4f}); widen --range", file=sys.stderr)
    if not args.quiet:
        note = " (estimated; give --resolution)" if result.resolution_source == "estimated" else ""
        print(f"model-map correlation peaks at s = {result.model_cc_best_scale:.4f} "
              f"({result.percent:+.2f} %, cc {result.model_cc_best:.4f}); bonds imply "
              f"s = {result.bond_scale:.4f} ± {result.bond_scale_se:.4f}; resolution "
              f"{result.resolution:.2f} Å{note}; written to {out.path}")
    return 0
