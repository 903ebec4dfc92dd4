"""Figures (PNG) of every command, drawn with matplotlib's object API.

Figures are made as :class:`matplotlib.figure.Figure` objects with the Agg canvas, never
through pyplot, so drawing a report neither switches the caller's backend nor leaves figures
open.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..files import atomic_write
from ..reciprocal.scaling import WILSON_R_ACENTRIC

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_scan", "plot_shells", "plot_expansion", "plot_absolute", "plot_difference_slices"]


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize, dpi, **kwargs):
    # matplotlib is imported with the first figure, after a comparison's computation: its
    # modules (about 26 MB) are not held through the peak of the command (memory)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _save(fig: Figure, path) -> None:
    """Write a figure as PNG through :func:`voxscale.files.atomic_write`."""
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png")


def plot_scan(result, path) -> None:
    """Correlation against voxel-scale factor, with the best factor and s = 1 marked.

    Parameters
    ----------
    result : voxscale.ScanResult
    path : str or os.PathLike
        PNG file to write (written to a temporary name, then renamed into place).
    """
    fig, ax = _subplots(figsize=(6.4, 4.2), dpi=110)
    ax.plot(result.scales, result.cc, "o-", ms=3.5, lw=1.2, color="#1f5fa8",
            label="refitted correlation")
    ax.axvline(1.0, color="0.45", ls="--", lw=1, label=f"s = 1 (cc {result.cc_at_unit:.4f})")
    ax.axvline(result.best_scale, color="#c0392b", lw=1.5,
               label=f"best s = {result.best_scale:.5f} ± {result.uncertainty:.5f} "
                     f"({result.percent:+.2f} %)")
    ax.axvspan(result.best_scale - result.uncertainty, result.best_scale + result.uncertainty,
               color="#c0392b", alpha=0.15)
    ax.set_xlabel("voxel-scale factor s (target voxel size × s)")
    ax.set_ylabel("correlation about the mean")
    ax.set_title("Voxel-scale scan")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    _save(fig, path)


def plot_shells(scaling, path, *, before=None) -> None:
    """Amplitude difference R and FSC against resolution, with the Wilson limit.

    Parameters
    ----------
    scaling : voxscale.ScalingResult
        Per-shell statistics (R after scaling, and R before scaling as a dashed line).
    path : str or os.PathLike
        PNG file.
    before : voxscale.ScalingResult, optional
        A second result drawn for comparison (e.g. before the voxel-scale correction).
    """
    fig, (ax_r, ax_f) = _subplots(1, 2, figsize=(9.6, 3.9), dpi=110)
    for result, label, style in ((before, "before correction", "--"),
                                 (scaling, "after" if before is not None else "", "-")):
        if result is None:
            continue
        x = np.array([0.5 * (1.0 / r["d_min"] + (1.0 / r["d_max"] if np.isfinite(r["d_max"])
                                                  else 0.0)) for r in result.shells])
        ax_r.plot(x, [r["r"] for r in result.shells], style, marker="o", ms=3,
                  label=f"R scaled {label}".strip())
        if before is None:
            ax_r.plot(x, [r["r_before"] for r in result.shells], ":", marker=".", ms=3,
                      label="R unscaled")
        ax_f.plot(x, [r["fsc"] for r in result.shells], style, marker="o", ms=3,
                  label=f"FSC {label}".strip())
    ax_r.axhline(100 * WILSON_R_ACENTRIC, color="0.4", lw=1, ls="-.",
                 label="Wilson limit 58.6 % (unrelated)")
    ax_r.set_xlabel("1/d (Å⁻¹)")
    ax_r.set_ylabel("amplitude difference R (%)")
    ax_f.set_xlabel("1/d (Å⁻¹)")
    ax_f.set_ylabel("FSC")
    ax_f.axhline(0.143, color="0.6", lw=0.8, ls=":")
    for ax in (ax_r, ax_f):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_expansion(result, path) -> None:
    """Shift length and radial projection against radius, with the fitted lines.

    Parameters
    ----------
    result : voxscale.analysis.ExpansionResult
    path : str or os.PathLike
        PNG file (written to a temporary name, then renamed into place).
    """
    fig, axes = _subplots(1, 2, figsize=(10.4, 4.3), dpi=110)
    radius = result.radius
    names = np.array(result.chains)
    r_line = np.linspace(0.0, float(radius.max()) * 1.03, 50)
    for ax, q, y, label in ((axes[0], "total", result.shift_length, "shift length (Å)"),
                            (axes[1], "radial", result.radial, "radial projection of shift (Å)")):
        for name in dict.fromkeys(result.chains):
            sel = names == name
            ax.scatter(radius[sel], y[sel], s=6, alpha=0.55, lw=0, label=f"chain {name}")
        styles = (("origin", "-", "#c0392b", "LSQ through origin"),
                  ("intercept", "--", "#1f5fa8", "LSQ with intercept"),
                  ("robust_origin", ":", "k", "robust through origin"))
        for key, ls, color, text in styles:
            fit = result.fits[q][key]
            if not np.isfinite(fit.slope):
                continue
            ax.plot(r_line, fit.intercept + fit.slope / 100.0 * r_line, ls, color=color, lw=1.5,
                    label=f"{text}: {fit.slope:+.2f} ± {fit.slope_se:.2f} %")
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_xlabel("distance from centre of mass (Å)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", markerscale=2)
    axes[0].set_title(f"Shift length, {result.n_pairs} Cα pairs", fontsize=10)
    f, f_se = result.similarity
    axes[1].set_title(f"Radial shift (RMSD {result.rmsd:.2f} Å); similarity scale "
                      f"{f:+.3f} ± {f_se:.3f} %", fontsize=10)
    axes[0].set_title(f"Shift length, {result.n_pairs} Cα pairs (an upper bound)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_absolute(result, path) -> None:
    """The correlation curve and the factors implied by the bond lengths.

    Parameters
    ----------
    result : voxscale.analysis.AbsoluteScaleResult
    path : str or os.PathLike
        PNG file (written to a temporary name, then renamed into place).
    """
    fig, (ax_c, ax_b) = _subplots(1, 2, figsize=(10.4, 4.2), dpi=110,
                                     gridspec_kw={"width_ratios": [3, 2]})
    ax_c.plot(result.scales, result.cc, "o-", ms=3.5, lw=1.2, color="#1f5fa8",
              label=f"model-map correlation ({result.resolution:.2f} Å, "
                    f"mask {result.mask_radius:g} Å)")
    ax_c.axvline(1.0, color="0.45", ls="--", lw=1, label="s = 1 (header voxel size)")
    ax_c.axvline(result.model_cc_best_scale, color="#c0392b", lw=1.5,
                 label=f"maximum s = {result.model_cc_best_scale:.4f} ({result.percent:+.2f} %)")
    if np.isfinite(result.bond_scale):
        ax_c.axvline(result.bond_scale, color="#27864a", lw=1.2, ls="-.",
                     label=f"bond lengths s = {result.bond_scale:.4f}")
    ax_c.set_xlabel("voxel-scale factor s (map voxel size × s)")
    ax_c.set_ylabel("correlation in the mask (refitted)")
    ax_c.set_title("Model-to-map correlation")
    ax_c.grid(alpha=0.3)
    ax_c.legend(fontsize=7, loc="lower center")
    names = [k for k, b in result.bonds.items() if b["n"]]
    y = np.arange(len(names))
    ax_b.errorbar([result.bonds[k]["scale"] for k in names], y,
                  xerr=[result.bonds[k]["scale_se"] for k in names], fmt="o", color="#27864a",
                  capsize=3, label="ideal / mean")
    ax_b.plot([result.bonds[k]["scale_median"] for k in names], y, "x", color="0.3",
              label="ideal / median")
    ax_b.set_yticks(y)
    ax_b.set_yticklabels([f"{k} ({result.bonds[k]['mean']:.3f} vs {result.bonds[k]['ideal']:.3f}"
                          " Å)" for k in names], fontsize=8)
    ax_b.axvline(1.0, color="0.45", ls="--", lw=1)
    ax_b.axvline(result.model_cc_best_scale, color="#c0392b", lw=1.2)
    if np.isfinite(result.bond_scale):
        ax_b.axvline(result.bond_scale, color="#27864a", lw=1.2, ls="-.")
    ax_b.set_xlabel("implied factor s")
    ax_b.set_title("Backbone bonds")
    ax_b.grid(alpha=0.3)
    ax_b.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


#: Cα atoms within this distance (Å) of a slice are drawn on it.
SLICE_SLAB_A = 3.0


def plot_difference_slices(diff_map, threshold: float, path, *, peaks=None,
                           models=()) -> None:
    """Three orthogonal slices of a difference map through its strongest peak (the map's
    strongest voxel without peaks), contoured at ±threshold (green positive, red negative),
    with the models' Cα atoms near each slice as dots.

    Parameters
    ----------
    diff_map : Map
        In z-scores or σ units.
    threshold : float
    path : str or os.PathLike
        PNG.
    peaks : PeakTable, optional
    models : sequence of gemmi.Structure, optional
        In the map's frame.
    """
    data = diff_map.data
    origin, voxel = np.asarray(diff_map.origin), np.asarray(diff_map.voxel_size)
    if peaks:
        centre = np.array([peaks[0].x, peaks[0].y, peaks[0].z])
    else:
        iz, iy, ix = np.unravel_index(int(np.argmax(np.abs(data))), data.shape)
        centre = origin + np.array([ix, iy, iz]) * voxel
    index = np.clip(np.rint((centre - origin) / voxel).astype(int), 0,
                    np.array(data.shape[::-1]) - 1)
    calpha = [np.array([[a.pos.x, a.pos.y, a.pos.z] for ch in m[0] for r in ch for a in r
                        if a.name == "CA"]).reshape(-1, 3) for m in models]
    limit = max(float(threshold) * 2.0, float(np.max(np.abs(data))) or 1.0)
    fig, axes = _subplots(1, 3, figsize=(12, 4.2), dpi=110)
    # (name, axis of the slice in x, y, z order, the two in-plane axes)
    for ax, (name, normal, (u, v)) in zip(axes, (("z", 2, (0, 1)), ("y", 1, (0, 2)),
                                                  ("x", 0, (1, 2)))):
        take = [slice(None)] * 3
        take[2 - normal] = index[normal]
        image = data[tuple(take)]  # rows the second in-plane axis (v), columns the first (u)
        extent = [origin[u], origin[u] + (data.shape[2 - u] - 1) * voxel[u],
                  origin[v], origin[v] + (data.shape[2 - v] - 1) * voxel[v]]
        ax.imshow(image, origin="lower", extent=extent, cmap="RdBu_r", vmin=-limit,
                  vmax=limit, interpolation="nearest")
        gu = origin[u] + np.arange(data.shape[2 - u]) * voxel[u]
        gv = origin[v] + np.arange(data.shape[2 - v]) * voxel[v]
        ax.contour(gu, gv, image, levels=[-float(threshold)], colors="#d62728",
                   linewidths=0.8)
        ax.contour(gu, gv, image, levels=[float(threshold)], colors="#2ca02c", linewidths=0.8)
        for xyz, colour in zip(calpha, ("#333333", "#7f3fbf")):
            near = np.abs(xyz[:, normal] - centre[normal]) < SLICE_SLAB_A
            ax.plot(xyz[near, u], xyz[near, v], ".", color=colour, markersize=3)
        ax.plot([centre[u]], [centre[v]], "+", color="black", markersize=10)
        ax.set_title(f"{name} = {centre[normal]:.1f} Å")
        ax.set_xlabel(f"{'xyz'[u]} (Å)")
        ax.set_ylabel(f"{'xyz'[v]} (Å)")
    _save(fig, path)
