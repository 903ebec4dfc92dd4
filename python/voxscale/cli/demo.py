"""``voxscale demo``: the whole comparison on a pair the package makes itself."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ..errors import OptionError
from ..testing.demo import DEMO_FACTOR, DEMO_SUBSTITUTIONS, demo_inputs
from .compare import run_compare
from .options import add_common_options, nonnegative_int

__all__ = ["add_parser", "run"]

#: Reference box edges (voxels) the demo accepts: the bundle must fit, and the run stay short.
SIZE_RANGE = (48, 160)


def add_parser(subparsers) -> None:
    """Register the sub-command."""
    p = subparsers.add_parser(
        "demo", help="run the whole comparison on a generated map pair (no input files)",
        description="Build a test molecule, make a reference map and a target map with a known "
                    "voxel-size error and a few substitutions, and run 'voxscale compare' on "
                    "them; summary.json adds demo_truth.")
    p.add_argument("--out", default="voxscale-demo", help="output folder (default voxscale-demo)")
    p.add_argument("--size", type=nonnegative_int, default=64,
                   help=f"reference box edge in voxels ({SIZE_RANGE[0]}-{SIZE_RANGE[1]}, "
                        "default 64)")
    add_common_options(p, out=False, force_help="write into an existing folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Make the pair, compare it, print the truth beside the result; 0."""
    lo, hi = SIZE_RANGE
    if not lo <= args.size <= hi:
        raise OptionError(f"--size {args.size} is out of range: give {lo} to {hi} voxels")
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="voxscale-demo-") as tmp:
        made = demo_inputs(tmp, size=args.size)
        if not args.quiet:
            print("voxscale demo: a four-helix bundle; the target has a voxel-size error of "
                  f"{100 * (DEMO_FACTOR - 1):.1f} % and {len(DEMO_SUBSTITUTIONS)} residues "
                  "substituted by alanine", file=sys.stderr)
        summary = run_compare(made["ref"], made["target"], out,
                              ref_model_path=str(made["ref_model"]),
                              target_model_path=str(made["target_model"]),
                              threads=args.threads, force=args.force, quiet=args.quiet,
                              extra={"demo_truth": made["truth"]},
                              inputs={"ref": "demo reference map (generated)",
                                      "target": "demo target map (generated)",
                                      "ref_model": "helix bundle (generated)",
                                      "target_model": "helix bundle with substitutions"})
    if not args.quiet:
        truth = made["truth"]
        print(f"true factor {truth['scale']:.5f}, recovered "
              f"{summary['voxel_scale']['best_scale']:.5f}; substituted "
              + ", ".join(f"{s['chain']}/{s['from']}{s['number']}" for s in
                          truth["substitutions"]))
    return 0
