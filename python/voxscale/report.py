"""The outputs of ``voxscale compare``: summary.json (every number) and report.html (one
self-contained page with the plots embedded), plus maps, peaks and structure factors."""
from __future__ import annotations

import base64
import html
import platform
import tempfile
from pathlib import Path

import numpy as np

from . import __version__
from .compare import CompareResult, scale_error_matters
from .output import OutputDir, to_jsonable
from .plots import plot_scan, plot_shells
from .scaling import WILSON_R_ACENTRIC

__all__ = ["summary", "write_outputs", "OUTPUT_FILES"]

OUTPUT_FILES = ["report.html", "summary.json", "target_corrected.mrc", "difference.mrc",
                "difference_realspace.mrc", "peaks.csv", "peaks.json", "peaks.cmm",
                "structure_factors.mtz", "scan.png", "shells.png", "expansion.png"]


def _outer_radius(result: CompareResult) -> float:
    """90th percentile of the distance of the target's fit points from its box centre (Å)."""
    data = result.corrected.data
    level = result.scan.contour
    iz, iy, ix = np.nonzero(data > level)
    if not len(ix):
        return float(np.linalg.norm(result.corrected.cell) / 4)
    xyz = result.corrected.origin + np.stack([ix, iy, iz], axis=1) * result.corrected.voxel_size
    return float(np.percentile(np.linalg.norm(xyz - xyz.mean(axis=0), axis=1), 90))


def summary(result: CompareResult, *, inputs: dict, parameters: dict) -> dict:
    """Every number of the report, machine-readable (the content of summary.json).

    Parameters
    ----------
    result : CompareResult
    inputs : dict
        File names of the inputs.
    parameters : dict
        Options of the run.

    Returns
    -------
    dict
    """
    scan = result.scan
    radius = _outer_radius(result)
    matters, shift = scale_error_matters(scan, result.d_min, radius)
    peaks = []
    for p in result.peaks:
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
        "voxel_scale": {
            "best_scale": scan.best_scale, "uncertainty": scan.uncertainty,
            "percent": scan.percent, "percent_uncertainty": 100 * scan.uncertainty,
            "cc_at_unit": scan.cc_at_unit, "cc_best": scan.cc_best,
            "scales": scan.scales, "cc": scan.cc, "transform": scan.transform,
            "rotation_deg": scan.rotation_deg, "shift_A": scan.shift_A,
            "n_points": scan.n_points, "contour": scan.contour,
            "placement": {"method": scan.placement.method, "n_pairs": scan.placement.n_pairs,
                          "rmsd_A": scan.placement.rmsd},
            "matters": matters, "outer_radius_A": radius, "displacement_at_outer_radius_A": shift,
        },
        "resolution": {"d_max": result.d_max, "d_min": result.d_min},
        "amplitude_difference": {
            "before": result.before.r_overall,
            "after": result.after.scaling.r_overall,
            "unrelated_limit": 100 * WILSON_R_ACENTRIC,
            "scaling_before": _scaling_dict(result.before),
            "scaling_after": _scaling_dict(result.after.scaling),
        },
        "difference_map": {"sigma": result.after.sigma, "peak_threshold_sigma":
                           parameters.get("sigma", 4.0)},
        "peaks": peaks,
        "timings": dict(result.timings),
        "inputs": inputs,
        "parameters": parameters,
        "versions": {"voxscale": __version__, "python": platform.python_version(),
                     "numpy": np.__version__},
    }
    if result.expansion is not None:
        out["expansion"] = _expansion_dict(result.expansion)
    return out


def _scaling_dict(s) -> dict:
    return {"k": s.k, "B": s.B, "model": s.model, "r_overall": s.r_overall,
            "r_overall_unscaled": s.r_overall_before, "shells": s.shells}


def _expansion_dict(e) -> dict:
    return e.to_dict()


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _render_html(s: dict, images: dict) -> str:
    v = s["voxel_scale"]
    a = s["amplitude_difference"]
    e = html.escape
    verdict = (f"The target's voxel size should be multiplied by <b>{v['best_scale']:.5f} ± "
               f"{v['uncertainty']:.5f}</b>: a relative voxel-scale error of <b>"
               f"{v['percent']:+.3f} ± {v['percent_uncertainty']:.3f} %</b>. ")
    verdict += (f"At {s['resolution']['d_min']:.2f} Å it <b>{'matters' if v['matters'] else 'does not matter'}"
                f"</b>: atoms {v['outer_radius_A']:.0f} Å from the centre move by "
                f"{v['displacement_at_outer_radius_A']:.2f} Å.")
    rows = "".join(
        f"<tr><td>{i}</td><td>{p['height_sigma']:+.1f}</td><td>{e(str(p['chain'] or ''))}</td>"
        f"<td>{e(str(p['residue_name'] or ''))}{'' if p['residue_number'] is None else p['residue_number']}</td>"
        f"<td>{e(str(p['atom'] or ''))}</td>"
        f"<td>{_fmt(p['distance'], '.1f')}</td>"
        f"<td>{p['x']:.1f}, {p['y']:.1f}, {p['z']:.1f}</td></tr>"
        for i, p in enumerate(s["peaks"][:25], start=1))
    shells = "".join(
        f"<tr><td>{_fmt(b['d_max'], '.2f') or '∞'}–{_fmt(b['d_min'], '.2f')}</td>"
        f"<td>{b['n']}</td><td>{_fmt(b['r'], '.1f')}</td><td>{_fmt(c['r'], '.1f')}</td>"
        f"<td>{_fmt(b['fsc'], '.3f')}</td><td>{_fmt(c['fsc'], '.3f')}</td></tr>"
        for b, c in zip(a["scaling_before"]["shells"], a["scaling_after"]["shells"]))
    timing = "".join(f"<tr><td>{e(k)}</td><td>{t:.2f}</td></tr>" for k, t in s["timings"].items())
    inputs = "".join(f"<tr><td>{e(k)}</td><td>{e(str(val))}</td></tr>"
                     for k, val in s["inputs"].items())
    params = "".join(f"<tr><td>{e(k)}</td><td>{e(str(val))}</td></tr>"
                     for k, val in s["parameters"].items())
    versions = ", ".join(f"{k} {val}" for k, val in s["versions"].items())
    sections = [
        "<h1>voxscale comparison</h1>",
        f'<p class="verdict">{verdict}</p>',
        f"<p>Correlation of the fitted target: {v['cc_at_unit']:.4f} at the header voxel size, "
        f"{v['cc_best']:.4f} after correction ({v['n_points']} fit points, placement by "
        f"{e(v['placement']['method'])}). Amplitude difference R over "
        f"{_range(s)}: <b>{a['before']:.1f} %</b> before and <b>{a['after']:.1f} %</b> after the "
        f"correction; unrelated maps give {a['unrelated_limit']:.1f} %.</p>",
        "<h2>Correlation against voxel-scale factor</h2>", images.get("scan", ""),
        "<h2>Amplitude difference and FSC by resolution</h2>",
        "<p>Both after scaling the target's amplitudes onto the reference (k, B). Dashed: "
        "before the voxel-scale correction; solid: after. The dash-dotted line is the Wilson "
        "limit for unrelated maps.</p>", images.get("shells", ""),
        "<table><tr><th>d (Å)</th><th>n</th><th>R before (%)</th><th>R after (%)</th>"
        f"<th>FSC before</th><th>FSC after</th></tr>{shells}</table>",
    ]
    if "expansion" in images:
        sections += ["<h2>Cα shifts against distance from the centre</h2>", images["expansion"]]
    sections += [
        f"<h2>Difference-map peaks (target − reference, beyond ±"
        f"{s['difference_map']['peak_threshold_sigma']} σ)</h2>",
        "<p>Negative peaks: density in the reference missing from the target; positive: new "
        "density in the target. Open <code>difference.mrc</code> with <code>peaks.cmm</code> "
        "on the reference map in ChimeraX.</p>",
        "<table><tr><th>#</th><th>height (σ)</th><th>chain</th><th>residue</th><th>atom</th>"
        f"<th>distance (Å)</th><th>x, y, z (Å)</th></tr>{rows}</table>",
        "<h2>Inputs, parameters, versions and timings</h2>",
        f"<table>{inputs}</table><table>{params}</table><p>{e(versions)}</p>",
        f"<table><tr><th>step</th><th>seconds</th></tr>{timing}</table>",
    ]
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "img{max-width:100%}table{border-collapse:collapse;margin:.6em 0}"
             "td,th{border:1px solid #ccc;padding:.2em .5em;font-size:90%}"
             ".verdict{font-size:115%;background:#f3f6fa;padding:.6em;border-left:4px solid #1f5fa8}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>voxscale report</title>"
            f"<style>{style}</style></head><body>{''.join(sections)}</body></html>\n")


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _range(s: dict) -> str:
    d_max = s["resolution"]["d_max"]
    return f"{'∞' if d_max is None else _fmt(d_max, '.1f')}–{s['resolution']['d_min']:.2f} Å"


def write_outputs(result: CompareResult, out: OutputDir, *, inputs: dict, parameters: dict,
                  extra: dict = None) -> dict:
    """Write every output of a comparison into ``out`` (which must have been created).

    Parameters
    ----------
    result : CompareResult
    out : OutputDir
    inputs, parameters : dict
        Recorded in the summary and the report.
    extra : dict, optional
        More keys for summary.json (e.g. ``demo_truth``).

    Returns
    -------
    dict
        The summary.
    """
    s = summary(result, inputs=inputs, parameters=parameters)
    s.update(extra or {})
    result.corrected.write(out / "target_corrected.mrc")
    result.after.map.write(out / "difference.mrc")
    result.real_space.write(out / "difference_realspace.mrc")
    out.write_text("peaks.json", result.peaks.to_json())
    out.write_text("peaks.csv", result.peaks.to_csv())
    out.write_text("peaks.cmm", result.peaks.to_cmm())
    result.after.write_mtz(out / "structure_factors.mtz")
    plot_scan(result.scan, out / "scan.png")
    plot_shells(result.after.scaling, out / "shells.png", before=result.before)
    images = {"scan": _img(out / "scan.png"), "shells": _img(out / "shells.png")}
    if result.expansion is not None:
        from .expansion import plot_expansion
        plot_expansion(result.expansion, out / "expansion.png")
        images["expansion"] = _img(out / "expansion.png")
    out.write_json("summary.json", s)
    out.write_text("report.html", _render_html(to_jsonable(s), images))
    return s
