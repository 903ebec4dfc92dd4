"""The voxel-scale scan (docs/method.md §1 step 2): correlation against a trial voxel-size factor.

For each trial factor s the target's voxel size becomes s·v (about its box centre) and the
target is re-fitted rigidly into the reference, warm-started from the nearest factor already
fitted (:class:`ScaleSweep`); the correlation curve peaks at the relative voxel-scale
correction. The scan runs coarse to fine: the whole range at a coarse step, then the requested
step around the coarse maximum; every factor evaluated is reported in the curve. The maximum
is refined below the step by parabolas through the top points (see :func:`refine_peak`).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import numpy as np

from ..errors import OptionError, VoxscaleError
from ..maps.map import Map, is_constant
from ..maps.models import check_model_in_map
from ..maps.interpolation import index_map, resample_by_index, spline_coefficients
from ..reciprocal.transform import half_transform
from ..quality import Quality
from ..threads import resolve_threads
from .placement import Placement, placement_of, superpose_models
from .matched import B_REMATCH, MapMatcher
from .search import PlacementSearch
from .points import FitPoints, fit_points
from .rigid import FitResult, ReferenceGrid, TransformSummary, rigid_fit

__all__ = ["ScanOptions", "ScanResult", "ScaleSweep", "scan_voxel_scale", "refine_peak",
           "correction_index_map", "resampling_round_trip", "target_coverage",
           "peak_of_curve", "factor_grid", "corrected_target", "Progress", "MAX_FACTORS"]

#: ``progress(done, total, message)``: the one progress callback of voxscale's long steps.
Progress = Callable[[int, int, str], None]

#: A scan evaluates at most this many factors (each is a rigid refit).
MAX_FACTORS = 5000


def factor_grid(scale_range, step: float) -> np.ndarray:
    """The factors 1 + k·step (k whole) within a range that contains 1.

    Parameters
    ----------
    scale_range : (float, float)
    step : float

    Returns
    -------
    numpy.ndarray
    """
    lo, hi = scale_range
    n_lo = int(np.floor((1 - lo) / step + 1e-9))
    n_hi = int(np.floor((hi - 1) / step + 1e-9))
    return 1.0 + step * np.arange(-n_lo, n_hi + 1)


@dataclass(frozen=True)
class ScanOptions:
    """Options of the voxel-scale scan (:func:`scan_voxel_scale`).

    Attributes
    ----------
    scale_range : (float, float)
        Factors of the default scan, (0.95, 1.05); must contain 1.
    step : float
        Finest step of the default scan (0.002). The scan samples the whole range at
        max(step, 0.01), then ``step`` around the coarse maximum.
    scales : tuple of float or None
        Explicit trial factors instead of the default scan.
    contour : float or None
        Target contour level for the fit points. Default: the target's molecular envelope,
        where the target low-passed to 15 Å exceeds its mean + 1σ (see
        :func:`voxscale.fit.fit_points`).
    max_points : int
        At most this many fit points (an even subset of those selected; 0 for all).
    order : {1, 3}
        Interpolation of the reference: 3 (cubic B-spline, default) or 1 (trilinear).
    anisotropic : bool
        After the isotropic scan, refine a symmetric 3x3 scale matrix (see
        :func:`voxscale.fit.anisotropic.refine_anisotropic_scale`).
    both_directions : bool
        Also scan the reference's points into the target (default True) and combine the two.
    check_hand : bool
        Also place the mirrored target (default True): if it fits better, say so.
    match_maps : bool
        Bring both maps to a common resolution and fall-off first (default True, see
        :func:`voxscale.fit.matched.match_maps`).
    d_min : float or None
        The common resolution (Å) of that matching; default from the maps' FSC.

    Raises
    ------
    OptionError
        When a value is out of range (checked on construction); the message names it.
    """

    scale_range: Tuple[float, float] = (0.95, 1.05)
    step: float = 0.002
    scales: Optional[Tuple[float, ...]] = None
    contour: Optional[float] = None
    max_points: int = 80000
    order: int = 3
    anisotropic: bool = False
    both_directions: bool = True
    check_hand: bool = True
    match_maps: bool = True
    d_min: Optional[float] = None

    def __post_init__(self):
        lo, hi = (float(v) for v in self.scale_range)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise OptionError(f"scale range {lo:g} {hi:g} must be finite")
        if not 0 < lo < 1 < hi:
            raise OptionError(f"scale range {lo:g} {hi:g} must be positive and contain 1")
        step = float(self.step)
        if not (np.isfinite(step) and 0 < step < hi - lo):
            raise OptionError(f"step {step:g} must be positive and smaller than the scale "
                              f"range ({hi - lo:g})")
        object.__setattr__(self, "scale_range", (lo, hi))
        object.__setattr__(self, "step", step)
        if self.scales is not None:
            scales = np.unique(np.asarray(self.scales, dtype=np.float64).ravel())
            if not len(scales) or not np.all(np.isfinite(scales)) or np.any(scales <= 0):
                raise OptionError("trial scales must be positive and finite")
            if len(scales) > MAX_FACTORS:
                raise OptionError(f"{len(scales)} trial scales are more than the "
                                  f"{MAX_FACTORS} a scan may refit")
            object.__setattr__(self, "scales", tuple(float(x) for x in scales))
        elif self.n_factors > MAX_FACTORS:
            raise OptionError(f"step {step:g} over the range {lo:g}-{hi:g} means about "
                              f"{self.n_factors} refits, more than {MAX_FACTORS}: use a "
                              "larger step")
        if self.contour is not None and not np.isfinite(float(self.contour)):
            raise OptionError(f"contour must be a finite density level, got {self.contour!r}")
        if isinstance(self.max_points, bool) or int(self.max_points) != self.max_points \
                or self.max_points < 0:
            raise OptionError(f"max_points must be a whole number >= 0, got "
                              f"{self.max_points!r}")
        if self.order not in (1, 3):
            raise OptionError(f"order must be 1 (trilinear) or 3 (cubic B-spline), got "
                              f"{self.order!r}")

    @property
    def coarse_step(self) -> float:
        """float : Step of the first, whole-range pass."""
        return max(self.step, 0.01)

    @property
    def n_factors(self) -> int:
        """int : About how many factors the scan refits."""
        if self.scales is not None:
            return len(self.scales)
        lo, hi = self.scale_range
        return int((hi - lo) / self.coarse_step) + 2 * int(round(self.coarse_step / self.step)) + 2

    def coarse_factors(self) -> np.ndarray:
        """numpy.ndarray : The factors of the whole-range pass, 1 included."""
        return factor_grid(self.scale_range, self.coarse_step)

    def replace(self, **changes) -> "ScanOptions":
        """A copy with some fields changed (validated again).

        Raises
        ------
        OptionError
            For a name that is not a scan option.
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise OptionError(f"unknown scan option(s) {', '.join(unknown)}; the options are "
                              + ", ".join(f.name for f in dataclasses.fields(self)))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """dict : The options as plain values."""
        return dataclasses.asdict(self)


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
    options : ScanOptions
        The options of the scan.
    fits : dict
        The rigid fit at every factor evaluated (:class:`voxscale.fit.FitResult`).
    forward, reverse : DirectionScan or None
        The two directions: the target into the reference, and the reference into the target
        (``best_scale`` of the reverse estimates 1/s).
    mirror : Placement or None
        The best placement of the mirrored target (with ``check_hand``).
    quality : Quality
        The verdict: ``status`` "ok", "warning" or "unreliable" and the reasons.
    matched : dict or None
        How the two maps were brought to a common resolution and fall-off before the scan
        (:func:`voxscale.fit.matched.match_maps`): ``d_common`` (Å), ``d_source``,
        ``relative_B`` (Å²) and ``blurred``; the correlations are those of the matched maps.
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
    options: ScanOptions = field(default_factory=ScanOptions)
    fits: dict = field(default_factory=dict, repr=False)
    forward: Optional["DirectionScan"] = None
    reverse: Optional["DirectionScan"] = None
    mirror: Optional[Placement] = None
    quality: Quality = field(default_factory=Quality)
    matched: Optional[dict] = None

    @property
    def percent(self) -> float:
        """float : Relative voxel-size correction 100·(best_scale − 1) in %."""
        return 100.0 * (self.best_scale - 1.0)

    @property
    def unit_transform(self) -> np.ndarray:
        """numpy.ndarray : The rigid fit at s = 1 (the uncorrected target's placement)."""
        unit = self.fits.get(1.0)
        return self.transform if unit is None else unit.transform

    def to_dict(self) -> dict:
        """The machine-readable summary (the keys of ``scan.json``).

        Returns
        -------
        dict
        """
        out = {
            "best_scale": self.best_scale,
            "uncertainty": self.uncertainty,
            "percent": self.percent,
            "scales": self.scales,
            "cc": self.cc,
            "cc_at_unit": self.cc_at_unit,
            "cc_best": self.cc_best,
            "transform": self.transform,
            "rotation_deg": self.rotation_deg,
            "shift_A": self.shift_A,
            "seconds": self.seconds,
            "n_points": self.n_points,
            "contour": self.contour,
            "placement": self.placement.to_dict(),
            "quality": self.quality.to_dict(),
            "directions": {name: None if d is None else d.to_dict()
                           for name, d in (("forward", self.forward),
                                           ("reverse", self.reverse))},
            "mirror_cc": None if self.mirror is None else self.mirror.cc,
            "matched": self.matched,
        }
        if self.anisotropic is not None:
            out["anisotropic"] = {k: self.anisotropic[k] for k in (
                "scale_matrix", "principal_scales", "principal_axes", "isotropic_equivalent",
                "transform", "cc", "cc_isotropic")}
        return out


def _key(s: float) -> float:
    return round(float(s), 12)


class ScaleSweep:
    """Rigid refits of a point set scaled by trial factors, each warm-started from the
    nearest factor already fitted.

    The points are scaled about ``points.center``; the start of each refit is the nearest
    fitted factor's transform with the translation corrected for the move of the points'
    centroid between the two factors, so every refit starts within a few hundredths of an Å.
    This is the sweep of the voxel-scale scan and of the absolute-scale curve.

    Parameters
    ----------
    grid : ReferenceGrid
        What the points are fitted into.
    points : FitPoints
        The points (unscaled), their values and the centre the factors act about.
    start : array_like, shape (4, 4)
        Placement of the first factor fitted.
    require_inside : str, optional
        If given, a refit with points outside the grid raises VoxscaleError with this hint.
    nthreads : int
        Threads (already resolved).
    """

    def __init__(self, grid: ReferenceGrid, points: FitPoints, start, *, nthreads: int,
                 require_inside: Optional[str] = None):
        self.grid, self.points, self.nthreads = grid, points, nthreads
        self.start = np.asarray(start, dtype=np.float64)
        self.require_inside = require_inside
        self.fits: dict = {}
        self._centroid = points.xyz.mean(axis=0)

    def __contains__(self, s) -> bool:
        return _key(s) in self.fits

    def fit(self, s: float) -> FitResult:
        """Refit at factor ``s`` (or return the fit already made there)."""
        s = float(s)
        if s in self:
            return self.fits[_key(s)]
        if self.fits:
            base_s = min(self.fits, key=lambda k: abs(k - s))
            base, first_step = self.fits[base_s].transform, 0.05
        else:
            base_s, base, first_step = s, self.start, 0.5
        start = base.copy()
        start[:3, 3] -= base[:3, :3] @ ((s - base_s) * (self._centroid - self.points.center))
        result = rigid_fit(self.grid, self.points.scaled(s), self.points.values, start,
                           first_step=first_step, nthreads=self.nthreads)
        if self.require_inside and result.n_inside < result.n_points:
            raise VoxscaleError(f"at factor {s:.4f} {result.n_points - result.n_inside} points "
                                f"left the box; {self.require_inside}")
        self.fits[_key(s)] = result
        return result

    def run(self, scales, *, progress: Optional[Progress] = None, done: int = 0,
            total: Optional[int] = None) -> None:
        """Refit at every factor, going outwards from the one nearest an earlier fit (or 1)."""
        scales = np.sort(np.asarray(scales, dtype=np.float64))
        if not len(scales):
            return
        anchor = min(self.fits, key=lambda k: abs(k - 1.0)) if self.fits else 1.0
        pivot = int(np.argmin(np.abs(scales - anchor)))
        order = list(range(pivot, len(scales))) + list(range(pivot - 1, -1, -1))
        total = len(scales) + done if total is None else total
        for count, i in enumerate(order, start=1):
            result = self.fit(scales[i])
            if progress is not None:
                progress(done + count, total, f"s = {scales[i]:.4f}  cc = {result.cc:.5f}")

    def curve(self):
        """(factors, correlations), sorted by factor.

        Returns
        -------
        scales, cc : numpy.ndarray
        """
        keys = np.array(sorted(self.fits))
        return keys, np.array([self.fits[k].cc for k in keys])


def _scan_options(options: Optional[ScanOptions], overrides: dict) -> ScanOptions:
    if options is None:
        options = ScanOptions()
    elif not isinstance(options, ScanOptions):
        raise OptionError(f"options must be a ScanOptions, got {type(options).__name__}")
    return options.replace(**overrides) if overrides else options


def _checked_transform(transform, name: str) -> np.ndarray:
    t = np.asarray(transform, dtype=np.float64)
    if t.shape != (4, 4) or not np.all(np.isfinite(t)) or not np.allclose(t[3], (0, 0, 0, 1)):
        raise OptionError(f"{name} must be a finite 4x4 matrix with last row (0, 0, 0, 1), "
                          f"got shape {t.shape}")
    return t


#: Correlations at the best factor below these are "low" (unreliable) and "modest" (warning).
LOW_CC, MODEST_CC = 0.3, 0.5
#: A map-only placement whose best distinct other pose is this close, relative to its own
#: correlation, is ambiguous (relative: a scale error lowers both poses' scores at s = 1 alike).
AMBIGUOUS_GAP = 0.02
#: A map-only pose is confirmed when the fit at the best factor reaches this correlation: the
#: search scores poses at s = 1, where a scale error of a few % over a large box leaves little
#: of the correlation (EMD-11007, 240³ at 0.834 Å, ×1.02: 0.099 at s = 1, 1.000 at the best
#: factor), so its own score alone would call a right pose weak.
CONFIRMED_CC = 0.9
#: A symmetry mate replaces the pose at the best factor only when it fits better by more than
#: this (refits of one pose agree to about 1e-7; a tie keeps the search's pose).
MATE_TIE = 1e-7
#: ... and keeps at least this fraction of the fit points inside the reference's box.
MATE_INSIDE = 0.98
#: Rotations of the mirrored target's search.
MIRROR_ROTATIONS = 360
#: The mirrored target "fits better" when its correlation is higher by more than this.
MIRROR_MARGIN = 0.02
#: Two directions differ by up to about 1e-4 on resampled copies of one map (interpolation
#: of the resampled copy): differences within this allowance are not flagged.
DIRECTION_ALLOWANCE = 2e-4

#: No factor is known better than this: resampled copies of one map, blurred or rotated,
#: scatter by up to about 1e-4 (interpolation), whatever the curve's own noise says.
UNCERTAINTY_FLOOR = 1e-4
#: The parabola's vertex is kept when, refitted, its correlation is within this of the best
#: sample's (correlations agree to about 1e-7 between refits).
VERTEX_TOLERANCE = 1e-6
#: A curve whose top is less than this above its ends is flat.
FLAT_DROP = 1e-4
#: The fit points that stay inside the other map along the whole curve are used when they
#: are at least this fraction of all (a map whose density fills its box keeps fewer).
MIN_KEPT = 0.25
#: A factor less precise than this (0.1 %) is flagged: at the edge of a 300 Å particle it
#: moves density by 0.3 Å, visible in a difference map.
IMPRECISE = 1e-3
#: Corrections smaller than this (0.1 %) are not worth a warning when insignificant.
NEGLIGIBLE_CORRECTION = 1e-3

#: The scan widens its range automatically up to these factors before it gives up.
WIDEST_RANGE = (0.85, 1.15)


@dataclass
class DirectionScan:
    """One direction of the scan: the target's points into the reference, or the reverse.

    Attributes
    ----------
    best_scale, uncertainty : float
        Factor for the moving map's voxel size at the maximum, and its standard uncertainty
        (parabola, 3/5/7-point spread and fit-point subsets combined).
    scales, cc : numpy.ndarray
        Every factor evaluated and its refitted correlation.
    cc_best, cc_at_unit : float
        At the best factor and at s = 1 (NaN if s = 1 was not evaluated).
    transform : numpy.ndarray, shape (4, 4)
        Rigid fit at the best factor.
    scale_range : (float, float)
        The range scanned (after any automatic widening).
    at_edge : bool
        The maximum is at the end of the widest range.
    refined : bool
        The parabola's vertex, refitted, is at least as good as the best sample (else the
        best sample is reported).
    cc_noise : float
        Standard error of a correlation difference along the curve, from the scatter over
        fit-point subsets.
    gain : float
        ``cc_best - cc_at_unit``.
    drop : float
        ``cc_best`` minus the lower of the correlations at the two ends of the range.
    fits : dict
        The rigid fit at every factor.
    """

    best_scale: float
    uncertainty: float
    scales: np.ndarray
    cc: np.ndarray
    cc_best: float
    cc_at_unit: float
    transform: np.ndarray
    scale_range: tuple
    at_edge: bool
    refined: bool
    cc_noise: float
    gain: float
    drop: float
    fits: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        """dict : The direction's numbers (``scan.json`` ``directions``)."""
        return {"best_scale": self.best_scale, "uncertainty": self.uncertainty,
                "scales": self.scales, "cc": self.cc, "cc_best": self.cc_best,
                "cc_at_unit": self.cc_at_unit, "scale_range": list(self.scale_range),
                "at_edge": self.at_edge, "refined": self.refined, "cc_noise": self.cc_noise,
                "gain_over_unit": self.gain, "drop_to_range_ends": self.drop}


def _curve_scan(sweep: "ScaleSweep", opts: ScanOptions, centre: float, *,
                progress: Optional[Progress], widen_to: Optional[tuple]) -> tuple:
    """Coarse pass over the range around ``centre`` (widened while the maximum is at its
    end, up to the factors ``widen_to``), then the fine step around the coarse maximum.
    Returns (range, finest step)."""
    if opts.scales is not None:
        sweep.run(opts.scales, progress=progress)
        return (min(opts.scales), max(opts.scales)), None
    lo, hi = (centre * f for f in opts.scale_range)
    coarse_step = opts.coarse_step
    fine_half = int(round(coarse_step / opts.step))
    coarse = factor_grid_about(centre, (lo, hi), coarse_step)
    total = len(coarse) + 2 * fine_half - 1
    sweep.run(coarse, progress=progress, total=total)
    while widen_to is not None:
        keys, cc = sweep.curve()
        i = int(np.argmax(cc))
        grow_lo = i == 0 and keys[0] - coarse_step >= widen_to[0] - 1e-12
        grow_hi = i == len(keys) - 1 and keys[-1] + coarse_step <= widen_to[1] + 1e-12
        if not (grow_lo or grow_hi):
            break
        new = keys[0] - coarse_step if grow_lo else keys[-1] + coarse_step
        lo, hi = min(lo, new), max(hi, new)
        sweep.run([new], progress=progress, done=len(keys), total=len(keys) + 2 * fine_half)
    keys, cc = sweep.curve()
    best_coarse = keys[int(np.argmax(cc))]
    fine = best_coarse + opts.step * np.arange(-fine_half, fine_half + 1)
    fine = np.array([x for x in fine if lo - 1e-12 <= x <= hi + 1e-12 and x not in sweep])
    sweep.run(fine, progress=progress, done=len(keys), total=len(keys) + len(fine))
    return (float(lo), float(hi)), opts.step


def factor_grid_about(centre: float, scale_range, step: float) -> np.ndarray:
    """Factors centre + k·step (k whole) within a range that contains ``centre``."""
    lo, hi = scale_range
    n_lo = int(np.floor((centre - lo) / step + 1e-9))
    n_hi = int(np.floor((hi - centre) / step + 1e-9))
    return centre + step * np.arange(-n_lo, n_hi + 1)


def _direction(grid: ReferenceGrid, pts: FitPoints, start, opts: ScanOptions, *,
               centre: float, widen_to: Optional[tuple], progress: Optional[Progress],
               nthreads: int, with_unit: bool = False) -> DirectionScan:
    """Scan one direction (see :class:`DirectionScan`): about ``centre``, the range widened
    up to the factors ``widen_to`` (None: not widened); ``with_unit`` also fits s = 1 (for
    the gain over the header's scale) when the curve did not reach it."""
    sweep = ScaleSweep(grid, pts, start, nthreads=nthreads)
    first = sweep.fit(centre)
    if opts.scales is None:
        # the same points all along the curve, so that it has no jumps: those inside over
        # the widest range, or (a small box) over the range asked for
        kept = None
        for extremes in (widen_to, tuple(centre * f for f in opts.scale_range)):
            if extremes is not None and kept is None:
                kept = _inside_throughout(grid, pts, first.transform, centre, extremes)
        if kept is not None:
            sweep = ScaleSweep(grid, kept, first.transform, nthreads=nthreads)
            sweep.fit(centre)
            pts = kept
    scan_range, finest = _curve_scan(sweep, opts, centre, progress=progress,
                                     widen_to=widen_to)
    keys, cc = sweep.curve()
    best, uncertainty = peak_of_curve(keys, cc, finest)
    final = sweep.fit(best)
    i_max = int(np.argmax(cc))
    refined = bool(final.cc >= cc[i_max] - VERTEX_TOLERANCE)
    if not refined:  # never report a factor worse than one already sampled
        best = float(keys[i_max])
        final = sweep.fit(best)
        uncertainty = max(uncertainty, 0.5 * (finest or 0.0))
    keys, cc = sweep.curve()
    stats = _subset_statistics(grid, pts, sweep.fits, keys, cc, best)
    uncertainty = float(np.hypot(uncertainty, stats["peak_se"]))
    at_edge = bool(opts.scales is None and (
        best in (keys[0], keys[-1]) if widen_to is None else
        (best <= keys[0] + 1e-12 and keys[0] <= widen_to[0] + opts.coarse_step)
        or (best >= keys[-1] - 1e-12 and keys[-1] >= widen_to[1] - opts.coarse_step)))
    drop = final.cc - min(cc[0], cc[-1])
    unit = sweep.fits.get(_key(1.0))
    if unit is None and with_unit and opts.scales is None:
        unit = sweep.fit(1.0)
        keys, cc = sweep.curve()
    cc_unit = unit.cc if unit is not None else float("nan")
    return DirectionScan(best, uncertainty, keys, cc, final.cc, cc_unit, final.transform,
                         scan_range, at_edge, refined, stats["cc_noise"],
                         final.cc - cc_unit, drop, sweep.fits)


def _inside_throughout(grid: ReferenceGrid, pts: FitPoints, transform, centre: float,
                       extremes) -> Optional[FitPoints]:
    """The fit points that stay inside the other map at every factor of the scan.

    A point that leaves the other map's box at some factors drops out of the correlation
    there, and the curve jumps; with the points that stay inside (two voxels from the edge,
    for the interpolation) at both extreme factors, the pose found at ``centre``, the curve
    is smooth. None when all stay inside, or when that would keep fewer than
    :data:`MIN_KEPT` of the points (then all are used).
    """
    lo = grid.origin + 2 * grid.voxel_size
    hi = grid.origin + (grid.grid_size - 3) * grid.voxel_size
    t = np.asarray(transform)
    keep = np.ones(len(pts), dtype=bool)
    for s in extremes:
        # at factor s the pose of factor `centre` moves the points by (s - centre)·(p - c)
        shift = (centre - s) * (pts.xyz.mean(axis=0) - pts.center)  # as the sweep starts
        xyz = pts.scaled(s) @ t[:3, :3].T + t[:3, 3] + t[:3, :3] @ shift
        keep &= np.all((xyz >= lo) & (xyz <= hi), axis=1)
    if keep.all() or np.count_nonzero(keep) < max(MIN_KEPT * len(pts), 100):
        return None
    return pts.select(keep)


def _reverse_start(forward: DirectionScan, ref_center, target_center) -> np.ndarray:
    """The forward fit turned around: reference points scaled by 1/s about the reference's
    centre, into the target's frame (x_tgt = R^T·y + t_r)."""
    s = forward.best_scale
    rot, t = forward.transform[:3, :3], forward.transform[:3, 3]
    out = np.eye(4)
    out[:3, :3] = rot.T
    out[:3, 3] = (target_center * (1 - 1 / s) + rot.T @ (ref_center - t) / s
                  - rot.T @ ref_center)
    return out


def scan_voxel_scale(ref: Map, target: Map, ref_model=None, target_model=None, *,
                     options: Optional[ScanOptions] = None, initial_transform=None,
                     reference_grid: Optional[ReferenceGrid] = None, nthreads: int = 0,
                     progress: Optional[Progress] = None, **option_changes) -> ScanResult:
    """Find the relative voxel-scale factor of a target map against a reference map.

    The target's points are fitted into the reference at each trial factor (the forward
    direction), then the reference's points into the target around the inverse of the
    forward answer (the reverse direction); the reported factor combines the two, and their
    disagreement is part of its uncertainty. The result carries a verdict
    (:attr:`ScanResult.quality`): a maximum at the end of the widest range, a flat curve, a
    low correlation, a weak or ambiguous placement, a better-fitting mirror image or
    disagreeing directions are reported, in words, not hidden.

    Parameters
    ----------
    ref, target : Map
        Reference and target maps (any boxes, voxel sizes and origins).
    ref_model, target_model : gemmi.Structure, optional
        Models of the two maps; with both, the initial placement superposes their Cα atoms.
        Without them the placement is an exhaustive map-only search
        (:func:`voxscale.fit.place_by_maps`).
    options : ScanOptions, optional
        Range, step, contour, interpolation, anisotropic refinement, checks (default
        ``ScanOptions()``).
    initial_transform : array_like, shape (4, 4), optional
        Start from this placement (x_ref = R·x_tgt + t) instead of models or a map search.
    reference_grid : ReferenceGrid, optional
        ``ReferenceGrid(ref, order=options.order)`` if the caller has it already (its spline
        coefficients are then not computed again).
    nthreads : int, optional
        Threads (0 = all available).
    progress : callable, optional
        ``progress(done, total, message)`` after each factor.
    **option_changes
        Fields of :class:`ScanOptions` to change, e.g. ``step=0.001``.

    Returns
    -------
    ScanResult

    Raises
    ------
    OptionError
        For an option out of range (the message names it).
    VoxscaleError
        If the target has too few points above its contour or does not overlap the reference.

    Examples
    --------
    >>> opts = ScanOptions(scale_range=(0.97, 1.03), step=0.001)
    >>> opts.coarse_factors().round(2).tolist()
    [0.97, 0.98, 0.99, 1.0, 1.01, 1.02, 1.03]
    """
    start_time = time.perf_counter()
    nthreads = resolve_threads(nthreads)
    opts = _scan_options(options, option_changes)
    if is_constant(ref.data):
        raise VoxscaleError("the reference map is constant: there is nothing to fit into")
    for model, density, name in ((ref_model, ref, "reference"), (target_model, target, "target")):
        if model is not None:
            check_model_in_map(model, density, what=f"the {name} model",
                               where=f"the {name} map")
    # with matching, both maps' half transforms serve the fit points' envelopes and the
    # matcher: computed once
    f_ref = half_transform(ref, nthreads=nthreads) if opts.match_maps else None
    f_tgt = half_transform(target, nthreads=nthreads) if opts.match_maps else None
    pts = fit_points(target, opts.contour, max_points=opts.max_points, transform=f_tgt,
                     nthreads=nthreads)
    if reference_grid is not None and (reference_grid.map is not ref
                                       or reference_grid.order != opts.order):
        raise OptionError("reference_grid must be ReferenceGrid(ref, order=options.order)")
    need_search = opts.check_hand or (initial_transform is None
                                      and (ref_model is None or target_model is None))
    search_first = need_search and initial_transform is None and (ref_model is None
                                                                  or target_model is None)
    # The maps as given are scanned without matching, refined anisotropically and searched
    # for the first placement; otherwise their spline coefficients are never built (memory).
    grid = reference_grid
    if grid is None and (not opts.match_maps or opts.anisotropic or search_first):
        grid = ReferenceGrid(ref, order=opts.order, nthreads=nthreads)
    raw_grid, raw_pts = grid, pts  # for the anisotropic refinement
    cubic = grid if grid is not None and grid.order == 3 else None
    ref_pts = (fit_points(ref, None, max_points=opts.max_points, role="reference",
                          transform=f_ref, nthreads=nthreads)
               if need_search or opts.both_directions else None)
    search = (PlacementSearch(ref, target, points=pts, ref_points=ref_pts,
                              reference_grid=cubic, transforms=(f_ref, f_tgt),
                              nthreads=nthreads)
              if need_search else None)
    # the target's transform is made again when the matched pair is (memory: not held
    # through the placement and the matcher's first FSC, which need only the reference's)
    f_tgt = None
    symmetry = []
    if initial_transform is not None:
        placement = Placement(_checked_transform(initial_transform, "initial_transform"),
                              "given")
    elif ref_model is not None and target_model is not None:
        placement = superpose_models(ref_model, target_model)
    else:
        found = search.run()
        placement = placement_of(found)
        symmetry = found.symmetry
    matched_info = matcher = matched_target = None
    if opts.match_maps:
        if not opts.anisotropic:
            raw_grid = grid = cubic = None  # the search keeps its own if it has one
        matcher = MapMatcher(ref, target, placement.transform, d_min=opts.d_min,
                             transforms=(f_ref, None), nthreads=nthreads)
        del f_ref  # the matcher holds it until its pair is made
        # common resolution first; the fall-off after the scan
        grid, pts, ref_pts, matched_target, matched_info = _matched_inputs(
            matcher, pts, ref_pts, opts, nthreads)
    forward = _direction(grid, pts, placement.transform, opts, centre=1.0,
                         widen_to=WIDEST_RANGE, progress=progress, nthreads=nthreads,
                         with_unit=True)
    if matcher is not None:
        first_filtered = matcher.filters  # then the target's cut was at s = 1, not at s
        if not forward.at_edge:  # the FSC and the fall-off with the target corrected
            # memory: the pair is let go while the target is placed for the FSC; either a
            # new pair replaces it, or it was the maps unfiltered and is made again
            grid = matched_target = None
            matcher.measure(forward.transform, forward.best_scale)
        delta_b = matcher.delta_b
        if ((abs(delta_b) > B_REMATCH or matcher.filters or first_filtered)
                and not forward.at_edge):
            grid, pts, ref_pts, matched_target, matched_info = _matched_inputs(
                matcher, pts, ref_pts, opts, nthreads, delta_b, forward.best_scale)
            forward = _direction(grid, pts, forward.transform, _local_options(opts),
                                 centre=forward.best_scale, widen_to=WIDEST_RANGE,
                                 progress=None, nthreads=nthreads, with_unit=True)
        else:
            if grid is None:  # the first pair again: the maps as given (no cut, no blur)
                grid, pts, ref_pts, matched_target, matched_info = _matched_inputs(
                    matcher, pts, ref_pts, opts, nthreads)
            matched_info["relative_B"] = delta_b
        del matcher
    if symmetry:
        forward = _best_mate(grid, pts, forward, symmetry, placement, opts, nthreads)
    reverse = None
    if opts.both_directions and opts.scales is None:  # ref_pts were chosen above
        # a matched target is the scan's own: its coefficients replace it in place
        own = matched_target is not None and matched_target is not target
        target_grid = ReferenceGrid(matched_target if own else target, order=opts.order,
                                    nthreads=nthreads, keep_map=False, overwrite=own)
        matched_target = None  # memory: only its coefficients are needed now
        reverse = _direction(target_grid, ref_pts,
                             _reverse_start(forward, ref_pts.center, pts.center),
                             _local_options(opts), centre=1.0 / forward.best_scale,
                             widen_to=None, progress=None, nthreads=nthreads)
        del target_grid
    del matched_target
    best, uncertainty = _combine(forward, reverse)
    final = ScaleSweep(grid, pts, forward.transform, nthreads=nthreads)
    final.fits = dict(forward.fits)
    fit = final.fit(best)
    mirror = None
    if opts.check_hand:
        # a coarser rotation grid: the question is only whether the other hand fits better
        mirror = placement_of(search.run(mirror=True, n_rotations=MIRROR_ROTATIONS))
    keys, cc = final.curve()
    unit = final.fits.get(_key(1.0))
    result = ScanResult(best_scale=best, uncertainty=uncertainty, scales=keys, cc=cc,
                        transform=fit.transform,
                        cc_at_unit=unit.cc if unit is not None else float("nan"),
                        cc_best=fit.cc, placement=placement, contour=pts.contour,
                        n_points=len(pts), seconds=0.0, target_center=pts.center.copy(),
                        options=opts, fits=final.fits, forward=forward, reverse=reverse,
                        mirror=mirror, matched=matched_info)
    if opts.anisotropic:
        from .anisotropic import refine_anisotropic_scale
        # on the maps as given: an anisotropic stretch changes the spectra unequally along
        # the axes, which an isotropic resolution and fall-off matching would blur away
        result.anisotropic = refine_anisotropic_scale(raw_grid, raw_pts, best, fit.transform,
                                                      nthreads=nthreads)
    result.quality = scan_quality(result)
    result.seconds = time.perf_counter() - start_time
    return result


def _best_mate(grid: ReferenceGrid, pts: FitPoints, forward: DirectionScan, symmetry,
               placement: Placement, opts: ScanOptions, nthreads: int) -> DirectionScan:
    """The direction rescanned from the symmetry mate S·T of its pose that fits best at its
    factor, if one fits better than the pose itself (``placement`` records the outcome).

    The search scores poses at s = 1, where a scale error lowers the correlation of the
    target's own pose and of its mates alike; at the best factor they separate (EMD-3488
    against itself ×1.02: 0.9346222 and 0.9346218 at s = 1, the mate won and left 18 peaks).
    """
    s = forward.best_scale
    scaled = pts.scaled(s)
    own = rigid_fit(grid, scaled, pts.values, forward.transform, first_step=0.05,
                    nthreads=nthreads)
    best = own
    for op in symmetry:
        fit = rigid_fit(grid, scaled, pts.values, op @ forward.transform, first_step=0.05,
                        nthreads=nthreads)
        # a mate that moves points out of the box is scored on fewer: not comparable
        if fit.cc > best.cc and fit.n_inside >= MATE_INSIDE * own.n_inside:
            best = fit
    placement.mate_cc_gain = float(best.cc - own.cc)
    if best is own or best.cc - own.cc <= MATE_TIE:
        placement.mate_cc_gain = 0.0
        return forward
    return _direction(grid, pts, best.transform, _local_options(opts), centre=s,
                      widen_to=WIDEST_RANGE, progress=None, nthreads=nthreads, with_unit=True)


def _matched_inputs(matcher: MapMatcher, pts: FitPoints, ref_pts: Optional[FitPoints],
                    opts: ScanOptions, nthreads: int, delta_b: float = 0.0,
                    target_scale: float = 1.0):
    """The scan's inputs from a matched pair: the matched reference's grid, both point sets
    with the matched maps' values, the matched target (for the reverse direction) and the
    matching as ``scan.json`` gives it. The matched reference itself is not kept (memory)."""
    matched = matcher.pair(delta_b, target_scale, release=True)
    pts = pts.with_values_of(matched.target)
    if ref_pts is not None:
        ref_pts = ref_pts.with_values_of(matched.ref)
    # a filtered reference is the scan's own: its coefficients replace it in place
    own = matched.ref is not matcher.ref
    grid = ReferenceGrid(matched.ref, order=opts.order, nthreads=nthreads, keep_map=False,
                         overwrite=own)
    return grid, pts, ref_pts, matched.target, matched.to_dict()


def _local_options(opts: ScanOptions) -> ScanOptions:
    """The reverse direction: the fine step only, four steps either side of its centre (its
    coarse pass is then the fine step too)."""
    half = 4 * opts.step
    return _LocalOptions(scale_range=(1 - half, 1 + half), step=opts.step,
                         contour=None, max_points=opts.max_points, order=opts.order)


@dataclass(frozen=True)
class _LocalOptions(ScanOptions):
    """ScanOptions whose coarse pass uses the fine step (a short local curve)."""

    @property
    def coarse_step(self) -> float:
        return self.step


def _combine(forward: DirectionScan, reverse: Optional[DirectionScan]):
    """The reported factor and uncertainty from the two directions.

    The reverse factor r estimates 1/s. The two directions use the same data, so averaging
    them does not reduce the noise: the uncertainty is the larger of the two, combined with
    half their disagreement, and never below :data:`UNCERTAINTY_FLOOR`.
    """
    if reverse is None:
        return forward.best_scale, max(forward.uncertainty, UNCERTAINTY_FLOOR)
    s_r = 1.0 / reverse.best_scale
    u_r = reverse.uncertainty / reverse.best_scale ** 2
    best = 0.5 * (forward.best_scale + s_r)
    u = float(np.hypot(max(forward.uncertainty, u_r), 0.5 * (forward.best_scale - s_r)))
    return float(best), max(u, UNCERTAINTY_FLOOR)


def peak_of_curve(scales, cc, step: Optional[float] = None):
    """:func:`refine_peak` on the samples within 3.5 ``step`` of the maximum (all if None).

    Parameters
    ----------
    scales, cc : array_like
        Sorted factors and their correlations.
    step : float, optional
        The finest step of the curve.

    Returns
    -------
    best : float
    uncertainty : float
    """
    scales = np.asarray(scales, dtype=np.float64)
    cc = np.asarray(cc, dtype=np.float64)
    if step is None:
        return refine_peak(scales, cc)
    i = int(np.argmax(cc))
    near = np.abs(scales - scales[i]) <= 3.5 * step
    return refine_peak(scales[near], cc[near])


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


def corrected_target(ref: Map, target: Map, result: ScanResult, *, order: int = 3,
                     anisotropic: bool = True, coefficients=None, nthreads: int = 0) -> Map:
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
    coefficients : numpy.ndarray, optional
        The target's spline coefficients, if the caller has them (see
        :func:`voxscale.resample`).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    Map
        On the reference grid (shape, voxel size, origin), 0 outside the target's box.
    """
    return resample_by_index(target, ref, correction_index_map(ref, target, result,
                                                                anisotropic=anisotropic),
                             order, coefficients=coefficients, nthreads=nthreads)


def correction_index_map(ref: Map, target: Map, result: ScanResult, *,
                         anisotropic: bool = True) -> np.ndarray:
    """The correction as an affine map of voxel indices: reference voxel (ix, iy, iz) to the
    target's fractional index (see :func:`voxscale.index_map`; parameters as for
    :func:`corrected_target`).

    Returns
    -------
    numpy.ndarray, shape (3, 4)
    """
    if anisotropic and result.anisotropic is not None:
        transform, scale = result.anisotropic["transform"], result.anisotropic["scale_matrix"]
    else:
        transform, scale = result.transform, result.best_scale
    return index_map(target, ref, transform, scale)


#: Voxels beyond a sub-box that its spline coefficients need to be those of the whole map
#: (the prefilter's boundary effect decays as 0.268^k: at 8, 0.3 % of a round trip's error
#: at the box's faces, measured on EMD-3488).
SPLINE_MARGIN = 8


def resampling_round_trip(ref: Map, target: Map, result: ScanResult, *, region=None,
                          anisotropic: bool = True, nthreads: int = 0) -> Map:
    """The reference resampled onto the target's grid through the inverse of the correction
    and back through the correction, both cubic.

    If the target is the reference's data on another grid (resampled once onto it, and
    corrected back), its corrected copy carries exactly this error: its difference from the
    reference is the error that resampling between the two grids makes, where and as
    strongly as the comparison makes it. (The target's own round trip would underestimate
    it: a target that was resampled once is already smoother than the reference; measured
    on EMD-3488 rotated by 70°, half the error variance.)

    Parameters
    ----------
    ref, target, result
        As for :func:`corrected_target`.
    region : tuple of three slices, optional
        A box of the reference grid (z, y, x slices with unit steps): only its voxels are
        computed, from the reference within :data:`SPLINE_MARGIN` voxels of it and the
        target voxels they need (default the whole grid).
    anisotropic : bool, optional
        As for :func:`corrected_target`.
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    Map
        On the reference grid, or on ``region`` of it (its origin that of the box's first
        voxel); 0 where the target's box does not reach.
    """
    nthreads = resolve_threads(nthreads)
    forward = correction_index_map(ref, target, result, anisotropic=anisotropic)
    out_lo, out_hi = _box_bounds(region, ref.shape)
    # the reference the forward leg reads, and the part of the target grid the back leg reads
    in_lo = np.maximum(out_lo - SPLINE_MARGIN, 0)
    in_hi = np.minimum(out_hi + SPLINE_MARGIN, np.asarray(ref.shape))
    corners = np.array([[x, y, z, 1.0] for z in (out_lo[0], out_hi[0] - 1)
                        for y in (out_lo[1], out_hi[1] - 1) for x in (out_lo[2], out_hi[2] - 1)])
    reach = corners @ forward.T  # x, y, z target indices of the box's corners
    tgt_lo = np.clip(np.floor(reach.min(axis=0))[::-1].astype(int) - 2 - SPLINE_MARGIN, 0,
                     np.asarray(target.shape))
    tgt_hi = np.clip(np.ceil(reach.max(axis=0))[::-1].astype(int) + 3 + SPLINE_MARGIN, 0,
                     np.asarray(target.shape))
    if np.any(tgt_hi <= tgt_lo):  # the box lies beyond the target: nothing comes back
        return _sub_grid(ref, out_lo, out_hi, np.zeros(tuple(out_hi - out_lo), np.float32))
    whole = np.all(in_lo == 0) and np.all(in_hi == np.asarray(ref.shape))
    source = ref if whole else _sub_grid(ref, in_lo, in_hi)
    out = _sub_grid(ref, out_lo, out_hi, np.zeros(tuple(out_hi - out_lo), np.float32))
    there_grid = _sub_grid(target, tgt_lo, tgt_hi, np.zeros(tuple(tgt_hi - tgt_lo),
                                                              np.float32))
    # index maps between the boxes: the whole grids' maps shifted by the boxes' first voxels
    forward_box = _shifted(forward, out_lo, tgt_lo)
    backward = np.linalg.inv(np.vstack([forward, [0.0, 0.0, 0.0, 1.0]]))[:3]
    there = resample_by_index(source, there_grid, _shifted(backward, tgt_lo, in_lo), 3,
                              nthreads=nthreads)
    del source
    coefficients = spline_coefficients(there.data, nthreads=nthreads)
    back = resample_by_index(there, out, forward_box, 3, coefficients=coefficients,
                             nthreads=nthreads)
    return back


def _box_bounds(region, shape) -> tuple:
    """(first, end) voxel indices, z, y, x, of a box given as three slices (None: all)."""
    shape = np.asarray(shape)
    if region is None:
        return np.zeros(3, int), shape.copy()
    if len(region) != 3 or any(not isinstance(r, slice) or r.step not in (None, 1)
                               for r in region):
        raise OptionError("region must be three slices (z, y, x) with unit steps")
    bounds = [r.indices(int(n))[:2] for r, n in zip(region, shape)]
    lo, hi = (np.array(b) for b in zip(*bounds))
    if np.any(hi <= lo):
        raise OptionError(f"region {region} is empty on a grid of shape {tuple(shape)}")
    return lo, hi


def _sub_grid(m: Map, lo, hi, data=None) -> Map:
    """The box [lo, hi) (z, y, x voxel indices) of a map as a map of its own: the map's data
    there (copied) or ``data``, its voxel size, the origin of the box's first voxel."""
    if data is None:
        data = np.ascontiguousarray(m.data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
    return Map._on_grid_of_box(data, m, np.asarray(lo)[::-1])


def _shifted(matrix: np.ndarray, onto_lo, source_lo) -> np.ndarray:
    """An index map (3x4, x, y, z) between whole grids as one between boxes of them: from the
    box of ``onto`` starting at voxel onto_lo to that of the source starting at source_lo
    (both z, y, x)."""
    out = matrix.copy()
    out[:, 3] += matrix[:, :3] @ np.asarray(onto_lo, float)[::-1] - np.asarray(source_lo,
                                                                              float)[::-1]
    return out


#: Resampling counts points this close (voxels) beyond a map's outer samples as on its face
#: (``kResampleEdgeTolerance`` of the C++ core).
RESAMPLE_EDGE = 0.01
#: A point this close (voxels) outside the inner box still has all its trilinear weight in it
#: to within 1e-5.
COVERAGE_TOLERANCE = 1e-5


def target_coverage(ref: Map, target: Map, result: ScanResult, margin: float, *,
                    anisotropic: bool = True, nthreads: int = 0) -> np.ndarray:
    """Reference voxels that the corrected target covers, at least ``margin`` Å inside its
    box: beyond it the corrected target has no data (0), and a difference there is the
    reference's density, not a change.

    Parameters
    ----------
    ref, target, result
        As for :func:`corrected_target` (only the target's grid is used).
    margin : float
        Distance (Å) from the target's box faces (its outer voxel centres) that counts as
        outside (0: every point between those centres is covered, and points within 0.01
        voxel beyond them, which resampling puts on the face).
    anisotropic, nthreads
        As for :func:`corrected_target`.

    Returns
    -------
    numpy.ndarray of bool, shape of the reference

    Notes
    -----
    A voxel is covered when its source index lies in [lo, n − 1 − lo] on every axis of the
    target (lo the margin in the corrected target's voxels), i.e. when all eight trilinear
    neighbours of a resampled box indicator are inside. The index is affine along each
    reference row, so each row's covered part is one interval, found from its ends: no map
    is resampled (memory: the mask alone).
    """
    nthreads = resolve_threads(nthreads)
    matrix = correction_index_map(ref, target, result, anisotropic=anisotropic)  # x, y, z
    n = np.asarray(target.shape[::-1], dtype=np.float64)
    lo = np.ceil(margin / (np.asarray(target.voxel_size) * result.best_scale))
    last = n - 1 - lo
    nz, ny, nx = ref.shape
    covered = np.zeros(ref.shape, dtype=bool)
    if np.any(last < lo):
        return covered
    lower = np.where(lo == 0, -RESAMPLE_EDGE, lo - COVERAGE_TOLERANCE)
    upper = np.where(last == n - 1, last + RESAMPLE_EDGE, last + COVERAGE_TOLERANCE)
    iz, iy = np.meshgrid(np.arange(nz, dtype=np.float64), np.arange(ny, dtype=np.float64),
                         indexing="ij")
    first = np.zeros((nz, ny))
    final = np.full((nz, ny), float(nx - 1))
    for axis in range(3):
        row_start = matrix[axis, 1] * iy + matrix[axis, 2] * iz + matrix[axis, 3]
        slope = matrix[axis, 0]
        if slope == 0.0:
            outside = (row_start < lower[axis]) | (row_start > upper[axis])
            final[outside] = -1.0
            continue
        a = (lower[axis] - row_start) / slope
        b = (upper[axis] - row_start) / slope
        first = np.maximum(first, np.ceil(np.minimum(a, b)))
        final = np.minimum(final, np.floor(np.maximum(a, b)))
    ix = np.arange(nx)
    for z in range(nz):  # plane by plane: no temporary of the map's size
        covered[z] = (ix >= first[z, :, None]) & (ix <= final[z, :, None])
    return covered


#: Edge (Å) of the blocks that make the fit-point subsets: larger than the correlation length
#: of the noise in a map at its resolution, so that subsets see independent noise.
SUBSET_BLOCK = 10.0


def _block_subsets(xyz: np.ndarray, n_subsets: int) -> np.ndarray:
    """Subset (0..n-1) of each point: whole blocks of SUBSET_BLOCK Å go to one subset, the
    blocks spread over the subsets by a fixed hash (deterministic)."""
    b = np.floor(xyz / SUBSET_BLOCK).astype(np.int64)
    mixed = (b[:, 0] * 73856093) ^ (b[:, 1] * 19349663) ^ (b[:, 2] * 83492791)
    return np.mod(mixed, n_subsets)


def _subset_statistics(grid, pts: FitPoints, fits: dict, keys, cc, best: float,
                       n_subsets: int = 8) -> dict:
    """Noise estimates from subsets of the fit points (no refits).

    The subsets are made of whole blocks of about 10 Å, so that the noise each one sees is
    nearly independent of the others' (interleaved subsets of neighbouring points share the
    same noise features and would understate it). Each subset is scored at the fitted
    transforms of the factors around the maximum, at the ends of the curve and at s = 1.
    Returned: ``peak_se``, the scatter of the subsets' own peaks divided by sqrt(n_subsets)
    (how much the noise in the maps moves the answer), and ``cc_noise``, the standard error of
    a correlation difference along the curve (the best factor against the others).
    """
    out = {"peak_se": 0.0, "cc_noise": 0.0}
    i = int(np.argmax(cc))
    near = list(keys[max(0, i - 3): i + 4])
    label = _block_subsets(pts.xyz, n_subsets)
    sizes = np.bincount(label, minlength=n_subsets)
    if len(near) < 3 or sizes.min() < 40:
        return out
    others = [k for k in (keys[0], keys[-1], _key(1.0)) if k in fits and k not in near]
    at = near + others
    curves = []
    for j in range(n_subsets):
        sub = label == j
        xyz = np.ascontiguousarray(pts.xyz[sub])
        values = np.ascontiguousarray(pts.values[sub] - pts.values[sub].mean())
        sub_pts = FitPoints(xyz, values, pts.center, pts.contour)
        row = []
        for s in at:
            t = fits[float(s)].transform
            p = sub_pts.scaled(float(s))
            c = p.mean(axis=0)
            row.append(grid.score(p, values, t[:3, :3], t[:3, :3] @ c + t[:3, 3] - c, c)[0])
        curves.append(row)
    curves = np.array(curves)
    curves = curves[np.all(np.isfinite(curves), axis=1)]  # a subset outside the other map
    if len(curves) < 3:
        return out
    n_subsets = len(curves)
    peaks = np.array([refine_peak(near, row[:len(near)])[0] for row in curves])
    out["peak_se"] = float(np.std(peaks, ddof=1) / np.sqrt(n_subsets))
    top = curves[:, int(np.argmax(cc[max(0, i - 3): i + 4]))][:, None]
    diffs = top - curves
    out["cc_noise"] = float(np.max(np.std(diffs, axis=0, ddof=1)) / np.sqrt(n_subsets))
    return out


def scan_quality(result: "ScanResult") -> Quality:
    """The verdict on a scan (see :mod:`voxscale.quality` for the codes).

    Parameters
    ----------
    result : ScanResult

    Returns
    -------
    Quality
    """
    q = Quality()
    f = result.forward
    if f is None:
        return q
    width = f.scale_range[1] - f.scale_range[0]
    if f.at_edge:
        q.add("range_edge", f"the correlation is largest at the end of the scanned range "
                            f"({f.scale_range[0]:.3f}-{f.scale_range[1]:.3f}, widened up to "
                            f"±15 %): the factor is outside it, or the maps do not match")
    if f.drop < FLAT_DROP or result.uncertainty > 0.25 * width:
        q.add("flat_curve", f"the correlation changes by only {f.drop:.2g} over the scanned "
                            f"factors and the maximum is uncertain to ±{result.uncertainty:.3g}:"
                            " the scan cannot tell the factors apart")
    elif (abs(result.best_scale - 1) > NEGLIGIBLE_CORRECTION
          and abs(result.best_scale - 1) < 2 * result.uncertainty):
        q.add("no_gain_over_unit", f"the correction {result.percent:+.3f} % is within twice its "
                                   f"uncertainty (±{100 * result.uncertainty:.3f} %): s = 1 "
                                   "fits about as well")
    elif result.uncertainty > IMPRECISE:
        q.add("imprecise", f"the factor is known only to ±{100 * result.uncertainty:.2f} % "
                           f"(more than {100 * IMPRECISE:.1f} %): differences between the maps "
                           "may still carry a scale error of that size")
    if result.cc_best < LOW_CC:
        q.add("low_correlation", f"the correlation at the best factor is {result.cc_best:.3f}: "
                                 "the maps do not match well enough for a scale")
    elif result.cc_best < MODEST_CC:
        q.add("modest_correlation", f"the correlation at the best factor is only "
                                    f"{result.cc_best:.3f}")
    p = result.placement
    if p.method == "maps":
        if not (p.cc >= LOW_CC or result.cc_best >= CONFIRMED_CC):
            q.add("weak_placement", f"the best map-only pose reaches a correlation of only "
                                    f"{p.cc:.3f}")
        elif np.isfinite(p.gap) and p.gap < AMBIGUOUS_GAP * p.cc and not p.symmetry_mate:
            q.add("ambiguous_placement", f"two different poses fit about equally well "
                                         f"(correlation {p.cc:.3f} and {p.second_cc:.3f})")
    if result.mirror is not None and result.mirror.cc > result.cc_best + MIRROR_MARGIN:
        q.add("mirror_fits_better", f"the mirrored target fits better (correlation "
                                    f"{result.mirror.cc:.3f} against {result.cc_best:.3f}): "
                                    "one of the maps probably has the wrong hand")
    r = result.reverse
    if r is not None:
        s_r = 1.0 / r.best_scale
        u = float(np.sqrt(f.uncertainty ** 2 + (r.uncertainty / r.best_scale ** 2) ** 2
                          + DIRECTION_ALLOWANCE ** 2))
        if abs(f.best_scale - s_r) > 3 * u:
            q.add("directions_disagree", f"the target into the reference gives "
                                         f"{f.best_scale:.5f}, the reference into the target "
                                         f"{s_r:.5f} (±{u:.5f})")
    return q
