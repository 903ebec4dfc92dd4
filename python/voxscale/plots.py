"""Figures (PNG, matplotlib with the non-interactive Agg backend)."""
from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_scan"]


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
    tmp = f"{os.fspath(path)}.tmp.png"
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
