"""summary.json: every number of a comparison, and the row of a survey's results table.

``voxscale compare`` writes :func:`summary` as ``summary.json`` and builds its report from it;
each task of ``voxscale batch`` makes the same summary and keeps :func:`survey_row` of it.
"""
from __future__ import annotations

import platform
from typing import Optional

import numpy as np

from .._version import __version__
from ..reciprocal.scaling import WILSON_R_ACENTRIC
from .compare import CompareResult, difference_verdict, scale_error_matters

__all__ = ["summary", "survey_row", "SURVEY_COLUMNS", "SURVEY_QUALITY_COLUMNS"]

#: The numbers of a comparison kept by a survey (columns of ``results.csv``).
SURVEY_COLUMNS = ("best_scale", "uncertainty", "percent", "cc_before", "cc_after", "r_before",
                  "r_after", "d_max", "d_min")
#: The verdict kept by a survey: the status and the reason codes (";"-separated).
SURVEY_QUALITY_COLUMNS = ("quality", "quality_reasons")
#: Residues of the per-residue scores listed in summary.json (all are in residue_scores.csv).
RESIDUES_IN_SUMMARY = 50


def _outer_radius(result: CompareResult) -> float:
    """90th percentile of the distance of the target's fit points from its box centre (Å)."""
    data = result.corrected.data
    level = result.scan.contour
    iz, iy, ix = np.nonzero(data > level)
    if not len(ix):
        return float(np.linalg.norm(result.corrected.cell) / 4)
    xyz = result.corrected.origin + np.stack([ix, iy, iz], axis=1) * result.corrected.voxel_size
    return float(np.percentile(np.linalg.norm(xyz - xyz.mean(axis=0), axis=1), 90))


def summary(result: CompareResult, *, inputs: Optional[dict] = None,
            parameters: Optional[dict] = None) -> dict:
    """Every number of a comparison, machine-readable (the content of summary.json).

    Parameters
    ----------
    result : CompareResult
    inputs, parameters : dict, optional
        What was compared and the options of the run (default those of ``result``).

    Returns
    -------
    dict
        Keys ``quality`` (``status`` and ``reasons``), ``voxel_sizes``, ``voxel_scale``,
        ``resolution``, ``amplitude_difference``, ``difference_map``,
        ``peaks``, ``timings``, ``inputs``, ``parameters``, ``versions`` and, with two models,
        ``expansion``. Without a difference map (a survey), ``difference_map`` is None and
        ``peaks`` is empty.
    """
    inputs = result.inputs if inputs is None else inputs
    parameters = result.parameters if parameters is None else parameters
    scan = result.scan
    radius = _outer_radius(result)
    matters, shift = scale_error_matters(scan, result.d_min, radius)
    peaks = []
    for p in result.peaks or ():
        ref_atom = p.nearest.get("ref") or p.nearest.get("target")
        peaks.append({
            "x": p.x, "y": p.y, "z": p.z, "height_sigma": p.height_sigma,
            "volume_A3": p.volume_A3,
            "chain": None if ref_atom is None else ref_atom["chain"],
            "residue_name": None if ref_atom is None else ref_atom["residue_name"],
            "residue_number": None if ref_atom is None else ref_atom["residue_number"],
            "atom": None if ref_atom is None else ref_atom["atom"],
            "distance": None if ref_atom is None else ref_atom["distance"],
            "ref": p.nearest.get("ref"), "target": p.nearest.get("target"),
        })
    out = {
        "quality": result.quality.to_dict(),
        "voxel_sizes": result.voxel_sizes,
        "voxel_scale": {
            "best_scale": scan.best_scale, "uncertainty": scan.uncertainty,
            "percent": scan.percent, "percent_uncertainty": 100 * scan.uncertainty,
            "cc_at_unit": scan.cc_at_unit, "cc_best": scan.cc_best,
            "scales": scan.scales, "cc": scan.cc, "transform": scan.transform,
            "rotation_deg": scan.rotation_deg, "shift_A": scan.shift_A,
            "n_points": scan.n_points, "contour": scan.contour,
            "placement": scan.placement.to_dict(),
            "directions": scan.to_dict()["directions"], "mirror_cc": scan.to_dict()["mirror_cc"],
            "matters": matters, "outer_radius_A": radius, "displacement_at_outer_radius_A": shift,
        },
        "resolution": {"d_max": result.d_max, "d_min": result.d_min,
                       **({} if result.resolution is None else {
                           "source": result.resolution.source,
                           "reason": result.resolution.reason,
                           "candidates": result.resolution.to_dict()})},
        "half_maps": None if not result.half_maps else {
            role: noise.to_dict() for role, noise in result.half_maps.items()},
        "amplitude_difference": {
            "before": result.before.r_overall,
            "after": result.after.r_overall,
            "unrelated_limit": 100 * WILSON_R_ACENTRIC,
            "scaling_before": _scaling_dict(result.before),
            "scaling_after": _scaling_dict(result.after),
        },
        "difference_map": None if result.difference is None else {
            "sigma": result.difference.sigma,
            "sigma_source": result.difference.sigma_source,
            "units": "z-scores of the noise" if result.difference.sigma_source == "half_maps"
            else f"σ of the difference over the {result.difference.sigma_source}"
            + (", with the resampling error as a per-voxel floor"
               if result.difference.resampling_floor else ""),
            "weights": result.difference.weights,
            "resampling_floor": result.difference.resampling_floor,
            "target_coverage": result.target_coverage,
            "solvent_noise_ratio": result.solvent_noise_ratio,
            "peak_threshold_sigma": parameters.get("sigma", 4.0),
            "peaks_found": None if result.peaks is None else result.peaks.n_found,
            "peaks_capped": None if result.peaks is None else result.peaks.capped,
            "verdict": difference_verdict(result.difference, result.peaks,
                                          parameters.get("sigma", 4.0))},
        "peaks": peaks,
        "residue_scores": None if result.residue_scores is None else [
            r.to_dict() for r in result.residue_scores[:RESIDUES_IN_SUMMARY]],
        "timings": dict(result.timings),
        "inputs": inputs,
        "parameters": parameters,
        "versions": {"voxscale": __version__, "python": platform.python_version(),
                     "numpy": np.__version__},
    }
    if result.expansion is not None:
        out["expansion"] = result.expansion.to_dict()
    return out


def _scaling_dict(s) -> dict:
    return {"k": s.k, "B": s.B, "model": s.model, "r_overall": s.r_overall,
            "r_overall_unscaled": s.r_overall_before, "shells": s.shells}


def survey_row(s: dict) -> dict:
    """The survey's numbers of a summary (see :data:`SURVEY_COLUMNS`).

    Parameters
    ----------
    s : dict
        From :func:`summary`.

    Returns
    -------
    dict
        Plain floats (``d_max`` None for no low-resolution limit).
    """
    v, a, r = s["voxel_scale"], s["amplitude_difference"], s["resolution"]
    row = {"best_scale": v["best_scale"], "uncertainty": v["uncertainty"],
           "percent": v["percent"], "cc_before": v["cc_at_unit"], "cc_after": v["cc_best"],
           "r_before": a["before"], "r_after": a["after"], "d_max": r["d_max"],
           "d_min": r["d_min"]}
    row = {k: None if val is None else float(val) for k, val in row.items()}
    row["quality"] = s["quality"]["status"]
    row["quality_reasons"] = ";".join(r["code"] for r in s["quality"]["reasons"])
    return row
