"""Hints at a map's absolute voxel scale from its atomic model (DESIGN.md §1 step 7).

Two independent hints, both expressed as a **voxel-scale factor s**: the factor by which the
map's header voxel size should be multiplied (DESIGN.md §2; s < 1 means the header voxel
size is too large).

Model-to-map correlation against voxel scale
--------------------------------------------
For each trial factor s the map's voxel size becomes s·v about the centre of its box; the
model is re-fitted rigidly into it and the correlation inside a mask around the model is
recorded. The curve peaks at the factor for which the map's geometry agrees best with the
model's, which for a model refined with ideal geometry restraints means at the scale that
makes the map's bond lengths ideal.

How it is computed (the choice matters for a clean curve):

* the **model map** is computed once, with gemmi's electron-scattering density calculator
  (:func:`voxscale.simulate.model_map`) at the map's resolution, on a box around the model
  whose grid is aligned with the map's grid (same voxel size, origin shifted by whole
  voxels), and prepared for cubic B-spline interpolation;
* the **fit points** are the map's own grid points inside the mask (within ``mask_radius``,
  3 Å by default, of any atom), with their unmodified density values; at factor s they sit
  at c + s·(p − c), c the map's box centre, and are fitted rigidly into the model map
  (:func:`voxscale.fit.rigid_fit`, warm-started from the neighbouring factor).

So the experimental values are never interpolated (interpolating noisy data smooths it by an
amount that depends on where the points fall between voxels, which would put a spurious kink
into the curve at s = 1, where all points fall on voxels), the smooth model map is, and the
same set of map values is correlated at every factor. At s = 1 before refitting this is the
usual mask correlation on the map's grid. The mask is defined around the model in the frame
where the model fits the map best: a first, coarse pass finds the peak with the mask taken at
s = 1, then the mask is redrawn at that peak and the curve is computed at the requested
step; the peak is refined below the step with :func:`voxscale.scan.refine_peak`.

Backbone bond lengths
---------------------
Mean and median N–Cα, Cα–C, C–O and Cα–Cβ distances of the model against the ideal values of
Engh & Huber (1991): N–CA 1.458, CA–C 1.525, C–O 1.231, CA–CB 1.530 Å. The implied factor is
ideal / observed. The bonds measure the *model*, which was built and refined into the map:
a map whose header voxel size is too large shows the molecule too large, a model refined into
it has bonds slightly too long, and ideal / observed < 1 is the factor by which the map's
voxel size should be multiplied — the same convention as the correlation curve. Geometry
restraints pull bonds towards their ideal values during refinement, so the bonds follow the
map only partly: the implied factor is biased towards 1 and is a hint of the direction more
than of the size of a scale error.

Resolution
----------
The model map needs the map's resolution, which an MRC header does not record. Give it when
you know it (recommended; the deposited resolution). Without it, 2.5 × the largest voxel
size is used (maps are usually sampled at 1/2.5–1/3 of their resolution) and the result says
so (``resolution_source`` "estimated"). The position of the peak depends little on it: a
model map somewhat sharper or blurrier than the map changes the height of the curve far more
than the position of its maximum (EMD-3488, 3.2 Å, 1.05 Å voxels, with 5ME2: the peak is at
1.0011, 1.0003 and 1.0003 for 2.6 (the estimate), 3.2 and 4.0 Å).

Precision: on simulated maps with a known voxel-size error the peak is within about 1e-4
(noise-free, oversampled model map); on EMD-3488 evenly spread subsets of the mask points
give peaks that differ by a few 1e-4, which is the real precision on experimental data (the
``model_cc_uncertainty`` reported is that of the parabola fit only).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import gemmi
import numpy as np

from .cliutil import add_common_options, nonnegative_int
from .errors import ModelFormatError, VoxscaleError
from .fit import ReferenceGrid, rigid_fit
from .io import Map, read_map
from .models import read_model
from .scan import refine_peak
from .simulate import model_map

__all__ = ["IDEAL_BONDS", "AbsoluteScaleResult", "absolute_scale", "backbone_bonds",
           "plot_absolute", "add_cli"]

#: Ideal backbone bond lengths in Å (Engh & Huber, Acta Cryst. A47 (1991) 392-400).
IDEAL_BONDS = {"N-CA": 1.458, "CA-C": 1.525, "C-O": 1.231, "CA-CB": 1.530}

MapLike = Union[str, "os.PathLike[str]", Map]
ModelLike = Union[str, "os.PathLike[str]", gemmi.Structure]

#: Distances outside this range (Å) are not bonds of a sane model and are left out.
_BOND_RANGE = (1.0, 2.0)


def backbone_bonds(structure: gemmi.Structure, *, model_index: int = 0) -> dict:
    """Backbone bond lengths of a protein model against their ideal values.

    Parameters
    ----------
    structure : gemmi.Structure
        The model; alternative conformations other than the first are ignored.
    model_index : int, optional
        Which model of the structure (default the first).

    Returns
    -------
    dict
        For each of "N-CA", "CA-C", "C-O", "CA-CB": ``n``, ``mean``, ``median``, ``std``
        and ``ideal`` in Å, ``scale`` = ideal / mean and ``scale_median`` = ideal /
        median (dimensionless; the factor for the map's voxel size), ``scale_se`` (standard
        error of ``scale``) and ``n_excluded`` (distances outside 1–2 Å, not counted).
        Types with no bonds have ``n`` 0 and NaN values.
    """
    st = structure.clone()
    st.remove_alternative_conformations()
    lengths = {name: [] for name in IDEAL_BONDS}
    for chain in st[model_index]:
        for res in chain:
            info = gemmi.find_tabulated_residue(res.name)
            if info is None or not info.is_amino_acid():
                continue
            atoms = {}
            for name in ("N", "CA", "C", "O", "CB"):
                a = res.find_atom(name, "*")
                if a is not None:
                    atoms[name] = a.pos
            for bond in IDEAL_BONDS:
                a, b = bond.split("-")
                if a in atoms and b in atoms:
                    lengths[bond].append(atoms[a].dist(atoms[b]))
    out = {}
    for bond, ideal in IDEAL_BONDS.items():
        d = np.array(lengths[bond], dtype=np.float64)
        ok = (d >= _BOND_RANGE[0]) & (d <= _BOND_RANGE[1])
        d_ok = d[ok]
        n = len(d_ok)
        mean = float(d_ok.mean()) if n else float("nan")
        median = float(np.median(d_ok)) if n else float("nan")
        std = float(d_ok.std(ddof=1)) if n > 1 else float("nan")
        out[bond] = {
            "n": n, "mean": mean, "median": median, "std": std, "ideal": ideal,
            "scale": ideal / mean if n else float("nan"),
            "scale_median": ideal / median if n else float("nan"),
            "scale_se": float(ideal * std / mean**2 / np.sqrt(n)) if n > 1 else float("nan"),
            "n_excluded": int(np.count_nonzero(~ok)),
        }
    return out


def _bond_scale(bonds: dict):
    """Mean of the per-type factors ideal / mean, and its standard error from their spread.

    The bond types disagree with one another far more than their counting errors allow
    (refinement programs restrain to slightly different ideal values), so the uncertainty is
    taken from the spread between the types, not from the number of bonds.
    """
    s = np.array([b["scale"] for b in bonds.values()], dtype=np.float64)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return float("nan"), float("nan")
    se = float(s.std(ddof=1) / np.sqrt(len(s))) if len(s) > 1 else float("nan")
    return float(s.mean()), se


@dataclass
class AbsoluteScaleResult:
    """Outcome of :func:`absolute_scale`.

    Attributes
    ----------
    model_cc_best_scale : float
        Voxel-scale factor at the maximum of the model-to-map correlation (the map's voxel
        size should be this × its header value).
    model_cc_uncertainty : float
        Standard uncertainty of ``model_cc_best_scale`` from the peak fit (numerical only).
    scales, cc : numpy.ndarray
        The curve: factors (sorted) and the correlation after refitting at each.
    model_cc_best : float
        Correlation refitted at ``model_cc_best_scale``.
    model_cc_at_unit : float
        Correlation refitted at s = 1 (NaN when 1 is not among the factors).
    model_cc_unfitted : float
        Correlation at s = 1 with the model as deposited (mask CC on the map's grid).
    transform : numpy.ndarray, shape (4, 4)
        Rigid fit at the best factor: x_model = R·x + t for map coordinates x scaled by
        ``model_cc_best_scale`` about the map's centre.
    bonds : dict
        :func:`backbone_bonds` of the model.
    bond_scale, bond_scale_se : float
        The factor the bond lengths imply: the mean over the bond types of ideal / mean, and
        its standard error from the spread between the types.
    resolution : float
        Resolution of the model map in Å.
    resolution_source : str
        "given" or "estimated" (2.5 × the largest voxel size).
    mask_radius : float
        Mask radius around the atoms in Å.
    n_points : int
        Map grid points inside the mask (the fit points).
    first_pass_scale : float
        Peak of the first, coarse pass (mask at s = 1).
    peak_at_edge : bool
        True when the largest correlation is at the first or last factor: the maximum lies
        outside the range, and ``model_cc_best_scale`` is only that end of it.
    seconds : float
        Wall time.
    """

    model_cc_best_scale: float
    model_cc_uncertainty: float
    scales: np.ndarray
    cc: np.ndarray
    model_cc_best: float
    model_cc_at_unit: float
    model_cc_unfitted: float
    transform: np.ndarray
    bonds: dict
    bond_scale: float
    bond_scale_se: float
    resolution: float
    resolution_source: str
    mask_radius: float
    n_points: int
    first_pass_scale: float
    peak_at_edge: bool = False
    seconds: float = 0.0
    inputs: dict = field(default_factory=dict)

    @property
    def percent(self) -> float:
        """float : 100·(model_cc_best_scale − 1), the implied voxel-size correction in %."""
        return 100.0 * (self.model_cc_best_scale - 1.0)

    def to_dict(self) -> dict:
        """The machine-readable summary (the content of ``absolute.json``).

        Returns
        -------
        dict
            ``model_cc_best_scale``, ``model_cc_scales``, ``model_cc``, ``bond_scale``,
            ``bonds`` (per type: n, mean, median, std, ideal in Å; scale, scale_median,
            scale_se), and the other attributes of :class:`AbsoluteScaleResult`.
        """
        return {
            "model_cc_best_scale": self.model_cc_best_scale,
            "model_cc_uncertainty": self.model_cc_uncertainty,
            "model_cc_percent": self.percent,
            "model_cc_scales": self.scales,
            "model_cc": self.cc,
            "model_cc_best": self.model_cc_best,
            "model_cc_at_unit": self.model_cc_at_unit,
            "model_cc_unfitted": self.model_cc_unfitted,
            "transform": self.transform,
            "bond_scale": self.bond_scale,
            "bond_scale_se": self.bond_scale_se,
            "bond_percent": 100.0 * (self.bond_scale - 1.0),
            "bonds": self.bonds,
            "resolution": self.resolution,
            "resolution_source": self.resolution_source,
            "mask_radius": self.mask_radius,
            "n_points": self.n_points,
            "first_pass_scale": self.first_pass_scale,
            "peak_at_edge": self.peak_at_edge,
            "seconds": self.seconds,
            "units": {"scale": "factor for the map's voxel size", "bonds": "Å",
                      "resolution": "Å", "mask_radius": "Å"},
            "inputs": self.inputs,
        }


def _good_size(n: int) -> int:
    """Smallest 2,3,5-smooth integer >= n (fast FFT sizes)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


class _ModelFrame:
    """The model map and the atom mask on one grid aligned with the map's grid.

    The grid's spacing is the map's voxel size divided by ``oversample`` and its origin is
    a map grid point, so every map grid point is also a model-map grid point.
    """

    def __init__(self, structure, xyz, exp: Map, resolution, mask_radius, margin, oversample,
                 nthreads):
        v = exp.voxel_size
        lo = np.floor((xyz.min(axis=0) - margin - exp.origin) / v)
        hi = np.ceil((xyz.max(axis=0) + margin - exp.origin) / v)
        n = np.array([_good_size(int(k) * oversample) for k in (hi - lo + 1)])
        origin = exp.origin + lo * v
        self.map = model_map(structure, voxel_size=v / oversample, shape=tuple(n[::-1]),
                             origin=origin, resolution=resolution, nthreads=nthreads)
        self.grid = ReferenceGrid(self.map, order=3, nthreads=nthreads)
        self.mask = self._atom_mask(structure, mask_radius)

    @staticmethod
    def default_oversample(xyz, exp: Map, resolution, margin) -> int:
        """2 when the map samples the resolution finer than d/4 and the grid stays small."""
        v = exp.voxel_size
        if resolution >= 4.0 * float(np.max(v)):
            return 1
        n = np.ceil((np.ptp(xyz, axis=0) + 2 * margin) / v) + 1
        return 2 if float(np.prod(2 * n)) <= 2**25 else 1

    def _atom_mask(self, structure, radius) -> np.ndarray:
        """Grid points within ``radius`` Å of an atom (gemmi, on the model map's grid)."""
        from .simulate import transform_structure

        nz, ny, nx = self.map.shape
        shift = np.eye(4)
        shift[:3, 3] = -self.map.origin  # gemmi's grid starts at 0; the margin stops wrapping
        grid = gemmi.Int8Grid()
        grid.unit_cell = gemmi.UnitCell(*(self.map.voxel_size * (nx, ny, nz)), 90, 90, 90)
        grid.spacegroup = gemmi.SpaceGroup("P 1")
        grid.set_size(nx, ny, nz)
        grid.mask_points_in_constant_radius(transform_structure(structure, shift)[0],
                                            float(radius), 1)
        return np.ascontiguousarray(np.array(grid, copy=False).transpose(2, 1, 0) > 0)

    def inside_mask(self, points: np.ndarray) -> np.ndarray:
        """Mask value at the nearest grid point of each position (model frame, Å)."""
        idx = np.rint((points - self.map.origin) / self.map.voxel_size).astype(np.int64)
        nz, ny, nx = self.map.shape
        ok = np.all((idx >= 0) & (idx < (nx, ny, nz)), axis=1)
        out = np.zeros(len(points), dtype=bool)
        i = idx[ok]
        out[ok] = self.mask[i[:, 2], i[:, 1], i[:, 0]]
        return out


def _scale_grid(lo: float, hi: float, step: float) -> np.ndarray:
    if not (0 < lo < 1 < hi) or not step > 0:
        raise ValueError(f"the scale range must contain 1 (got {lo}..{hi}) and the step must "
                         f"be > 0 (got {step})")
    n_lo = int(np.floor((1 - lo) / step + 1e-9))
    n_hi = int(np.floor((hi - 1) / step + 1e-9))
    return 1.0 + step * np.arange(-n_lo, n_hi + 1)


def _curve(frame, points, values, center, scales, start, start_scale, nthreads, progress,
           done, total):
    """Refit at every factor, outwards from ``start_scale``; returns {scale: FitResult}."""
    scales = np.sort(np.asarray(scales, dtype=np.float64))
    pivot = int(np.argmin(np.abs(scales - start_scale)))
    order = list(range(pivot, len(scales))) + list(range(pivot - 1, -1, -1))
    centroid = points.mean(axis=0)
    fits = {}

    def start_for(s):
        if not fits:
            base, base_s = start, start_scale
        else:
            base_s = min(fits, key=lambda k: abs(k - s))
            base = fits[base_s].transform
        # Compensate the centroid's move between the factors, so each refit starts close.
        m = base.copy()
        m[:3, 3] -= base[:3, :3] @ ((s - base_s) * (centroid - center))
        return m

    for count, i in enumerate(order, start=1):
        s = float(scales[i])
        fit = rigid_fit(frame.grid, np.ascontiguousarray(center + s * (points - center)),
                        values, start_for(s), nthreads=nthreads)
        if not fit.n_inside == fit.n_points:
            raise VoxscaleError(f"at factor {s:.4f} the map points left the model-map box; "
                                "narrow the --range")
        fits[s] = fit
        if progress is not None:
            progress(done + count, total, f"s = {s:.4f}  cc = {fit.cc:.5f}")
    return fits


def _peak(fits, step):
    keys = np.array(sorted(fits))
    cc = np.array([fits[k].cc for k in keys])
    i = int(np.argmax(cc))
    if step is not None:
        near = np.abs(keys - keys[i]) <= 3.5 * step
        keys, cc = keys[near], cc[near]
    return refine_peak(keys, cc)


def absolute_scale(map: MapLike, model: ModelLike, *, scales=None, resolution=None,
                   scale_range=(0.95, 1.05), step: float = 0.005, mask_radius: float = 3.0,
                   max_points: int = 100000, oversample: Optional[int] = None,
                   nthreads: int = 0,
                   progress: Optional[Callable[[int, int, str], None]] = None
                   ) -> AbsoluteScaleResult:
    """Absolute-scale hints for a map from its own atomic model.

    See the module documentation for the method and the conventions.

    Parameters
    ----------
    map : str, os.PathLike or Map
        The experimental map.
    model : str, os.PathLike or gemmi.Structure
        Its atomic model, placed in the map (first model of the file used).
    scales : array_like, optional
        Explicit trial voxel-scale factors (used for both passes); default the range
        ``scale_range`` at ``step``, after a first pass at max(step, 0.01).
    resolution : float, optional
        Resolution of the map in Å, for the model map. Default 2.5 × the largest voxel size.
    scale_range : (float, float), optional
        Factors of the default curve (0.95, 1.05); must contain 1.
    step : float, optional
        Step of the default curve (0.005).
    mask_radius : float, optional
        Radius in Å around every atom of the mask in which the correlation is computed
        (default 3).
    max_points : int, optional
        If more map points lie in the mask, fit an evenly spread subset of about this many
        (every k-th in grid order; default 100000, 0 for all). The correlations reported are
        over that subset.
    oversample : int, optional
        The model map's grid spacing is the map's voxel size / ``oversample`` (1–4). Default
        2 when the map samples its resolution finer than d/4 (cubic interpolation of the
        model map is then accurate to about 1e-4 in the factor; at the map's own spacing
        and d ≈ 3 voxels it can be off by 3e-4) and the finer grid has at most 2²⁵ points,
        else 1.
    nthreads : int, optional
        Threads (0 = all available).
    progress : callable, optional
        Called as progress(done, total, message) after each refit.

    Returns
    -------
    AbsoluteScaleResult
        ``model_cc_best_scale`` (factor for the map's voxel size at the correlation maximum),
        the curve, the bond lengths and ``bond_scale``.

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    MapFormatError, ModelFormatError
        If a file cannot be read, or the model has no protein atoms. The message names the
        file.
    VoxscaleError
        If the model does not overlap the map (too few map points inside the mask).
    ValueError
        For a bad range, step, resolution or mask radius.
    """
    t0 = time.perf_counter()
    map_name = "the map" if isinstance(map, Map) else os.fspath(map)
    exp = map if isinstance(map, Map) else read_map(map)
    if isinstance(model, gemmi.Structure):
        structure, model_name = model, "the model"
    else:
        structure, model_name = read_model(model), os.fspath(model)
    if not mask_radius > 0:
        raise ValueError(f"mask_radius must be > 0 Å, got {mask_radius}")
    if resolution is None:
        resolution, source = 2.5 * float(np.max(exp.voxel_size)), "estimated"
    else:
        resolution, source = float(resolution), "given"
        if not (np.isfinite(resolution) and resolution > 0):
            raise ValueError(f"resolution must be a positive number of Å, got {resolution}")
    if scales is None:
        fine = _scale_grid(*scale_range, step)
        coarse = _scale_grid(*scale_range, max(step, 0.01))
        fine_step, coarse_step = step, max(step, 0.01)
    else:
        fine = np.unique(np.asarray(scales, dtype=np.float64))
        if len(fine) < 3 or np.any(fine <= 0) or not np.all(np.isfinite(fine)):
            raise ValueError("give at least 3 positive, finite trial scales")
        coarse, fine_step, coarse_step = fine, None, None

    bonds = backbone_bonds(structure)
    if sum(b["n"] for b in bonds.values()) == 0:
        raise ModelFormatError(f"{model_name}: no protein backbone atoms (N, CA, C, O)")
    st = structure.clone()
    st.remove_hydrogens()
    while len(st) > 1:  # the first model only
        del st[1]
    xyz = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r], dtype=np.float64)
    # The curve moves points by up to |s - 1| × their distance from the map centre before the
    # refit brings them back; the margin also keeps the calculator's periodic images apart.
    extent = float(np.max(np.linalg.norm(xyz - xyz.mean(axis=0), axis=1)))
    worst = float(np.max(np.abs(np.concatenate([fine, coarse]) - 1.0)))
    margin = mask_radius + 2.0 * resolution + 3.0 + (worst + 0.01) * extent
    if oversample is None:
        oversample = _ModelFrame.default_oversample(xyz, exp, resolution, margin)
    elif int(oversample) != oversample or not 1 <= oversample <= 4:
        raise ValueError(f"oversample must be 1, 2, 3 or 4, got {oversample!r}")
    frame = _ModelFrame(st, xyz, exp, resolution, mask_radius, margin, int(oversample),
                        nthreads)

    center = exp.center
    # Candidate map points: those that can reach the mask at any factor of the curve.
    reach = margin + worst * float(np.max(np.abs(xyz.mean(axis=0) - center)))
    lo = np.maximum(np.floor((xyz.min(axis=0) - reach - exp.origin) / exp.voxel_size), 0)
    hi = np.minimum(np.ceil((xyz.max(axis=0) + reach - exp.origin) / exp.voxel_size),
                    exp.grid_size - 1)
    if np.any(hi < lo):
        raise VoxscaleError(f"{model_name} does not overlap {map_name}")
    lo, hi = lo.astype(int), hi.astype(int)
    iz, iy, ix = np.meshgrid(*[np.arange(lo[k], hi[k] + 1) for k in (2, 1, 0)], indexing="ij")
    grid_xyz = exp.origin + np.stack([ix.ravel(), iy.ravel(), iz.ravel()], axis=1) * exp.voxel_size
    values_all = exp.data[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1].ravel()

    def select(transform, s):
        moved = (center + s * (grid_xyz - center)) @ transform[:3, :3].T + transform[:3, 3]
        keep = frame.inside_mask(moved)
        if np.count_nonzero(keep) < 100:
            raise VoxscaleError(f"{model_name} does not overlap {map_name}: only "
                                f"{np.count_nonzero(keep)} map points lie within "
                                f"{mask_radius} Å of its atoms")
        if max_points and np.count_nonzero(keep) > max_points:
            chosen = np.flatnonzero(keep)
            keep = chosen[::int(np.ceil(len(chosen) / max_points))]
        vals = values_all[keep].astype(np.float64)
        return np.ascontiguousarray(grid_xyz[keep]), (vals - vals.mean()).astype(np.float32)

    identity = np.eye(4)
    points, values = select(identity, 1.0)
    cc_unfitted = float(frame.grid.score(points, values, np.eye(3), np.zeros(3),
                                         points.mean(axis=0))[0])
    total = len(coarse) + len(fine) + 1
    first = _curve(frame, points, values, center, coarse, identity, 1.0, nthreads, progress, 0,
                   total)
    s1, _ = _peak(first, coarse_step)
    nearest = min(first, key=lambda k: abs(k - s1))
    t1 = _curve(frame, points, values, center, [s1], first[nearest].transform, nearest,
                nthreads, None, 0, 0)[s1].transform
    # Second pass: the mask redrawn where the model sits at the first peak.
    points, values = select(t1, s1)
    fits = _curve(frame, points, values, center, fine, t1, s1, nthreads, progress,
                  len(coarse), total)
    best, uncertainty = _peak(fits, fine_step)
    nearest = min(fits, key=lambda k: abs(k - best))
    final = _curve(frame, points, values, center, [best], fits[nearest].transform, nearest,
                   nthreads, None, 0, 0)[best]
    if progress is not None:
        progress(total, total, f"best s = {best:.4f}")
    keys = np.array(sorted(fits))
    cc = np.array([fits[k].cc for k in keys])
    near_unit = float(keys[np.argmin(np.abs(keys - 1.0))])
    peak_index = int(np.argmax(cc))
    bond_scale, bond_se = _bond_scale(bonds)
    return AbsoluteScaleResult(
        model_cc_best_scale=float(best), model_cc_uncertainty=float(uncertainty),
        scales=keys, cc=cc, model_cc_best=final.cc,
        model_cc_at_unit=fits[near_unit].cc if abs(near_unit - 1.0) < 1e-9 else float("nan"),
        peak_at_edge=peak_index in (0, len(keys) - 1),
        model_cc_unfitted=cc_unfitted, transform=final.transform, bonds=bonds,
        bond_scale=bond_scale, bond_scale_se=bond_se, resolution=resolution,
        resolution_source=source, mask_radius=float(mask_radius), n_points=len(values),
        first_pass_scale=float(s1), seconds=time.perf_counter() - t0,
        inputs={"map": None if isinstance(map, Map) else map_name,
                "model": None if isinstance(model, gemmi.Structure) else model_name})


def plot_absolute(result: AbsoluteScaleResult, path) -> None:
    """The correlation curve and the factors implied by the bond lengths.

    Parameters
    ----------
    result : AbsoluteScaleResult
    path : str or os.PathLike
        PNG file (written to a temporary name, then renamed into place).
    """
    from .plots import _figure, _save

    plt = _figure()
    fig, (ax_c, ax_b) = plt.subplots(1, 2, figsize=(10.4, 4.2), dpi=110,
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
    _save(fig, path, plt)


def _cmd_absolute(args: argparse.Namespace) -> int:
    from . import __version__
    from .output import OutputDir
    from .progress import ProgressBar

    out = OutputDir(args.out, ["absolute.json", "absolute.png"], force=args.force)
    lo, hi = args.range
    if not (0 < lo < 1 < hi):
        raise VoxscaleError(f"--range {lo} {hi} must contain 1 and be positive")
    bar = ProgressBar("absolute", 1, enabled=not args.quiet)

    def progress(done, total, message):
        bar.total = total
        bar.update(done, message)

    try:
        result = absolute_scale(args.map, args.model, resolution=args.resolution,
                                scale_range=(lo, hi), step=args.step,
                                mask_radius=args.mask_radius, max_points=args.max_points,
                                nthreads=args.threads,
                                progress=progress)
    finally:
        bar.close()
    report = result.to_dict()
    report["version"] = __version__
    out.create()
    plot_absolute(result, out / "absolute.png")
    out.write_json("absolute.json", report)
    if result.peak_at_edge and not args.quiet:
        print(f"voxscale absolute: warning: the correlation is largest at the end of the range "
              f"({result.model_cc_best_scale:.4f}); widen --range", file=sys.stderr)
    if not args.quiet:
        note = " (estimated; give --resolution)" if result.resolution_source == "estimated" else ""
        print(f"model-map correlation peaks at s = {result.model_cc_best_scale:.4f} "
              f"({result.percent:+.2f} %, cc {result.model_cc_best:.4f}); bonds imply "
              f"s = {result.bond_scale:.4f} ± {result.bond_scale_se:.4f}; resolution "
              f"{result.resolution:.2f} Å{note}; written to {out.path}")
    return 0


def add_cli(subparsers) -> None:
    """Register ``voxscale absolute`` on an argparse sub-parser collection.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From :meth:`argparse.ArgumentParser.add_subparsers`.
    """
    p = subparsers.add_parser(
        "absolute", help="absolute-scale hints for MAP from its model MODEL",
        description="Model-to-map correlation as a function of the map's voxel-scale factor "
                    "(model refitted at each) and backbone bond lengths against ideal values. "
                    "Factors are for the map's voxel size (s < 1: header voxel too large). "
                    "Writes absolute.json and absolute.png into --out.")
    p.add_argument("map", help="map (MRC/CCP4)")
    p.add_argument("model", help="its atomic model (PDB/mmCIF), placed in the map")
    p.add_argument("--resolution", type=float, default=None, metavar="D",
                   help="map resolution in Å for the model map (default 2.5 × voxel size; "
                        "giving the real one is better)")
    p.add_argument("--range", nargs=2, type=float, default=(0.95, 1.05), metavar=("LO", "HI"),
                   help="factors of the curve (default 0.95 1.05)")
    p.add_argument("--step", type=float, default=0.005, help="step of the curve (default 0.005)")
    p.add_argument("--mask-radius", type=float, default=3.0,
                   help="mask radius around atoms in Å (default 3)")
    p.add_argument("--max-points", type=nonnegative_int, default=100000,
                   help="fit at most about this many map points (default 100000, 0 = all)")
    add_common_options(p)
    p.set_defaults(run=_cmd_absolute)
