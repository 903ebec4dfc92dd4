"""``voxscale scan REF TARGET``: the voxel-scale scan alone."""
from __future__ import annotations

import argparse

from .._version import __version__
from ..errors import VoxscaleError
from ..fit.scan import corrected_target, scan_voxel_scale
from ..pipeline.compare import read_density, read_placed_model
from ..pipeline.memory import check_memory
from ..pipeline.output import OutputDir
from ..pipeline.plots import plot_scan
from .options import (add_common_options, add_pair_arguments, add_scan_arguments,
                      add_strict_option, report_quality, scan_options)
from .progress import ProgressBar

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register the sub-command."""
    p = subparsers.add_parser(
        "scan", help="find the relative voxel-scale factor of TARGET against REF",
        description="Scan the target's voxel-size factor, refitting it rigidly into the "
                    "reference at each factor; write scan.json, target_corrected.mrc (on the "
                    "reference grid) and scan.png into --out.")
    add_pair_arguments(p)
    add_scan_arguments(p)
    add_strict_option(p)
    add_common_options(p, max_memory=True)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Scan, correct, write scan.json, target_corrected.mrc and scan.png; 0."""
    names = ["scan.json", "target_corrected.mrc", "scan.png"]
    with OutputDir(args.out, names, force=args.force) as out:  # refuses before any work
        if bool(args.ref_model) != bool(args.target_model):
            raise VoxscaleError("give both --ref-model and --target-model, or neither")
        options = scan_options(args)
        check_memory("scan", args.ref, args.target, limit=args.max_memory)
        ref, target = read_density(args.ref, "reference"), read_density(args.target, "target")
        ref_model = read_placed_model(args.ref_model, ref, args.ref) if args.ref_model else None
        target_model = (read_placed_model(args.target_model, target, args.target)
                        if args.target_model else None)
        with ProgressBar("scan", enabled=not args.quiet) as bar:
            result = scan_voxel_scale(ref, target, ref_model, target_model, options=options,
                                      nthreads=args.threads, progress=bar)
        corrected = corrected_target(ref, target, result, nthreads=args.threads)
        report = result.to_dict()
        report["inputs"] = {"ref": str(args.ref), "target": str(args.target),
                            "ref_model": args.ref_model, "target_model": args.target_model}
        report["version"] = __version__
        out.create()
        corrected.write(out / "target_corrected.mrc")
        plot_scan(result, out / "scan.png")
        out.write_json("scan.json", report)
    if not args.quiet:
        print(f"voxel-scale factor {result.best_scale:.5f} ± {result.uncertainty:.5f} "
              f"({result.percent:+.3f} %); cc {result.cc_at_unit:.4f} at s = 1 -> "
              f"{result.cc_best:.4f}; {result.quality.status}; {result.seconds:.1f} s; "
              f"written to {out.path}")
    return report_quality("scan", result.quality.to_dict(), args.strict)
