"""The outputs of ``voxscale compare``: report.html (one self-contained page with the plots
embedded) beside summary.json, the maps, peaks and structure factors."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Optional

from .compare import CompareResult
from .output import OutputDir, to_jsonable
from .plots import plot_difference_slices, plot_expansion, plot_scan, plot_shells
from .summary import summary

__all__ = ["write_outputs", "chimerax_script", "OUTPUT_FILES"]

OUTPUT_FILES = ["report.html", "summary.json", "target_corrected.mrc",
                "target_voxel_fixed.mrc", "difference.mrc",
                "difference_realspace.mrc", "peaks.csv", "peaks.json", "peaks.cmm",
                "structure_factors.mtz", "scan.png", "shells.png", "expansion.png",
                "residue_scores.csv", "model_scored.pdb", "model_scored.cif",
                "difference_slices.png", "open_in_chimerax.cxc"]


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
    q = s["quality"]
    colour = {"ok": "#1e7b34", "warning": "#b36b00", "unreliable": "#b3261e"}[q["status"]]
    words = {"ok": "OK: no problem was found with this result.",
             "warning": "WARNING: use this result with care, for the reasons below.",
             "unreliable": "UNRELIABLE: do not use this result, for the reasons below."}
    reasons = "".join(f"<li><b>{e(r['severity'])}</b>: {e(r['message'])} "
                      f"<code>{e(r['code'])}</code></li>" for r in q["reasons"])
    sizes = s["voxel_sizes"]
    voxels = (f"<p>Voxel sizes (x, y, z, Å): reference {_xyz(sizes['reference'])}; target "
              f"header {_xyz(sizes['target_header'])}; target corrected "
              f"<b>{_xyz(sizes['target_corrected'])}</b> (<code>target_voxel_fixed.mrc</code> "
              "is the target with that voxel size, box centre kept).</p>")
    sections = [
        "<h1>voxscale comparison</h1>",
        f'<div class="status" style="border-color:{colour}"><p style="color:{colour};'
        f'font-weight:bold;font-size:120%">{words[q["status"]]}</p>'
        + (f"<ul>{reasons}</ul>" if reasons else "") + "</div>",
        f'<p class="verdict">{verdict}</p>',
        voxels,
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
    sections += ["<h2>The difference map through its strongest peak</h2>",
                 f"<p>{e(s['difference_map']['units'])}; contours at ±"
                 f"{s['difference_map']['peak_threshold_sigma']} (green: more in the target, "
                 "red: less), the models' Cα atoms within 3 Å of each slice as dots. "
                 "<code>open_in_chimerax.cxc</code> opens it all in ChimeraX.</p>",
                 images.get("slices", "")]
    if s.get("residue_scores"):
        top = "".join(f"<tr><td>{i}</td><td>{e(r['chain'])}</td><td>{e(r['residue_name'])}"
                      f"{r['residue_number']}{e(r['insertion_code'])}</td>"
                      f"<td>{r['score']:+.2f}</td><td>{r['abs_score']:.2f}</td>"
                      f"<td>{r['max_abs']:.2f}</td></tr>"
                      for i, r in enumerate(s["residue_scores"][:15], start=1))
        sections += ["<h2>Residues with the largest differences</h2>",
                     "<p>The difference at each residue's atoms: mean (signed), mean of its "
                     "absolute value, largest absolute value (all residues in "
                     "<code>residue_scores.csv</code>; the model with the signed score as B "
                     "factor in <code>model_scored.pdb</code>).</p>",
                     "<table><tr><th>#</th><th>chain</th><th>residue</th><th>score</th>"
                     f"<th>|score|</th><th>max</th></tr>{top}</table>"]
    sections += [
        f"<h2>Difference-map peaks (target − reference, beyond ±"
        f"{s['difference_map']['peak_threshold_sigma']} σ)</h2>",
        f"<p><b>{e(s['difference_map'].get('verdict', ''))}.</b> "
        "Negative peaks: density in the reference missing from the target; positive: new "
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
             ".verdict{font-size:115%;background:#f3f6fa;padding:.6em;border-left:4px solid #1f5fa8}"
             ".status{border:2px solid;padding:.2em .8em;margin:.8em 0}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>voxscale report</title>"
            f"<style>{style}</style></head><body>{''.join(sections)}</body></html>\n")


def chimerax_script(threshold: float, *, ref_path=None, has_peaks: bool = True,
                    has_scores: bool = False) -> str:
    """``open_in_chimerax.cxc``: the reference, the corrected target, the difference at
    ±threshold (green: more in the target, red: less), the peak markers and the reference
    model coloured by its per-residue score. The outputs are opened by relative paths: open
    the script from the output folder (``cd`` there in ChimeraX, or double-click it); the
    reference by its absolute path, when it is a file."""
    t = float(threshold)
    lines = ["# voxscale: the comparison in ChimeraX (open this file from its folder)"]
    n = 0  # ChimeraX numbers the models #1, #2, ... in the order they are opened
    if ref_path is not None and Path(ref_path).is_file():
        n += 1
        lines += [f'open "{Path(ref_path).resolve()}"', f"volume #{n} style mesh color #8c8c8c"]
    n += 1
    lines += ["open target_corrected.mrc", f"volume #{n} style mesh color #1f77b4"]
    n += 1
    lines += ["open difference.mrc",
              f"volume #{n} style surface level {-t:g} color #d62728 level {t:g} color #2ca02c"]
    if has_peaks:
        n += 1
        lines += ["open peaks.cmm"]
    if has_scores:
        n += 1
        lines += ["open model_scored.pdb", f"color bfactor #{n} palette "
                  f"{-2 * t:g},#d62728:0,white:{2 * t:g},#2ca02c"]
    lines += ["view"]
    return "\n".join(lines) + "\n"


def _xyz(v) -> str:
    return ", ".join(f"{float(x):.4f}" for x in v)


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _range(s: dict) -> str:
    d_max = s["resolution"]["d_max"]
    return f"{'∞' if d_max is None else _fmt(d_max, '.1f')}–{s['resolution']['d_min']:.2f} Å"


def write_outputs(result: CompareResult, out: OutputDir, *, extra: Optional[dict] = None) -> dict:
    """Write every output of a comparison into ``out`` (which must have been created).

    Parameters
    ----------
    result : CompareResult
        With its difference map (``compare(..., difference=True)``).
    out : OutputDir
    extra : dict, optional
        More keys for summary.json (e.g. ``demo_truth``).

    Returns
    -------
    dict
        The summary.
    """
    s = summary(result)
    s.update(extra or {})
    result.corrected.write(out / "target_corrected.mrc")
    fixed = result.target_voxel_fixed  # read from the target's file again: once
    if fixed is not None:
        fixed.write(out / "target_voxel_fixed.mrc")
    del fixed
    result.difference.map.write(out / "difference.mrc")
    result.real_space.write(out / "difference_realspace.mrc")
    out.write_text("peaks.json", result.peaks.to_json())
    out.write_text("peaks.csv", result.peaks.to_csv())
    out.write_text("peaks.cmm", result.peaks.to_cmm())
    result.difference.write_mtz(out / "structure_factors.mtz")
    plot_scan(result.scan, out / "scan.png")
    plot_shells(result.after, out / "shells.png", before=result.before)
    images = {"scan": _img(out / "scan.png"), "shells": _img(out / "shells.png")}
    if result.expansion is not None:
        plot_expansion(result.expansion, out / "expansion.png")
        images["expansion"] = _img(out / "expansion.png")
    scored = None
    if result.residue_scores is not None and result.ref_model is not None:
        out.write_text("residue_scores.csv", result.residue_scores.to_csv())
        scored = ("model_scored.pdb" if result.ref_model[0].count_atom_sites() < 99999
                  else "model_scored.cif")
        result.residue_scores.write_model(result.ref_model, out / scored)
    models = [m for m in (result.ref_model, result.target_model_in_ref) if m is not None]
    plot_difference_slices(result.difference.map, s["difference_map"]["peak_threshold_sigma"],
                           out / "difference_slices.png", peaks=result.peaks, models=models)
    images["slices"] = _img(out / "difference_slices.png")
    scored_pdb = result.residue_scores is not None and scored == "model_scored.pdb"
    out.write_text("open_in_chimerax.cxc",
                   chimerax_script(s["difference_map"]["peak_threshold_sigma"],
                                   ref_path=s["inputs"].get("ref"),
                                   has_peaks=bool(result.peaks), has_scores=scored_pdb))
    out.write_json("summary.json", s)
    out.write_text("report.html", _render_html(to_jsonable(s), images))
    return s
