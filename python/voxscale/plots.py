"""Figures (PNG, matplotlib with the non-interactive Agg backend)."""
from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_scan", "plot_shells"]


def _figure():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def plot_scan(result, path) -> None:
    """Correlation against voxel-scale factor, with the best factor and s = 1 marked.

    Parameters
    ----------
    result : voxscale.scan.ScanResult
    path : str or os.PathLike
        PNG file to write (written to a temporary name, then renamed into place).
    """
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
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
    _save(fig, path, plt)


def plot_shells(scaling, path, *, before=None) -> None:
    """Amplitude difference R and FSC against resolution, with the Wilson limit.

    Parameters
    ----------
    scaling : voxscale.scaling.ScalingResult
        Per-shell statistics (R after scaling, and R before scaling as a dashed line).
    path : str or os.PathLike
        PNG file.
    before : voxscale.scaling.ScalingResult, optional
        A second result drawn for comparison (e.g. before the voxel-scale correction).
    """
    from .scaling import WILSON_R_ACENTRIC

    plt = _figure()
    fig, (ax_r, ax_f) = plt.subplots(1, 2, figsize=(9.6, 3.9), dpi=110)
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
    _save(fig, path, plt)


def _save(fig, path, plt) -> None:
    tmp = f"{os.fspath(path)}.tmp.png"
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
