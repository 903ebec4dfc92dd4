"""Hints at a map's absolute voxel scale from its atomic model (docs/method.md §1 step 7).

Two independent hints, both expressed as a **voxel-scale factor s**: the factor by which the
map's header voxel size should be multiplied (docs/method.md §2; s < 1 means the header voxel
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
  (:func:`voxscale.reciprocal.model_map.model_map`) at the map's resolution, on a box around the model
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
step; the peak is refined below the step with :func:`voxscale.fit.scan.refine_peak`.

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

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import gemmi
import numpy as np

from ..errors import ModelFormatError, OptionError, VoxscaleError
from ..fit.points import FitPoints
from ..fit.rigid import ReferenceGrid
from ..fit.scan import ScaleSweep, ScanOptions, factor_grid, peak_of_curve
from ..maps.map import Map
from ..maps.mrc import read_map
from ..maps.models import read_model
from ..reciprocal.model_map import model_map
from ..reciprocal.shells import check_resolution_range
from ..reciprocal.transform import fast_length
from ..threads import resolve_threads

__all__ = ["IDEAL_BONDS", "AbsoluteScaleResult", "absolute_scale", "backbone_bonds"]

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
    """Mean of the per-type factors ideal / mean, and its uncertainty: the spread between
    the types (their standard deviation).

    The bond types disagree with one another far more than their counting errors allow
    (refinement programs restrain to slightly different ideal values, and which ones were
    used is unknown), so the disagreement is a systematic error of the hint: it does not
    shrink with the number of types, and the uncertainty is the spread itself, not the
    standard error of the mean over the types.
    """
    s = np.array([b["scale"] for b in bonds.values()], dtype=np.float64)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return float("nan"), float("nan")
    spread = float(s.std(ddof=1)) if len(s) > 1 else float("nan")
    return float(s.mean()), spread


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
        its uncertainty, the spread (standard deviation) between the types: a systematic
        disagreement that more bonds do not reduce.
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


class _ModelFrame:
    """The model map and the atom mask on one grid aligned with the map's grid.

    The grid's spacing is the map's voxel size divided by ``oversample`` and its origin is
    a map grid point, so every map grid point is also a model-map grid point.
    """

    def __init__(self, structure, xyz, exp: Map, resolution, mask_radius, margin, oversample,
                 nthreads):
        nthreads = resolve_threads(nthreads)
        v = exp.voxel_size
        lo = np.floor((xyz.min(axis=0) - margin - exp.origin) / v)
        hi = np.ceil((xyz.max(axis=0) + margin - exp.origin) / v)
        n = np.array([fast_length(int(k) * oversample) for k in (hi - lo + 1)])
        origin = exp.origin + lo * v
        self.map = model_map(structure, voxel_size=v / oversample, shape=tuple(n[::-1]),
                             origin=origin, d_min=resolution, nthreads=nthreads)
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
        from ..maps.models import transform_structure

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


def absolute_scale(map: MapLike, model: ModelLike, *, scales=None, d_min=None,
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
    d_min : float, optional
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
    OptionError, ResolutionRangeError
        For a bad range, step, resolution or mask radius.
    """
    nthreads = resolve_threads(nthreads)
    t0 = time.perf_counter()
    map_name = "the map" if isinstance(map, Map) else os.fspath(map)
    exp = map if isinstance(map, Map) else read_map(map)
    if isinstance(model, gemmi.Structure):
        structure, model_name = model, "the model"
    else:
        structure, model_name = read_model(model), os.fspath(model)
    if not (np.isfinite(mask_radius) and 0 < mask_radius <= 20):
        raise OptionError(f"mask_radius = {mask_radius!r} Å is out of range: give more than 0 "
                          "and at most 20 Å")
    if d_min is None:
        resolution, source = 2.5 * float(np.max(exp.voxel_size)), "estimated"
    else:
        resolution, source = check_resolution_range(None, d_min)[1], "given"
        nyquist = 2.0 * float(np.max(exp.voxel_size))
        if resolution < nyquist:
            raise OptionError(f"resolution {resolution:g} Å is finer than {map_name}'s Nyquist "
                              f"limit ({nyquist:.3g} Å, 2 × its voxel size): give the map's "
                              "real resolution")
    if scales is None:
        options = ScanOptions(scale_range=scale_range, step=step)  # validates and bounds them
        fine = factor_grid(options.scale_range, options.step)
        coarse = options.coarse_factors()
        fine_step, coarse_step = step, max(step, 0.01)
    else:
        fine = np.unique(np.asarray(scales, dtype=np.float64))
        if len(fine) < 3 or np.any(fine <= 0) or not np.all(np.isfinite(fine)):
            raise OptionError("give at least 3 positive, finite trial scales")
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
        raise OptionError(f"oversample must be 1, 2, 3 or 4, got {oversample!r}")
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

    def sweep_of(points, values, start) -> ScaleSweep:
        return ScaleSweep(frame.grid, FitPoints(points, values, center, float("nan")), start,
                          nthreads=nthreads, require_inside="narrow the --range")

    first = sweep_of(points, values, identity)
    first.run(coarse, progress=progress, total=total)
    s1, _ = peak_of_curve(*first.curve(), coarse_step)
    t1 = first.fit(s1).transform
    # Second pass: the mask redrawn where the model sits at the first peak.
    points, values = select(t1, s1)
    second = sweep_of(points, values, t1)
    second.fit(s1)
    second.run(fine, progress=progress, done=len(coarse), total=total)
    best, uncertainty = peak_of_curve(*second.curve(), fine_step)
    final = second.fit(best)
    fits = second.fits
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
