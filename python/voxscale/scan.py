"""The voxel-scale scan (DESIGN.md §1 step 2): correlation against a trial voxel-size factor.

For each trial factor s the target's voxel size becomes s·v (about its box centre) and the
target is re-fitted rigidly into the reference, warm-started from the neighbouring factor; the
correlation curve peaks at the relative voxel-scale correction. The scan runs coarse to fine:
the whole range at a coarse step, then the requested step around the coarse maximum; every
factor evaluated is reported in the curve. The maximum is refined below the step by parabolas
through the top points (see :func:`refine_peak`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .errors import VoxscaleError
from .fit import FitPoints, FitResult, ReferenceGrid, TransformSummary, fit_points, rigid_fit
from .io import Map
from .models import check_model_in_map
from .placement import Placement, place_by_maps, superpose_models

__all__ = ["ScanResult", "scan_voxel_scale", "refine_peak", "corrected_target"]


@dataclass
class ScanResult(TransformSummary):
    """Outcome of :func:`scan_voxel_scale`.

    Attributes
    ----------
    best_scale : float
        Voxel-scale factor s at the correlation maximum: the target's corrected voxel size is
        s × its header value.
    uncertainty : float
        Estimated standard uncertainty of ``best_scale``.
    scales, cc : numpy.ndarray
        Every factor evaluated (sorted) and its correlation after refitting.
    transform : numpy.ndarray, shape (4, 4)
        Rigid fit at ``best_scale``: x_ref = R·x + t for target coordinates scaled by
        ``best_scale`` about the target's box centre.
    cc_at_unit : float
        Correlation at s = 1 (after refitting), the uncorrected fit.
    cc_best : float
        Correlation at ``best_scale``.
    placement : Placement
        The initial placement used.
    contour : float
        Level that selected the fit points (on the target smoothed to 15 Å by default, see
        :func:`voxscale.fit.fit_points`).
    n_points : int
        Number of fit points.
    seconds : float
        Wall time of the scan, placement included.
    target_center : numpy.ndarray, shape (3,)
        The target's box centre (Å), about which the factor acts.
    anisotropic : dict or None
        Result of the anisotropic refinement when requested.
    """

    best_scale: float
    uncertainty: float
    scales: np.ndarray
    cc: np.ndarray
    transform: np.ndarray
    cc_at_unit: float
    cc_best: float
    placement: Placement
    contour: float
    n_points: int
    seconds: float
    target_center: np.ndarray = None
    anisotropic: Optional[dict] = None
    fits: dict = field(default_factory=dict, repr=False)

    @property
    def percent(self) -> float:
        """float : Relative voxel-size correction 100·(best_scale − 1) in %."""
        return 100.0 * (self.best_scale - 1.0)



def refine_peak(scales, cc, *, n_points: int = 5):
    """Sub-step maximum of a sampled correlation curve.

    A parabola is fitted by least squares through the ``n_points`` samples around the largest
    one; its vertex is the estimate. The uncertainty combines the vertex's standard error
    from the fit residuals with the spread of the vertices of 3-, 5- and 7-point parabolas
    (how much the answer depends on the parabola model).

    Parameters
    ----------
    scales, cc : array_like
        Sorted, equally or unequally spaced samples.
    n_points : int, optional
        Points in the main fit (default 5).

    Returns
    -------
    best : float
    uncertainty : float
    """
    s = np.asarray(scales, dtype=np.float64)
    c = np.asarray(cc, dtype=np.float64)
    i = int(np.nanargmax(c))

    def vertex(k):
        lo = max(0, min(i - k // 2, len(s) - k))
        xs, ys = s[lo:lo + k], c[lo:lo + k]
        if len(xs) < 3:
            return s[i], np.inf
        x0 = xs.mean()
        design = np.stack([(xs - x0) ** 2, xs - x0, np.ones_like(xs)], axis=1)
        coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
        a, b = coef[0], coef[1]
        if not a < 0:
            return s[i], np.inf
        v = x0 - b / (2 * a)
        dof = len(xs) - 3
        if dof > 0:
            resid = ys - design @ coef
            cov = np.linalg.inv(design.T @ design) * (resid @ resid) / dof
            jac = np.array([b / (2 * a * a), -1 / (2 * a), 0.0])
            se = float(np.sqrt(max(jac @ cov @ jac, 0.0)))
        else:
            se = 0.0
        if not xs[0] <= v <= xs[-1]:  # the vertex left the fitted span: keep the sample
            return s[i], np.inf
        return float(v), se

    best, se = vertex(n_points)
    others = [vertex(k)[0] for k in (3, 7) if k != n_points]
    spread = float(np.std([best] + others)) if others else 0.0
    if not np.isfinite(se):
        step = float(np.median(np.diff(s))) if len(s) > 1 else 0.0
        return float(best), step
    return float(best), float(np.hypot(se, spread))


def _default_scales(lo: float, hi: float, step: float):
    if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(step)) or not (
            0 < lo < 1 < hi) or not step > 0:
        raise ValueError(f"the scan range must contain 1 (got {lo}..{hi}) and step must be > 0")
    coarse_step = max(step, 0.01)
    n_lo, n_hi = int(np.floor((1 - lo) / coarse_step + 1e-9)), int(np.floor((hi - 1) / coarse_step + 1e-9))
    coarse = 1.0 + coarse_step * np.arange(-n_lo, n_hi + 1)
    return coarse, coarse_step


def scan_voxel_scale(ref: Map, target: Map, ref_model=None, target_model=None, scales=None,
                     contour=None, nthreads: int = 0, *, scale_range=(0.95, 1.05),
                     step: float = 0.002, initial_transform=None, max_points: int = 80000,
                     order: int = 3, anisotropic: bool = False,
                     progress: Optional[Callable[[int, int, str], None]] = None) -> ScanResult:
    """Find the relative voxel-scale factor of a target map against a reference map.

    Parameters
    ----------
    ref, target : Map
        Reference and target maps (any boxes, voxel sizes and origins).
    ref_model, target_model : gemmi.Structure, optional
        Models of the two maps; with both, the initial placement superposes their Cα atoms.
        Without them the placement is map-only (:func:`voxscale.placement.place_by_maps`).
    scales : array_like, optional
        Explicit trial factors; default a coarse-to-fine scan of ``scale_range``.
    contour : float, optional
        Target contour level for the fit points. Default: the target's molecular envelope,
        where the target low-passed to 15 Å exceeds its mean + 1σ (noise-robust, see
        :func:`voxscale.fit.fit_points`).
    nthreads : int, optional
        Threads (0 = all available).
    scale_range : (float, float), optional
        Range of the default scan (0.95, 1.05).
    step : float, optional
        Finest step of the default scan (0.002).
    initial_transform : array_like, shape (4, 4), optional
        Start from this placement (x_ref = R·x_tgt + t) instead of models or a map search.
    max_points : int, optional
        At most this many fit points (an even subset of those above the contour).
    order : {1, 3}, optional
        Interpolation of the reference: 3 (cubic B-spline, default) or 1 (trilinear).
    anisotropic : bool, optional
        After the isotropic scan, refine a symmetric 3x3 scale matrix (see
        :func:`voxscale.anisotropic.refine_anisotropic_scale`).
    progress : callable, optional
        Called as progress(done, total, message) after each factor.

    Returns
    -------
    ScanResult

    Raises
    ------
    VoxscaleError
        If the target has too few points above its contour or does not overlap the reference.
    """
    start_time = time.perf_counter()
    if not float(np.std(ref.data, dtype=np.float64)) > 0:
        raise VoxscaleError("the reference map is constant: there is nothing to fit into")
    for model, density, name in ((ref_model, ref, "reference"), (target_model, target, "target")):
        if model is not None:
            check_model_in_map(model, density, what=f"the {name} model",
                               where=f"the {name} map")
    pts = fit_points(target, contour, max_points=max_points)
    if initial_transform is not None:
        placement = Placement(np.asarray(initial_transform, dtype=np.float64), "given")
    elif ref_model is not None and target_model is not None:
        placement = superpose_models(ref_model, target_model)
    else:
        placement = place_by_maps(ref, target, contour=contour, nthreads=nthreads)
    grid = ReferenceGrid(ref, order=order, nthreads=nthreads)
    fits: dict[float, FitResult] = {}

    def refit(s: float, start: np.ndarray, first_step: float = 0.05) -> FitResult:
        # Neighbouring factors move the points by ~step × radius (a few hundredths of an Å):
        # a warm start takes a short first step.
        fit = rigid_fit(grid, pts.scaled(s), pts.values, start, first_step=first_step,
                        nthreads=nthreads)
        fits[round(float(s), 12)] = fit
        return fit

    refit.needed = lambda s: round(float(s), 12) not in fits  # s = 1 is fitted first
    refit.done = lambda s: fits[round(float(s), 12)]

    def nearest_transform(s: float) -> np.ndarray:
        done = np.array(sorted(fits))
        return fits[float(done[np.argmin(np.abs(done - s))])].transform

    unit = refit(1.0, placement.transform, first_step=0.5)
    if scales is not None:
        todo = np.unique(np.asarray(scales, dtype=np.float64))
        if np.any(todo <= 0) or not np.all(np.isfinite(todo)):
            raise ValueError("trial scales must be positive and finite")
        total = len(todo)
        _sweep(todo, refit, nearest_transform, progress, 0, total)
    else:
        coarse, coarse_step = _default_scales(*scale_range, step)
        fine_half = int(round(coarse_step / step))
        total = len(coarse) + 2 * fine_half - 1  # the fine grid shares about 3 coarse points
        _sweep(coarse, refit, nearest_transform, progress, 0, total)
        keys = np.array(sorted(fits))
        best_coarse = keys[int(np.argmax([fits[k].cc for k in keys]))]
        fine = best_coarse + step * np.arange(-fine_half, fine_half + 1)
        fine = fine[(fine >= scale_range[0] - 1e-12) & (fine <= scale_range[1] + 1e-12)]
        fine = np.array([x for x in fine if round(float(x), 12) not in fits])
        total = len(coarse) + len(fine)
        _sweep(fine, refit, nearest_transform, progress, len(coarse), total)
    keys = np.array(sorted(fits))
    cc = np.array([fits[k].cc for k in keys])
    best, uncertainty = _peak_from_finest(keys, cc, step if scales is None else None)
    uncertainty = float(np.hypot(uncertainty, _subset_spread(grid, pts, fits, keys, cc, nthreads)))
    final = refit(best, nearest_transform(best))
    keys = np.array(sorted(fits))
    cc = np.array([fits[k].cc for k in keys])
    result = ScanResult(best_scale=best, uncertainty=uncertainty, scales=keys, cc=cc,
                        transform=final.transform, cc_at_unit=unit.cc, cc_best=final.cc,
                        placement=placement, contour=pts.contour, n_points=len(pts),
                        seconds=0.0, target_center=pts.center.copy(), fits=fits)
    if anisotropic:
        from .anisotropic import refine_anisotropic_scale
        result.anisotropic = refine_anisotropic_scale(grid, pts, best, final.transform,
                                                      nthreads=nthreads)
    result.seconds = time.perf_counter() - start_time
    return result


def _sweep(scales, refit, nearest_transform, progress, done, total):
    """Refit at every factor, going outwards from the one nearest 1 so each start is close."""
    scales = np.sort(np.asarray(scales, dtype=np.float64))
    pivot = int(np.argmin(np.abs(scales - 1.0)))
    order = list(range(pivot, len(scales))) + list(range(pivot - 1, -1, -1))
    for count, i in enumerate(order, start=1):
        s = float(scales[i])
        fit = refit(s, nearest_transform(s)) if refit.needed(s) else refit.done(s)
        if progress is not None:
            progress(done + count, total, f"s = {s:.4f}  cc = {fit.cc:.5f}")


def _peak_from_finest(scales, cc, step):
    """refine_peak on the finest-spaced samples around the maximum."""
    if step is None:
        return refine_peak(scales, cc)
    i = int(np.argmax(cc))
    near = np.abs(scales - scales[i]) <= 3.5 * step
    return refine_peak(scales[near], cc[near])


def corrected_target(ref: Map, target: Map, result: ScanResult, *, order: int = 3,
                     anisotropic: bool = True, nthreads: int = 0) -> Map:
    """The target with its voxel size corrected, fitted and resampled onto the reference grid.

    Parameters
    ----------
    ref, target : Map
        The maps given to the scan.
    result : ScanResult
        The scan's result.
    order : {1, 3}, optional
        Interpolation (default 3, cubic B-spline).
    anisotropic : bool, optional
        Use the anisotropic scale matrix when the scan refined one (default True).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    Map
        On the reference grid (shape, voxel size, origin), 0 outside the target's box.
    """
    from .sampling import resample
    if anisotropic and result.anisotropic is not None:
        return resample(target, ref, result.anisotropic["transform"],
                        result.anisotropic["scale_matrix"], order=order, nthreads=nthreads)
    return resample(target, ref, result.transform, result.best_scale, order=order,
                    nthreads=nthreads)


def _subset_spread(grid, pts: FitPoints, fits: dict, keys, cc, nthreads: int,
                   n_subsets: int = 4) -> float:
    """Standard error of the peak from its scatter over interleaved subsets of the fit points.

    Each subset is scored at the fitted transforms of the factors around the maximum (no
    refit), its own peak is refined, and the spread of the subset peaks divided by
    sqrt(n_subsets) estimates how much the noise in the maps moves the answer.
    """
    i = int(np.argmax(cc))
    near = keys[max(0, i - 3): i + 4]
    if len(near) < 3 or len(pts) < 40 * n_subsets:
        return 0.0
    peaks = []
    for j in range(n_subsets):
        sub = slice(j, None, n_subsets)
        xyz = np.ascontiguousarray(pts.xyz[sub])
        values = np.ascontiguousarray(pts.values[sub] - pts.values[sub].mean())
        sub_pts = FitPoints(xyz, values, pts.center, pts.contour)
        sub_cc = []
        for s in near:
            t = fits[float(s)].transform
            p = sub_pts.scaled(float(s))
            c = p.mean(axis=0)
            sub_cc.append(grid.score(p, values, t[:3, :3], t[:3, :3] @ c + t[:3, 3] - c, c)[0])
        peaks.append(refine_peak(near, np.array(sub_cc))[0])
    return float(np.std(peaks, ddof=1) / np.sqrt(n_subsets))
