"""Resolution shells of the half-transform and per-shell sums of structure factors.

Resolution is given as d in Å and as s = 1/d in Å⁻¹. The half-transform of an (nz, ny, nx) map
(:func:`voxscale.half_transform`) has shape (nz, ny, nx//2 + 1); in its planes h = 0 (and
h = nx/2 for even nx) each reflection's Friedel mate is stored as well, and only one of each
pair is counted, so the sums below are sums over unique reflections. F(000) is never counted.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .. import _core
from ..errors import OptionError, ResolutionRangeError
from ..threads import resolve_threads

__all__ = ["ShellSums", "check_resolution_range", "shell_edges", "shell_index", "shell_sums",
           "resolution_from_fsc"]

#: Relative margin on the high-resolution limit, so that reflections at exactly d_min count.
D_MIN_TOLERANCE = 1e-9

#: Most resolution shells a sum may have.
MAX_SHELLS = 100000

#: Resolutions (Å) accepted as limits: finer than 0.001 Å or coarser than 1 mm is no map.
RESOLUTION_BOUNDS = (1e-3, 1e7)


def check_resolution_range(d_max, d_min):
    """Validate a resolution range and return it as (d_max or None, d_min) floats.

    Parameters
    ----------
    d_max : float or None
        Low-resolution limit in Å; None or +inf for no limit.
    d_min : float
        High-resolution limit in Å.

    Returns
    -------
    (float or None, float)

    Raises
    ------
    ResolutionRangeError
        Unless 0.001 Å <= d_min < d_max <= 1e7 Å (d_max may be None or +inf for no limit).

    Examples
    --------
    >>> check_resolution_range(None, 3)
    (None, 3.0)
    """
    try:
        d_min = float(d_min)
        d_max = None if d_max is None or float(d_max) == np.inf else float(d_max)
    except (TypeError, ValueError):
        raise ResolutionRangeError(f"resolution limits must be numbers (Å), got {d_max!r}, "
                                   f"{d_min!r}") from None
    lo, hi = RESOLUTION_BOUNDS
    if not (np.isfinite(d_min) and lo <= d_min < hi):
        raise ResolutionRangeError(f"d_min = {d_min!r} Å is not a resolution: give "
                                   f"{lo:g} Å to {hi:g} Å")
    if d_max is not None and not (np.isfinite(d_max) and d_min < d_max <= hi):
        raise ResolutionRangeError(f"d_max = {d_max!r} Å must be larger than d_min "
                                   f"({d_min:g} Å) and at most {hi:g} Å (or none)")
    return d_max, d_min


def shell_edges(d_max, d_min, n_shells: int = 20, *, spacing: str = "cubic") -> np.ndarray:
    """Shell edges in s = 1/d (Å⁻¹) between two resolutions.

    Parameters
    ----------
    d_max : float or None
        Low-resolution limit in Å (None or inf: start at s = 0).
    d_min : float
        High-resolution limit in Å.
    n_shells : int, optional
        Number of shells (default 20).
    spacing : {"cubic", "linear"}, optional
        "cubic" (default): equal steps in s³, so that shells hold about equal numbers of
        reflections; "linear": equal steps in s.

    Returns
    -------
    numpy.ndarray, shape (n_shells + 1,)
        Increasing edges in Å⁻¹; shell j holds edges[j] <= s < edges[j+1]. The last edge is
        raised by a relative 1e-9 so that reflections at exactly d_min are included, whatever
        the rounding of 1/d_min.
    """
    d_max, d_min = check_resolution_range(d_max, d_min)
    s_lo = 0.0 if d_max is None else 1.0 / d_max
    s_hi = 1.0 / d_min
    if isinstance(n_shells, bool) or int(n_shells) != n_shells or not 1 <= n_shells <= MAX_SHELLS:
        raise OptionError(f"n_shells must be a whole number from 1 to {MAX_SHELLS}, got "
                          f"{n_shells!r}")
    if spacing == "cubic":
        edges = np.cbrt(np.linspace(s_lo**3, s_hi**3, int(n_shells) + 1))
    elif spacing == "linear":
        edges = np.linspace(s_lo, s_hi, int(n_shells) + 1)
    else:
        raise OptionError(f"spacing must be 'cubic' or 'linear', got {spacing!r}")
    edges[0], edges[-1] = s_lo, s_hi * (1.0 + D_MIN_TOLERANCE)
    return edges


def shell_index(shape, cell, edges, *, nthreads: int = 0) -> np.ndarray:
    """Shell of every reflection of the half-transform.

    Parameters
    ----------
    shape : tuple of int
        Map shape (nz, ny, nx).
    cell : array_like, shape (3,)
        Box lengths (a, b, c) = (nx·vx, ny·vy, nz·vz) in Å.
    edges : array_like
        Increasing shell edges in s = 1/d (Å⁻¹), see :func:`shell_edges`.
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    numpy.ndarray of int32, shape (nz, ny, nx//2 + 1)
        Shell j with edges[j] <= s < edges[j+1]; -1 outside all shells, for F(000) and for
        the redundant member of each Friedel pair.
    """
    nthreads = resolve_threads(nthreads)
    return _core.shell_index(tuple(int(n) for n in shape), np.asarray(cell, dtype=np.float64),
                             np.ascontiguousarray(edges, dtype=np.float64), nthreads)


@dataclass
class ShellSums:
    """Per-shell sums over reflections (each array has one entry per shell).

    Attributes
    ----------
    count : numpy.ndarray of int64
        Number of reflections.
    sum_f1, sum_f2 : numpy.ndarray
        Σ|F1|, Σ|F2|.
    sum_f1_sq, sum_f2_sq : numpy.ndarray
        Σ|F1|², Σ|F2|².
    sum_abs_diff : numpy.ndarray
        Σ| |F1| − |F2| |, the numerator of the amplitude difference R.
    sum_re_cross : numpy.ndarray
        Re Σ F1·conj(F2), the numerator of the FSC.
    """

    count: np.ndarray
    sum_f1: np.ndarray
    sum_f2: np.ndarray
    sum_f1_sq: np.ndarray
    sum_f2_sq: np.ndarray
    sum_abs_diff: np.ndarray
    sum_re_cross: np.ndarray

    def __add__(self, other: "ShellSums") -> "ShellSums":
        """The sums over the reflections of both (e.g. two chunks of one list)."""
        return ShellSums(*(getattr(self, f.name) + getattr(other, f.name)
                           for f in fields(self)))

    @property
    def r_factor(self) -> np.ndarray:
        """numpy.ndarray : Amplitude difference Σ||F1|−|F2|| / Σ|F1| per shell (fraction)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum_abs_diff / self.sum_f1

    @property
    def fsc(self) -> np.ndarray:
        """numpy.ndarray : Re ΣF1·F2* / √(Σ|F1|² Σ|F2|²) per shell (not mean-subtracted)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum_re_cross / np.sqrt(self.sum_f1_sq * self.sum_f2_sq)


def shell_sums(f1, f2, shells, n_shells: int, *, nthreads: int = 0) -> ShellSums:
    """Per-shell sums over one or two arrays of structure factors.

    Parameters
    ----------
    f1 : numpy.ndarray of complex64
        Structure factors (any shape, e.g. a half-transform).
    f2 : numpy.ndarray of complex64 or None
        Second array of the same size, or None (its sums are then zero).
    shells : numpy.ndarray of int32
        Shell of each entry (same size), e.g. from :func:`shell_index`; entries outside
        [0, n_shells) are skipped.
    n_shells : int
        Number of shells.
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    ShellSums
    """
    nthreads = resolve_threads(nthreads)
    f1 = np.ascontiguousarray(f1, dtype=np.complex64)
    f2 = None if f2 is None else np.ascontiguousarray(f2, dtype=np.complex64)
    shells = np.ascontiguousarray(shells, dtype=np.int32)
    if isinstance(n_shells, bool) or int(n_shells) != n_shells or not 0 <= n_shells <= MAX_SHELLS:
        # refused before the kernel allocates its per-shell sums
        raise OptionError(f"n_shells must be a whole number from 0 to {MAX_SHELLS}, got "
                          f"{n_shells!r}")
    return ShellSums(**_core.shell_sums(f1, f2, shells, int(n_shells), nthreads))


def resolution_from_fsc(fsc: np.ndarray, edges: np.ndarray, *, threshold: float = 0.143) -> float:
    """Resolution (Å) from an FSC curve: the inner edge of the last shell before the first one
    below ``threshold`` (the first shell, which holds the envelope, is not tested); the outer
    edge of the last shell if none fails.

    Parameters
    ----------
    fsc : numpy.ndarray, shape (n,)
        FSC per shell.
    edges : numpy.ndarray, shape (n + 1,)
        Shell edges in spatial frequency (Å⁻¹), increasing.
    threshold : float, optional
    """
    below = np.flatnonzero(fsc[1:] < threshold)
    if not len(below):
        return float(1.0 / edges[-1])
    last_good = below[0]  # index into shells of the shell before the first failing one
    return float(1.0 / edges[max(last_good, 1)])
