"""``voxscale diff REF TARGET``: amplitude scaling, difference map and peaks of a target
already on the reference grid."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from .._version import __version__
from ..errors import VoxscaleError
from ..pipeline.compare import (DEFAULT_MAX_DISTANCE, EDGE_RESOLUTION_ELEMENTS,
                                difference_quality, molecular_region, read_density,
                                read_placed_model, sigma_region)
from ..pipeline.memory import check_memory
from ..pipeline.output import OutputDir
from ..pipeline.plots import plot_shells
from ..reciprocal.difference import check_same_grid, vector_difference
from ..reciprocal.resolution import signal_resolution
from ..reciprocal.peaks import find_peaks
from .options import (add_common_options, add_resolution_argument, positive_float,
                      resolution_range)

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register the sub-command."""
    p = subparsers.add_parser(
        "diff", help="scale amplitudes by resolution, vector-difference map and its peaks",
        description="TARGET must already be on the reference grid (e.g. the scan's "
                    "target_corrected.mrc). Writes shells.json, difference.mrc (σ units, "
                    "target − reference), peaks.csv/.json/.cmm, structure_factors.mtz and "
                    "shells.png into --out.")
    p.add_argument("ref", help="reference map")
    p.add_argument("target", help="target map on the reference grid")
    add_resolution_argument(p, "all low-resolution terms to where both maps carry shared "
                               "signal: the maps' FSC = 0.5 or where a map's own signal ends")
    p.add_argument("--scaling", choices=("isotropic", "anisotropic", "scale"),
                   default="isotropic", help="amplitude scale model (default isotropic)")
    p.add_argument("--ref-model", help="reference model, for naming the peaks")
    p.add_argument("--target-model", help="target model, for naming the peaks")
    p.add_argument("--sigma", type=positive_float, default=4.0, help="peak threshold (default 4)")
    p.add_argument("--domains", nargs="+", metavar="PART",
                   help="refit these parts of the reference model separately (CHAIN or "
                        "CHAIN:FIRST-LAST); writes difference_local.mrc and domains.json, "
                        "and the peaks come from the locally realigned difference")
    add_common_options(p, max_memory=True)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Scale, difference, find peaks and write them; 0."""
    names = ["shells.json", "difference.mrc", "peaks.csv", "peaks.json", "peaks.cmm",
             "structure_factors.mtz", "shells.png"]
    if args.domains:
        if not args.ref_model:
            raise VoxscaleError("--domains needs --ref-model (the parts are taken from it)")
        names += ["difference_local.mrc", "domains.json"]
    with OutputDir(args.out, names, force=args.force) as out:
        resolution = resolution_range(args.resolution)
        check_memory("diff", args.ref, args.target, limit=args.max_memory)
        ref, target = read_density(args.ref, "reference"), read_density(args.target, "target")
        check_same_grid(ref, target)
        models = {}
        if args.ref_model:
            models["ref"] = read_placed_model(args.ref_model, ref, args.ref)
        if args.target_model:
            models["target"] = read_placed_model(args.target_model, target, args.target)
        if args.resolution:
            d_max, d_min = resolution
            why = "given"
        else:
            choice = signal_resolution(ref, target, nthreads=args.threads)
            d_max, d_min, why = None, choice.d_min, choice.reason
        if not args.quiet:
            print(f"resolution limit: {why}; scaling and difference synthesis, "
                  f"{d_max or 'inf'}-{d_min:.2f} Å ...", file=sys.stderr)
        molecule = molecular_region(ref, target, models.values(), None, d_min,
                                    nthreads=args.threads)
        sigma_source, region = sigma_region(ref, molecule)
        result = vector_difference(ref, target, d_max, d_min, scaling=args.scaling,
                                   mask=region, nthreads=args.threads)
        result.sigma_source = sigma_source
        local = None
        if args.domains:
            from ..analysis.local import local_realignment
            local = local_realignment(ref, target, models["ref"], args.domains, d_max=d_max,
                                      d_min=d_min, scaling=args.scaling, nthreads=args.threads)
        peaks = find_peaks(result.map if local is None else local.difference, args.sigma, models,
                           mask=None if models else molecule,
                           max_distance=DEFAULT_MAX_DISTANCE if models else None,
                           edge_margin=EDGE_RESOLUTION_ELEMENTS * d_min, nthreads=args.threads)
        quality = difference_quality(result, peaks, args.sigma)
        for label in ("ref", "target"):  # peaks.json always carries both keys
            for p in peaks:
                p.nearest.setdefault(label, None)
        peaks.labels = tuple(models)
        scaling = result.scaling
        report = {"k": scaling.k, "B": scaling.B, "model": scaling.model,
                  "target": scaling.target, "d_max": scaling.d_max, "d_min": scaling.d_min,
                  "r_overall": scaling.r_overall, "r_overall_before": scaling.r_overall_before,
                  "sigma": result.sigma, "sigma_source": sigma_source,
                  "resolution_reason": why, "peaks_found": peaks.n_found,
                  "quality": quality.to_dict(), "shells": scaling.shells,
                  "inputs": {"ref": args.ref, "target": args.target, "ref_model": args.ref_model,
                             "target_model": args.target_model}, "version": __version__}
        out.create()
        result.map.write(out / "difference.mrc")
        out.write_json("shells.json", report)
        out.write_text("peaks.json", peaks.to_json())
        out.write_text("peaks.csv", peaks.to_csv())
        out.write_text("peaks.cmm", peaks.to_cmm())
        result.write_mtz(out / "structure_factors.mtz")
        plot_shells(scaling, out / "shells.png")
        if local is not None:
            local.difference.write(out / "difference_local.mrc")
            out.write_json("domains.json", local.to_dict())
    if not args.quiet:
        b_text = (f"{scaling.B:.2f}" if np.ndim(scaling.B) == 0 else
                  "(" + ", ".join(f"{b:.2f}" for b in scaling.b_six) + ")")
        print(f"k = {scaling.k:.4g}, B = {b_text} Å²; R {scaling.r_overall_before:.1f} % "
              f"-> {scaling.r_overall:.1f} % after scaling; {len(peaks)} peaks beyond "
              f"±{args.sigma} σ; written to {out.path}")
    return 0
