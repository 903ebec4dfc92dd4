"""``voxscale compare REF TARGET``: the whole comparison, written into one folder."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from ..errors import VoxscaleError
from ..fit.scan import ScanOptions
from ..pipeline.compare import compare_files
from ..pipeline.memory import check_memory
from ..pipeline.output import OutputDir, normalised_path
from ..pipeline.report import OUTPUT_FILES, write_outputs
from .options import (add_common_options, add_pair_arguments, add_resolution_argument,
                      add_scan_arguments, add_strict_option, positive_float, report_quality,
                      resolution_range, scan_options)
from .progress import ProgressBar

__all__ = ["add_parser", "run", "run_compare"]


def add_parser(subparsers) -> None:
    """Register the sub-command."""
    p = subparsers.add_parser(
        "compare", help="the whole comparison: scan, correction, scaling, differences, "
                        "peaks, report",
        description="Find and correct the voxel-scale error of TARGET against REF, compare "
                    "amplitudes by resolution before and after, compute difference maps and "
                    "their peaks, and write report.html, summary.json and the maps into --out.")
    add_pair_arguments(p)
    add_scan_arguments(p)
    add_resolution_argument(p, "all low-resolution terms to where both maps carry shared "
                               "signal: the worse map's half-map FSC = 0.143 with half maps, "
                               "else the maps' FSC = 0.5 or where a map's own signal ends")
    p.add_argument("--sigma", type=positive_float, default=4.0,
                   help="peak threshold (default 4): z-scores of the noise with half maps, "
                        "σ of the solvent otherwise")
    p.add_argument("--ref-halves", nargs=2, metavar=("H1", "H2"),
                   help="the reference's two half maps: its own resolution and noise; the "
                        "difference map becomes noise-calibrated (z-scores)")
    p.add_argument("--target-halves", nargs=2, metavar=("H1", "H2"),
                   help="the target's two half maps (needed with --ref-halves)")
    p.add_argument("--mask", help="molecular mask on the reference grid (MRC; > 0.5 inside): "
                                  "peaks inside it, σ from the solvent outside it (default "
                                  "from the models, else from both maps)")
    p.add_argument("--max-distance", type=positive_float, default=5.0,
                   help="with models: keep peaks within this distance of an atom (Å, "
                        "default 5)")
    add_strict_option(p)
    add_common_options(p, max_memory=True, force_help="write into an existing folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the comparison; 0."""
    summary = run_compare(args.ref, args.target, args.out, ref_model_path=args.ref_model,
                          target_model_path=args.target_model, resolution=args.resolution,
                          threads=args.threads, sigma=args.sigma, scan=scan_options(args),
                          force=args.force, quiet=args.quiet, max_memory=args.max_memory,
                          ref_halves=args.ref_halves, target_halves=args.target_halves,
                          mask=args.mask, max_distance=args.max_distance)
    return report_quality("compare", summary["quality"], args.strict)


def run_compare(ref_path, target_path, out_dir, *, ref_model_path=None, target_model_path=None,
                resolution=None, threads: int = 0, sigma: float = 4.0,
                scan: Optional[ScanOptions] = None, force: bool = False, quiet: bool = False,
                extra: Optional[dict] = None, inputs: Optional[dict] = None,
                max_memory=None, ref_halves=None, target_halves=None, mask=None,
                max_distance: float = 5.0) -> dict:
    """Run ``voxscale compare`` on files and write every output into ``out_dir``.

    Parameters
    ----------
    ref_path, target_path : str or os.PathLike
        Maps.
    out_dir : str or os.PathLike
        Output folder; refused if it exists, unless ``force``.
    ref_model_path, target_model_path : str, optional
        Models.
    resolution : (float or None, float), optional
        (d_max, d_min) in Å.
    threads : int, optional
    sigma : float, optional
        Peak threshold.
    scan : ScanOptions, optional
        Options of the scan.
    force, quiet : bool, optional
    extra : dict, optional
        More keys for summary.json.
    inputs : dict, optional
        Override what is recorded as the inputs.
    max_memory : int or str, optional
        Refuse to start above this estimated memory (default 80 % of what is available).
    ref_halves, target_halves : pair of str, optional
        Half-map files of each map.
    mask : str, optional
        Molecular mask file on the reference grid.
    max_distance : float, optional
        With models, peaks within this distance (Å) of an atom are kept.

    Returns
    -------
    dict
        The summary written to summary.json.
    """
    if os.path.lexists(normalised_path(out_dir)) and not force:
        raise VoxscaleError(f"{out_dir} exists; use --force to write into it")
    with OutputDir(out_dir, OUTPUT_FILES + ["compare.log"], force=force) as out:
        d_max, d_min = resolution_range(resolution)
        check_memory("compare", ref_path, target_path, limit=max_memory,
                     half_map_paths=[*(ref_halves or ()), *(target_halves or ())])
        lines = []
        bar = ProgressBar("voxel-scale scan", enabled=not quiet)

        def log(line):
            bar.close()  # the scan has finished when the first step is logged
            lines.append(line)
            if not quiet:
                print(f"  {line}", file=sys.stderr)

        try:
            result = compare_files(ref_path, target_path, ref_model_path=ref_model_path,
                                   target_model_path=target_model_path, inputs=inputs,
                                   d_max=d_max, d_min=d_min, sigma=sigma, scan_options=scan,
                                   nthreads=threads, progress=bar, log=log,
                                   ref_halves_paths=ref_halves,
                                   target_halves_paths=target_halves, mask_path=mask,
                                   max_distance=max_distance)
        finally:
            bar.close()
        result.parameters["threads"] = threads
        out.create()
        summary = write_outputs(result, out, extra=extra)
        v = summary["voxel_scale"]
        lines.append(f"voxel-scale factor {v['best_scale']:.5f} ± {v['uncertainty']:.5f} "
                     f"({v['percent']:+.3f} %); R {summary['amplitude_difference']['before']:.1f} % "
                     f"-> {summary['amplitude_difference']['after']:.1f} %; "
                     f"{summary['quality']['status']}")
        headline = lines[-1]
        if summary["difference_map"] is not None:
            lines.append(f"difference map: {summary['difference_map']['verdict']}")
        log_lines = lines + [f"{r['severity']}: {r['message']} [{r['code']}]"
                             for r in summary["quality"]["reasons"]]
        out.write_text("compare.log", "\n".join(log_lines) + "\n")
    if not quiet:
        print(f"{headline}; report: {out.path / 'report.html'}")
        if summary["difference_map"] is not None:
            print(f"difference map: {summary['difference_map']['verdict']}")
    return summary
