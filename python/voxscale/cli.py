"""The ``voxscale`` command line.

Every command exits with status 0 on success, 2 with a one-line message on stderr when an input
is unusable (missing file, malformed map, bad option), and never prints a traceback for such
errors.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from pathlib import Path

import gemmi
import numpy as np

from . import __version__
from .errors import MapFormatError, ModelFormatError, VoxscaleError
from .io import read_map
from .shells import check_resolution_range
from .cliutil import add_common_options
from .memory import check_memory
from .models import check_model_in_map, read_model
from .output import OutputDir
from .progress import ProgressBar

__all__ = ["main"]

#: Modules that define their own sub-commands (see build_parser).
_COMMAND_MODULES: tuple = ("demo", "expansion", "absolute_scale", "batch")


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


def read_density(path, role: str) -> "Map":
    """Read a map for a comparison: it must not be constant.

    Parameters
    ----------
    path : str or os.PathLike
    role : str
        "reference" or "target", for the message.

    Returns
    -------
    Map
    """
    m = read_map(path)
    if not float(np.std(m.data, dtype=np.float64)) > 0:
        raise MapFormatError(f"{path}: the {role} map is constant "
                             f"({float(m.data.flat[0]):.4g} everywhere); there is nothing to "
                             "compare")
    return m


def read_placed_model(path, density, density_path):
    """Read a model that must have protein Cα atoms and lie (mostly) inside its map's box.

    Parameters
    ----------
    path : str or os.PathLike
        Model file.
    density : Map
        The map the model belongs to.
    density_path : str or os.PathLike
        Its file, for the message.

    Returns
    -------
    gemmi.Structure
    """
    model = read_model(path)

    def amino_acid(residue) -> bool:
        info = gemmi.find_tabulated_residue(residue.name)
        return info is not None and info.is_amino_acid()

    if not any(r.find_atom("CA", "*") is not None and amino_acid(r)
               for ch in model[0] for r in ch):
        raise ModelFormatError(f"{path}: no protein Cα atoms")
    check_model_in_map(model, density, what=str(path), where=str(density_path))
    return model


def _cmd_scan(args: argparse.Namespace) -> int:
    from .scan import corrected_target, scan_voxel_scale
    from .plots import plot_scan

    names = ["scan.json", "target_corrected.mrc", "scan.png"]
    out = OutputDir(args.out, names, force=args.force)  # refuses before any work is done
    if bool(args.ref_model) != bool(args.target_model):
        raise VoxscaleError("give both --ref-model and --target-model, or neither")
    lo, hi = args.range
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < 1 < hi):
        raise VoxscaleError(f"--range {lo} {hi} must be finite, positive and contain 1")
    check_memory("scan", args.ref, args.target, limit=args.max_memory)
    ref, target = read_density(args.ref, "reference"), read_density(args.target, "target")
    ref_model = read_placed_model(args.ref_model, ref, args.ref) if args.ref_model else None
    target_model = (read_placed_model(args.target_model, target, args.target)
                    if args.target_model else None)
    bar = ProgressBar("scan", 1, enabled=not args.quiet)

    def progress(done, total, message):
        bar.total = total
        bar.update(done, message)

    try:
        result = scan_voxel_scale(ref, target, ref_model, target_model, contour=args.contour,
                                  nthreads=args.threads, scale_range=(lo, hi), step=args.step,
                                  anisotropic=args.anisotropic, progress=progress)
    finally:
        bar.close()
    corrected = corrected_target(ref, target, result, nthreads=args.threads)
    report = scan_report(result)
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
              f"{result.cc_best:.4f}; {result.seconds:.1f} s; written to {out.path}")
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from .difference import check_same_grid, estimate_resolution, vector_difference
    from .peaks import find_peaks
    from .plots import plot_shells

    names = ["shells.json", "difference.mrc", "peaks.csv", "peaks.json", "peaks.cmm",
             "structure_factors.mtz", "shells.png"]
    if args.domains:
        if not args.ref_model:
            raise VoxscaleError("--domains needs --ref-model (the parts are taken from it)")
        names += ["difference_local.mrc", "domains.json"]
    out = OutputDir(args.out, names, force=args.force)
    if args.resolution:
        check_resolution_range(*args.resolution)
    check_memory("diff", args.ref, args.target, limit=args.max_memory)
    ref, target = read_density(args.ref, "reference"), read_density(args.target, "target")
    check_same_grid(ref, target)
    models = {}
    if args.ref_model:
        models["ref"] = read_placed_model(args.ref_model, ref, args.ref)
    if args.target_model:
        models["target"] = read_placed_model(args.target_model, target, args.target)
    d_max, d_min = (args.resolution if args.resolution
                    else (None, estimate_resolution(ref, target, nthreads=args.threads)))
    if not args.quiet:
        print(f"scaling and difference synthesis, {d_max or 'inf'}-{d_min:.2f} Å ...",
              file=sys.stderr)
    result = vector_difference(ref, target, d_max, d_min, scaling=args.scaling,
                               nthreads=args.threads)
    local = None
    if args.domains:
        from .local import local_realignment
        local = local_realignment(ref, target, models["ref"], args.domains, d_max=d_max,
                                  d_min=d_min, scaling=args.scaling, nthreads=args.threads)
    peaks = find_peaks(result.map if local is None else local.difference, args.sigma, models,
                       nthreads=args.threads)
    for label in ("ref", "target"):  # peaks.json always carries both keys
        for p in peaks:
            p.nearest.setdefault(label, None)
    peaks.labels = tuple(models)
    scaling = result.scaling
    report = {"k": scaling.k, "B": scaling.B, "model": scaling.model,
              "target": scaling.target, "d_max": scaling.d_max, "d_min": scaling.d_min,
              "r_overall": scaling.r_overall, "r_overall_before": scaling.r_overall_before,
              "sigma": result.sigma, "shells": scaling.shells,
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
        out.write_json("domains.json", {
            "rms_rest_sigma": local.rms_rest,
            "domains": [{"domain": d.domain, "transform": d.transform,
                         "rotation_deg": d.rotation_deg, "shift_A": d.shift_A,
                         "cc_before": d.cc_before, "cc_after": d.cc_after,
                         "n_voxels": d.n_voxels, "rms_before_sigma": d.rms_before,
                         "rms_after_sigma": d.rms_after} for d in local.domains]})
    if not args.quiet:
        b_text = (f"{scaling.B:.2f}" if np.ndim(scaling.B) == 0 else
                  "(" + ", ".join(f"{b:.2f}" for b in scaling.b_six) + ")")
        print(f"k = {scaling.k:.4g}, B = {b_text} Å²; R {scaling.r_overall_before:.1f} % "
              f"-> {scaling.r_overall:.1f} % after scaling; {len(peaks)} peaks beyond "
              f"±{args.sigma} σ; written to {out.path}")
    return 0


def run_compare(ref_path, target_path, out_dir, *, ref_model_path=None, target_model_path=None,
                resolution=None, threads=0, sigma=4.0, scale_range=(0.95, 1.05),
                step=0.002, force=False, quiet=False, extra=None, inputs=None,
                max_memory=None) -> dict:
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
    scale_range : (float, float), optional
    step : float, optional
    force, quiet : bool, optional
    extra : dict, optional
        More keys for summary.json.
    max_memory : int or str, optional
        Refuse to start above this estimated memory (default 80 % of what is available).
    inputs : dict, optional
        Override what is recorded as the inputs.

    Returns
    -------
    dict
        The summary written to summary.json.
    """
    from .compare import compare
    from .report import OUTPUT_FILES, write_outputs

    if Path(out_dir).exists() and not force:
        raise VoxscaleError(f"{out_dir} exists; use --force to write into it")
    out = OutputDir(out_dir, OUTPUT_FILES + ["compare.log"], force=force)
    if resolution:
        check_resolution_range(*resolution)
    lo, hi = scale_range
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < 1 < hi):
        raise VoxscaleError(f"--range {lo} {hi} must be finite, positive and contain 1")
    check_memory("compare", ref_path, target_path, limit=max_memory)
    ref, target = read_density(ref_path, "reference"), read_density(target_path, "target")
    ref_model = read_placed_model(ref_model_path, ref, ref_path) if ref_model_path else None
    target_model = (read_placed_model(target_model_path, target, target_path)
                    if target_model_path else None)
    d_max, d_min = resolution if resolution else (None, None)
    lines = []

    def log(line):
        lines.append(line)
        if not quiet:
            print(f"  {line}", file=sys.stderr)

    bar = ProgressBar("voxel-scale scan", 1, enabled=not quiet)

    def progress(step_name, done, total, message):
        bar.total = total
        bar.update(done, message)

    def log_after_bar(line):
        bar.close()
        bar.enabled = False
        log(line)

    result = compare(ref, target, ref_model, target_model, d_max=d_max, d_min=d_min,
                     nthreads=threads, sigma=sigma, progress=progress, log=log_after_bar,
                     scale_range=scale_range, step=step)
    parameters = {"resolution": [result.d_max, result.d_min], "threads": threads,
                  "sigma": sigma, "range": list(scale_range), "step": step}
    recorded = inputs or {"ref": str(ref_path), "target": str(target_path),
                          "ref_model": ref_model_path, "target_model": target_model_path}
    out.create()
    summary = write_outputs(result, out, inputs=recorded, parameters=parameters, extra=extra)
    v = summary["voxel_scale"]
    lines.append(f"voxel-scale factor {v['best_scale']:.5f} ± {v['uncertainty']:.5f} "
                 f"({v['percent']:+.3f} %); R {summary['amplitude_difference']['before']:.1f} % "
                 f"-> {summary['amplitude_difference']['after']:.1f} %")
    out.write_text("compare.log", "\n".join(lines) + "\n")
    if not quiet:
        print(f"{lines[-1]}; report: {out / 'report.html'}")
    return summary


def _cmd_compare(args: argparse.Namespace) -> int:
    run_compare(args.ref, args.target, args.out, ref_model_path=args.ref_model,
                target_model_path=args.target_model, resolution=args.resolution,
                threads=args.threads, sigma=args.sigma, scale_range=tuple(args.range),
                step=args.step, force=args.force, quiet=args.quiet,
                max_memory=args.max_memory)
    return 0


def scan_report(result) -> dict:
    """The machine-readable summary of a scan (the keys of ``scan.json``).

    Parameters
    ----------
    result : voxscale.scan.ScanResult

    Returns
    -------
    dict
    """
    report = {
        "best_scale": result.best_scale,
        "uncertainty": result.uncertainty,
        "percent": result.percent,
        "scales": result.scales,
        "cc": result.cc,
        "cc_at_unit": result.cc_at_unit,
        "cc_best": result.cc_best,
        "transform": result.transform,
        "rotation_deg": result.rotation_deg,
        "shift_A": result.shift_A,
        "seconds": result.seconds,
        "n_points": result.n_points,
        "contour": result.contour,
        "placement": {"method": result.placement.method, "n_pairs": result.placement.n_pairs,
                      "rmsd_A": result.placement.rmsd, "cc": result.placement.cc},
    }
    if result.anisotropic is not None:
        a = result.anisotropic
        report["anisotropic"] = {k: a[k] for k in (
            "scale_matrix", "principal_scales", "principal_axes", "isotropic_equivalent",
            "transform", "cc", "cc_isotropic")}
    return report


def _add_pair_arguments(parser: argparse.ArgumentParser) -> None:
    """The maps, models and scan range of the commands that run the voxel-scale scan."""
    parser.add_argument("ref", help="reference map")
    parser.add_argument("target", help="target map")
    parser.add_argument("--ref-model", help="model of the reference (PDB/mmCIF)")
    parser.add_argument("--target-model", help="model of the target (PDB/mmCIF)")
    parser.add_argument("--range", nargs=2, type=float, default=(0.95, 1.05),
                        metavar=("LO", "HI"), help="factors to scan (default 0.95 1.05)")
    parser.add_argument("--step", type=float, default=0.002,
                        help="finest step of the scan (default 0.002)")


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

    scan = sub.add_parser(
        "scan", help="find the relative voxel-scale factor of TARGET against REF",
        description="Scan the target's voxel-size factor, refitting it rigidly into the "
                    "reference at each factor; write scan.json, target_corrected.mrc (on the "
                    "reference grid) and scan.png into --out.")
    _add_pair_arguments(scan)
    scan.add_argument("--contour", type=float, default=None,
                      help="target contour level for the fit points (default: the molecular "
                           "envelope, where the target low-passed to 15 Å exceeds mean + 1 sd)")
    scan.add_argument("--anisotropic", action="store_true",
                      help="also refine a symmetric 3x3 scale matrix (anisotropic "
                           "magnification)")
    add_common_options(scan, max_memory=True)
    scan.set_defaults(run=_cmd_scan)

    diff = sub.add_parser(
        "diff", help="scale amplitudes by resolution, vector-difference map and its peaks",
        description="TARGET must already be on the reference grid (e.g. the scan's "
                    "target_corrected.mrc). Writes shells.json, difference.mrc (σ units, "
                    "target − reference), peaks.csv/.json/.cmm, structure_factors.mtz and "
                    "shells.png into --out.")
    diff.add_argument("ref", help="reference map")
    diff.add_argument("target", help="target map on the reference grid")
    diff.add_argument("--resolution", nargs=2, type=float, metavar=("DMAX", "DMIN"),
                      help="resolution range in Å (default: all low-resolution terms to where "
                           "the FSC of the two maps falls below 0.143)")
    diff.add_argument("--scaling", choices=("isotropic", "anisotropic", "scale"),
                      default="isotropic", help="amplitude scale model (default isotropic)")
    diff.add_argument("--ref-model", help="reference model, for naming the peaks")
    diff.add_argument("--target-model", help="target model, for naming the peaks")
    diff.add_argument("--sigma", type=float, default=4.0, help="peak threshold (default 4)")
    diff.add_argument("--domains", nargs="+", metavar="PART",
                      help="refit these parts of the reference model separately (CHAIN or "
                           "CHAIN:FIRST-LAST); writes difference_local.mrc and domains.json, "
                           "and the peaks come from the locally realigned difference")
    add_common_options(diff, max_memory=True)
    diff.set_defaults(run=_cmd_diff)

    comp = sub.add_parser(
        "compare", help="the whole comparison: scan, correction, scaling, differences, "
                        "peaks, report",
        description="Find and correct the voxel-scale error of TARGET against REF, compare "
                    "amplitudes by resolution before and after, compute difference maps and "
                    "their peaks, and write report.html, summary.json and the maps into --out.")
    _add_pair_arguments(comp)
    comp.add_argument("--resolution", nargs=2, type=float, metavar=("DMAX", "DMIN"),
                      help="resolution range in Å (default: all low-resolution terms to where "
                           "the FSC of the reference and the corrected target falls below "
                           "0.143)")
    comp.add_argument("--sigma", type=float, default=4.0, help="peak threshold (default 4)")
    add_common_options(comp, max_memory=True, force_help="write into an existing folder")
    comp.set_defaults(run=_cmd_compare)

    # Commands defined next to their analysis: each module has add_cli(subparsers), which
    # adds a sub-parser whose `run` default takes the parsed arguments and returns 0.
    for name in _COMMAND_MODULES:
        importlib.import_module(f"voxscale.{name}").add_cli(sub)
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

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        print(f"voxscale {args.command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = one_line_warning  # restored when the block ends
        try:
            return args.run(args)
        except (VoxscaleError, OSError, ValueError) as err:
            print(f"voxscale {args.command}: error: {err}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
