"""The whole method in one call (docs/method.md §1): placement, voxel-scale scan, correction
and resampling, amplitude scaling before and after the correction, vector and real-space
difference maps, peaks, and the model analyses when models are given.

:func:`compare` works on maps in memory; :func:`compare_files` reads and checks the inputs
first. ``voxscale compare``, ``voxscale demo`` and every task of ``voxscale batch`` run
:func:`compare_files`, and their outputs all come from :func:`voxscale.pipeline.summary.summary`.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..analysis.expansion import expansion as model_expansion
from ..errors import MapFormatError, ModelFormatError, ModelMismatchError, VoxscaleError
from ..fit.scan import (Progress, ScanOptions, ScanResult, corrected_target,
                        resampling_round_trip, scan_voxel_scale, target_coverage)
from ..maps.map import Map
from ..maps.models import (calpha_residues, check_model_in_map, model_atom_positions,
                           read_model, transform_structure)
from ..maps.mrc import read_map
from ..maps.interpolation import resample, spline_coefficients
from ..maps.masks import density_mask, dilate, model_mask
from ..reciprocal.difference import (DifferenceResult, compare_amplitudes,
                                     real_space_difference, resampling_floor,
                                     vector_difference)
from ..reciprocal.noise import check_half_map, half_map_noise
from ..reciprocal.peaks import PeakTable, find_peaks
from ..reciprocal.residue_scores import ResidueScores, residue_scores
from ..reciprocal.resolution import ResolutionChoice, signal_resolution
from ..reciprocal.transform import (fast_length, half_transform, low_pass,
                                   map_from_half_transform, resolution_mask)
from ..maps.map import is_constant, mean_std, relabel_voxel_size
from ..quality import Quality
from ..reciprocal.scaling import WILSON_R_ACENTRIC, ScalingResult
from ..reciprocal.shells import check_resolution_range
from ..threads import resolve_threads

__all__ = ["CompareResult", "compare", "compare_files", "read_density", "read_placed_model",
           "scale_error_matters", "amplitude_quality", "difference_quality",
           "molecular_region", "sigma_region", "R_NEAR_UNRELATED", "IMPLAUSIBLE_B",
           "EDGE_RESOLUTION_ELEMENTS"]

#: R after correction above this fraction of the unrelated-maps limit (58.6 %) is unreliable.
R_NEAR_UNRELATED = 0.85
#: A relative B beyond this (Å²) is not a blur between two maps of one molecule.
IMPLAUSIBLE_B = 300.0
#: With models, peaks within this distance (Å) of an atom are kept.
DEFAULT_MAX_DISTANCE = 5.0
#: Peaks closer than this many resolution elements (d_min) to the box's faces are dropped.
EDGE_RESOLUTION_ELEMENTS = 2.0
#: Below this fraction of the molecular mask covered by the corrected target: flagged.
MIN_MOLECULE_COVERAGE = 0.9
#: σ of the difference over the solvent below this fraction of the reference's own solvent
#: spread (in the same band) means the maps share their noise: measured 1e-4 for a map against
#: itself (EMD-5170), 0.086 for EMD-11007 against a rotated copy, 0.48 with independent noise
#: on one side only; independent noise on both gives about 1.4.
SHARED_NOISE = 0.25
#: A model mask covers atoms to this radius (Å) plus d_min.
MODEL_MASK_RADIUS = 3.0
#: The solvent must hold this many voxels and this fraction of the box for its σ.
MIN_SOLVENT_VOXELS, MIN_SOLVENT_FRACTION = 1000, 0.05
#: A solvent whose spread is below this fraction of the molecule's was masked flat: deposited
#: maps' solvent noise measured 12-21 % of the molecule's spread (EMD-11007, -5168, -5170),
#: masked or segmented maps 0.5-4 % (EMD-3488, -1997, -2566, -21457 as in ../shared/data).
FLAT_SOLVENT = 0.05


@dataclass
class CompareResult:
    """Everything :func:`compare` computed.

    Attributes
    ----------
    scan : ScanResult
        The voxel-scale scan.
    corrected : Map
        Target with the corrected voxel size, fitted and resampled onto the reference grid.
    before : ScalingResult
        Amplitude scaling and statistics of the target fitted at s = 1 (uncorrected).
    after : ScalingResult
        Amplitude scaling and statistics of the corrected target.
    difference : DifferenceResult or None
        Vector difference of the corrected target (None when not asked for).
    real_space : Map or None
        Real-space difference (equal σ, both low-passed to d_min) of the corrected target.
    peaks : PeakTable or None
        Peaks of the vector difference after correction.
    d_max, d_min : float
        Resolution range in Å.
    expansion : ExpansionResult or None
        Cα-shift expansion analysis when both models were given.
    target_model_in_ref : gemmi.Structure or None
        The target model moved into the reference frame with the corrected scale.
    timings : dict
        Seconds per step.
    inputs, parameters : dict
        What was compared and with which options (recorded in the summary).
    quality : Quality
        The verdict: the scan's reasons and those of the amplitude comparison.
    voxel_sizes : dict
        Header voxel sizes of the reference and the target, and the target's corrected one
        (x, y, z, Å).
    target_voxel_fixed : Map or None
        The target unchanged but for its corrected voxel size (what ChimeraX's
        ``volume voxelSize`` would give), box centre kept. From :func:`compare_files`, read
        from the target's file again on each access (the target was let go after
        resampling: memory).
    resolution : ResolutionChoice
        The high-resolution limit and why it was chosen.
    residue_scores : ResidueScores or None
        Per-residue difference scores of the reference model (with a reference model).
    half_maps : dict or None
        ``"reference"`` and ``"target"``: their :class:`~voxscale.reciprocal.HalfMapNoise`
        (with half maps).
    ref_model : gemmi.Structure or None
        The reference model, for the scored copy.
    target_coverage : dict or None
        With difference maps: ``"box"`` and ``"molecule"``, the fractions of the reference
        box and of its molecular mask where the corrected target has data (inside its box;
        residue scores come from there only, peaks and σ from two resolution elements
        inside it).
    solvent_noise_ratio : float or None
        Without half maps, σ from the solvent: σ of the difference over it against the
        reference's own spread there in the same band (about 1.4 for independent noise;
        below ``SHARED_NOISE`` flagged ``shared_noise``).
    """

    scan: ScanResult
    corrected: Map
    before: ScalingResult
    after: ScalingResult
    difference: Optional[DifferenceResult]
    real_space: Optional[Map]
    peaks: Optional[PeakTable]
    d_max: Optional[float]
    d_min: float
    expansion: object = None
    target_model_in_ref: object = None
    timings: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    quality: Quality = field(default_factory=Quality)
    voxel_sizes: dict = field(default_factory=dict)
    _target_voxel_fixed: Optional[Map] = None
    resolution: Optional[ResolutionChoice] = None
    residue_scores: Optional[ResidueScores] = None
    half_maps: Optional[dict] = None
    ref_model: object = None
    target_coverage: Optional[dict] = None
    solvent_noise_ratio: Optional[float] = None

    #: The target's file when :func:`compare_files` let the target go (see
    #: :attr:`target_voxel_fixed`).
    _target_source: Optional[str] = field(default=None, repr=False, compare=False)

    @property
    def target_voxel_fixed(self) -> Optional[Map]:
        if self._target_voxel_fixed is None and self._target_source is not None:
            return relabel_voxel_size(read_density(self._target_source, "target"),
                                      self.voxel_sizes["target_corrected"])
        return self._target_voxel_fixed

    @target_voxel_fixed.setter
    def target_voxel_fixed(self, value: Optional[Map]) -> None:
        self._target_voxel_fixed, self._target_source = value, None

    def to_dict(self) -> dict:
        """Every number, machine-readable: the content of ``summary.json``.

        Returns
        -------
        dict
        """
        from .summary import summary
        return summary(self)


def scale_error_matters(result: ScanResult, d_min: float, radius: float) -> tuple:
    """Whether a voxel-scale error is significant at a resolution.

    An error ε = s − 1 moves atoms at distance r from the centre by |ε|·r. It is judged to
    matter when atoms at the molecule's outer radius move by more than a quarter of the
    resolution, where the FSC between two otherwise identical maps starts to fall visibly, or
    when it is more than three times its uncertainty and that displacement exceeds 0.1·d_min.

    Parameters
    ----------
    result : ScanResult
    d_min : float
        Resolution in Å.
    radius : float
        Outer radius of the molecule in Å.

    Returns
    -------
    matters : bool
    displacement : float
        |s − 1|·radius in Å.
    """
    shift = abs(result.best_scale - 1.0) * radius
    significant = abs(result.best_scale - 1.0) > 3 * result.uncertainty
    return bool(shift > 0.25 * d_min or (significant and shift > 0.1 * d_min)), float(shift)


def _model_into_reference(model, result: ScanResult):
    """The target model moved into the reference frame with the corrected voxel size:
    x -> R·(c + s·(x − c)) + t, c the target's box centre."""
    scale = np.eye(4)
    scale[:3, :3] *= result.best_scale
    scale[:3, 3] = result.target_center * (1.0 - result.best_scale)
    return transform_structure(model, result.transform @ scale)


class _OwnedMap:
    """A map handed to :func:`compare` by a caller that keeps no reference to it, so that
    compare can let it go once it is no longer needed."""

    def __init__(self, m: Map):
        self._map = m

    def take(self) -> Map:
        m, self._map = self._map, None
        return m


def compare(ref: Map, target: Map, ref_model=None, target_model=None, *, d_max=None,
            d_min=None, sigma: float = 4.0, scan_options: Optional[ScanOptions] = None,
            difference: bool = True, ref_halves=None, target_halves=None, mask=None,
            max_distance: float = DEFAULT_MAX_DISTANCE, half_map_names: Optional[dict] = None,
            nthreads: int = 0,
            progress: Optional[Progress] = None,
            log: Optional[Callable[[str], None]] = None) -> CompareResult:
    """Compare two maps: find and correct the voxel-scale error, then difference them.

    Parameters
    ----------
    ref, target : Map
        Reference and target maps (any boxes, voxel sizes, origins).
    ref_model, target_model : gemmi.Structure, optional
        Their models: used for the placement, to name peaks and for the expansion analysis.
    d_max, d_min : float, optional
        Resolution range in Å of the amplitude statistics and difference maps (default: no
        low limit; where both maps still carry shared signal, see
        :func:`voxscale.reciprocal.signal_resolution`: from the half maps when given).
    sigma : float, optional
        Peak threshold (default 4): z-scores of the noise with half maps, σ of the solvent
        otherwise.
    ref_halves, target_halves : tuple of two Map, optional
        Half maps of the reference and of the target (on their full maps' grids); both or
        neither. With them the default resolution is the worse map's own (half-map FSC =
        0.143) and the difference map is noise-calibrated (z-scores, shells weighted by the
        signal-to-noise of the difference).
    mask : Map or numpy.ndarray, optional
        Molecular mask on the reference grid (values > 0.5 inside). Default: from the models
        when given (atoms within 3 Å), else from both maps (density above its solvent noise),
        widened by d_min. Peaks are kept inside it; σ without half maps is that of the
        solvent outside it.
    max_distance : float, optional
        With models: keep peaks within this distance (Å) of an atom (default 5); with
        ``mask`` too, peaks must also be inside the mask.
    half_map_names : dict, optional
        ``{"ref": (name1, name2), "target": (...)}``: how the half maps are named in errors
        (their files).
    scan_options : ScanOptions, optional
        Options of the voxel-scale scan.
    difference : bool, optional
        Compute the difference maps and their peaks (default True); without them only the
        scan and the amplitude statistics are computed (what a survey needs).
    nthreads : int, optional
        Threads (0 = all available).
    progress : callable, optional
        ``progress(done, total, message)`` during the scan.
    log : callable, optional
        Receives one line per finished step.

    Returns
    -------
    CompareResult

    Notes
    -----
    Peaks, σ and the residue scores come only from where the corrected target has data, at
    least two resolution elements inside its box. Without half maps the error of resampling
    between the two grids is a per-voxel floor under σ
    (:func:`voxscale.reciprocal.resampling_floor`; docs/method.md §1 step 6).
    """
    nthreads = resolve_threads(nthreads)
    # compare_files hands its target over: once resampled, only its grid is kept (memory)
    owned = isinstance(target, _OwnedMap)
    if owned:
        target = target.take()
    if d_min is not None:
        d_max, d_min = check_resolution_range(d_max, d_min)
    if (ref_halves is None) != (target_halves is None):
        raise VoxscaleError("give half maps of both maps (ref_halves and target_halves) or of "
                            "neither: the noise of the difference needs both")
    for name, halves in (("ref_halves", ref_halves), ("target_halves", target_halves)):
        if halves is not None and (isinstance(halves, (str, os.PathLike, Map))
                                   or len(halves) != 2):
            raise VoxscaleError(f"{name} must be two Map objects (the half maps), got "
                                f"{type(halves).__name__}")
    try:
        max_distance = float(max_distance)
    except (TypeError, ValueError):
        raise VoxscaleError(f"max_distance must be a distance in Å, got {max_distance!r}") \
            from None
    if not (np.isfinite(max_distance) and max_distance > 0):
        raise VoxscaleError(f"max_distance must be a positive, finite distance in Å, got "
                            f"{max_distance!r}")
    names = half_map_names or {}
    timings: dict = {}
    say = log or (lambda line: None)

    @contextmanager
    def step(name):
        start = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - start
        say(f"{name}: {timings[name]:.2f} s")

    ref_noise = target_noise = None
    if ref_halves is not None:
        with step("half_maps"):
            ref_noise = half_map_noise(ref, *ref_halves, nthreads=nthreads,
                                       names=names.get("ref", _half_names("reference")))
            target_noise = half_map_noise(target, *target_halves, nthreads=nthreads,
                                          names=names.get("target", _half_names("target")))
    expansion = models_refused = None
    placing_models = (ref_model, target_model)
    if ref_model is not None and target_model is not None:
        with step("models"):
            try:
                expansion = model_expansion(ref_model, target_model)
            except ModelMismatchError as exc:
                # models of different molecules must not place the target either
                models_refused, placing_models = str(exc), (None, None)
    with step("scan"):
        scan = scan_voxel_scale(ref, target, *placing_models, options=scan_options,
                                nthreads=nthreads, progress=progress)
    with step("resample"):
        # the target's spline coefficients serve both resamplings; a target handed over is
        # replaced by them, and only its grid kept (memory)
        coefficients = spline_coefficients(target.data, overwrite=owned, nthreads=nthreads)
        if owned:
            target = Map._grid_only(target)
        corrected = corrected_target(ref, target, scan, coefficients=coefficients,
                                     nthreads=nthreads)
        uncorrected = resample(target, ref, scan.unit_transform, 1.0, order=3,
                               coefficients=coefficients, nthreads=nthreads)
        del coefficients
    with step("scaling_and_difference"):
        # the reference's half transform, once for every step below; the corrected target's
        # is made by each step that uses it and dropped there (the vector difference
        # overwrites its own, which a reference kept here would hold: a map's memory for
        # an FFT)
        f_ref = half_transform(ref, nthreads=nthreads)
        if d_min is None:
            choice = signal_resolution(
                ref, corrected, nthreads=nthreads, transforms=(f_ref, None),
                resampled_voxel=float(np.max(target.voxel_size)) * scan.best_scale,
                half_map_resolutions=None if ref_noise is None else (
                    ref_noise.resolution, target_noise.resolution * scan.best_scale))
        else:
            choice = ResolutionChoice(float(d_min), "given", f"{float(d_min):.2f} Å, given")
        d_min = choice.d_min
        say(f"resolution limit: {choice.reason}")
        before = compare_amplitudes(ref, uncorrected, d_max, d_min, nthreads=nthreads,
                                    transforms=(f_ref, None))
        del uncorrected  # only its statistics are kept: memory
        diff = real_space = None
        models = {}
        moved = None
        if ref_model is not None:
            models["ref"] = ref_model
        if target_model is not None:
            moved = _model_into_reference(target_model, scan)
            models["target"] = moved
        molecule = covered = has_data = solvent_ratio = None
        if difference:
            molecule = molecular_region(ref, corrected, models.values(), mask, d_min,
                                        nthreads=nthreads)
            # where the corrected target has data (beyond its box it is 0, and the difference
            # there is the reference itself): residue scores and the coverage come from
            # has_data, peaks and σ from covered, two resolution elements inside its box as
            # they are inside the reference's
            covered = target_coverage(ref, target, scan, EDGE_RESOLUTION_ELEMENTS * d_min,
                                      nthreads=nthreads)
            noise = region = floor = None
            if ref_noise is None:
                sigma_name, region = sigma_region(ref, molecule, covered)
            # where peaks are sought: in covered's memory unless σ's region is covered
            # itself; covered is made again for the peaks (memory)
            peak_region = (covered & molecule if region is covered
                           else np.logical_and(covered, molecule, out=covered))
            del covered
            if ref_noise is not None:
                noise = (ref_noise.noise, corrected_target(ref, target_noise.noise, scan,
                                                           nthreads=nthreads))
                sigma_name = "half_maps"
                # z-scores of the noise where peaks are sought (beyond the target's box only
                # the reference's noise is left)
                region = peak_region if peak_region.any() else molecule
            if ref_noise is None:
                # the error resampling between the grids makes is a floor under σ: without
                # it a masked map's flat solvent lets interpolation error pass for peaks;
                # computed over the box where peaks and residue scores are sought
                atoms = np.concatenate([model_atom_positions(m) for m in models.values()]) \
                    if models else None
                box = floor_region(ref, peak_region, d_min, points=atoms,
                                   reach=max_distance if mask is None else 0.0)
                floor = resampling_floor(
                    ref, resampling_round_trip(ref, target, scan, region=box,
                                               nthreads=nthreads),
                    d_max, d_min, transform=f_ref, scale_uncertainty=scan.uncertainty,
                    centre=(scan.transform @ np.append(scan.target_center, 1.0))[:3],
                    boxed=True, nthreads=nthreads)
            diff = vector_difference(ref, corrected, d_max, d_min, nthreads=nthreads,
                                     noise=noise, mask=region, floor=floor,
                                     floor_region=peak_region if peak_region.any() else None,
                                     transforms=(f_ref, None))
            del floor  # used (memory)
            diff.sigma_source = sigma_name
            if sigma_name == "solvent" and diff.sigma > 0:
                solvent_ratio = diff.sigma / _band_spread(ref, f_ref, region, d_max, d_min,
                                                          nthreads)
            del noise, region, peak_region
            # the last use of f_ref: low-passed in place; the corrected map transformed again
            real_space = real_space_difference(ref, corrected, d_min=d_min, nthreads=nthreads,
                                               transforms=(f_ref, None), overwrite=True)
            # residue scores and the coverage come from has_data, peaks from covered (made
            # here, not held through the difference: memory; both are cheap)
            has_data = target_coverage(ref, target, scan, 0.0, nthreads=nthreads)
            covered = target_coverage(ref, target, scan, EDGE_RESOLUTION_ELEMENTS * d_min,
                                      nthreads=nthreads)
            after = diff.scaling
        else:
            after = compare_amplitudes(ref, corrected, d_max, d_min, nthreads=nthreads,
                                       transforms=(f_ref, None))
        del f_ref
    peaks = scores = None
    if difference:
        with step("peaks"):
            peaks = find_peaks(diff.map, sigma, models, nthreads=nthreads,
                               mask=covered & molecule if mask is not None or not models
                               else covered,
                               max_distance=max_distance if models else None,
                               edge_margin=EDGE_RESOLUTION_ELEMENTS * d_min)
            if ref_model is not None:
                scores = residue_scores(diff.map, ref_model, mask=has_data, nthreads=nthreads)
    parameters = {"resolution": [d_max, d_min], "resolution_choice": choice.to_dict(),
                  "threads": nthreads, "sigma": sigma, "max_distance": max_distance,
                  "half_maps": ref_noise is not None,
                  "range": list(scan.options.scale_range), "step": scan.options.step,
                  "contour": scan.options.contour, "anisotropic": scan.options.anisotropic}
    quality = Quality()
    quality.extend(scan.quality)
    quality.extend(amplitude_quality(before, after))
    coverage = None
    if diff is not None:
        quality.extend(difference_quality(diff, peaks, sigma))
        coverage = {"box": float(has_data.mean()),
                    "molecule": float(np.count_nonzero(has_data & molecule)
                                      / max(np.count_nonzero(molecule), 1))}
        if solvent_ratio is not None and solvent_ratio < SHARED_NOISE:
            quality.add("shared_noise", f"the difference over the solvent is "
                        f"{100 * solvent_ratio:.0f} % of the reference's own solvent noise: "
                        "the maps share their noise (the same data, or one made from the "
                        "other), so σ is not the noise and peaks stand out only against "
                        "resampling and fitting error (give half maps)")
        if coverage["molecule"] < MIN_MOLECULE_COVERAGE:
            quality.add("partial_coverage", f"the corrected target's box covers "
                        f"{100 * coverage['molecule']:.0f} % of the reference's molecule: the "
                        "rest has no peaks and no residue scores, and R and the scaling "
                        "include it as a difference")
    if models_refused is not None:
        quality.add("models_mismatched", f"the models were not used (no expansion analysis, "
                                         f"placement by the maps): {models_refused}")
    corrected_voxel = target.voxel_size * scan.best_scale
    voxel_sizes = {"reference": ref.voxel_size, "target_header": target.voxel_size,
                   "target_corrected": corrected_voxel}
    return CompareResult(scan, corrected, before, after, diff, real_space, peaks, d_max, d_min,
                         expansion, moved, timings, parameters=parameters, quality=quality,
                         voxel_sizes=voxel_sizes,
                         _target_voxel_fixed=None if owned
                         else relabel_voxel_size(target, corrected_voxel),
                         resolution=choice, residue_scores=scores, half_maps={
                             "reference": ref_noise, "target": target_noise}
                         if ref_noise is not None else None,
                         ref_model=ref_model,
                         target_coverage=coverage, solvent_noise_ratio=solvent_ratio)


def _band_spread(ref: Map, f_ref: np.ndarray, region: np.ndarray, d_max, d_min,
                 nthreads: int) -> float:
    """Standard deviation over ``region`` of the reference limited to [d_max, d_min] (what σ
    of a difference of independent noise is compared with)."""
    band = map_from_half_transform(f_ref * resolution_mask(ref.shape, ref.cell, d_max, d_min),
                                   ref, overwrite=True, nthreads=nthreads).data
    spread = mean_std(band, mask=region)[1]
    return spread if spread > 0 else float("inf")


def _half_names(role: str) -> tuple:
    return (f"the {role}'s half map 1", f"the {role}'s half map 2")


#: The resampling floor's box reaches this many d_min beyond the region of the peaks: its
#: taper (1), the reach of the resolution limit (2) and of the smoothing (1).
FLOOR_MARGIN_RESOLUTION_ELEMENTS = 4.0
#: A floor box of more than this fraction of the grid is computed over the whole grid.
FLOOR_BOX_FRACTION = 0.8


def floor_region(ref: Map, inside: np.ndarray, d_min: float, *, points=None,
                 reach: float = 0.0):
    """The box of the reference grid over which the resampling floor is computed: around the
    voxels ``inside`` and the ``points`` (atoms, x, y, z Å) widened by ``reach`` (Å), where
    peaks and residue scores are sought, FLOOR_MARGIN_RESOLUTION_ELEMENTS·d_min beyond them
    on every side, grown to FFT-friendly lengths; None (the whole grid) when that is most of
    it or there is nothing to cover.

    Returns
    -------
    tuple of three slices (z, y, x) or None
    """
    spans = [None, None, None]  # (first, last) voxel per axis, z, y, x
    if inside.any():
        for axis in range(3):
            used = np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))
            spans[axis] = (int(used[0]), int(used[-1]))
    if points is not None and len(points):
        v = ref.voxel_size
        first = np.floor((np.min(points, axis=0) - reach - ref.origin) / v)[::-1]
        last = np.ceil((np.max(points, axis=0) + reach - ref.origin) / v)[::-1]
        for axis in range(3):
            lo, hi = int(first[axis]), int(last[axis])
            spans[axis] = (lo, hi) if spans[axis] is None else (
                min(lo, spans[axis][0]), max(hi, spans[axis][1]))
    if spans[0] is None:
        return None
    margin = FLOOR_MARGIN_RESOLUTION_ELEMENTS * d_min
    box = []
    for axis, v in zip(range(3), ref.voxel_size[::-1]):
        n = ref.shape[axis]
        pad = int(np.ceil(margin / v))
        lo = min(max(spans[axis][0] - pad, 0), n - 1)
        hi = max(min(spans[axis][1] + 1 + pad, n), lo + 1)
        length = min(fast_length(hi - lo), n)
        lo = max(min(lo, n - length), 0)
        box.append(slice(lo, lo + length))
    volume = np.prod([b.stop - b.start for b in box])
    return None if volume > FLOOR_BOX_FRACTION * np.prod(ref.shape) else tuple(box)


def sigma_region(ref: Map, molecule: np.ndarray, covered: Optional[np.ndarray] = None):
    """Where σ of a difference without half maps comes from: ``("solvent", mask)`` when the
    solvent is large enough (5 % of the box and 1000 voxels) and carries noise;
    ``("molecule", mask)`` when it is flat (a masked map, spread below FLAT_SOLVENT of the
    molecule's: its spread is no measure of the noise); ``("box", None)`` when there is
    hardly any solvent (``("box", covered)`` with ``covered``). ``covered``: the voxels where
    the corrected target has data; the regions are limited to them (when that leaves any)."""
    if covered is not None and covered.any():
        molecule = molecule & covered
        solvent = covered & ~molecule
        box = covered
    else:
        solvent, box = ~molecule, None
    n = int(np.count_nonzero(solvent))
    n_box = solvent.size if box is None else int(np.count_nonzero(box))
    if n < max(MIN_SOLVENT_VOXELS, MIN_SOLVENT_FRACTION * n_box):
        return "box", box
    spread_solvent = mean_std(ref.data, mask=solvent)[1]
    spread_molecule = mean_std(ref.data, mask=molecule)[1] if molecule.any() else 0.0
    if not spread_solvent > FLAT_SOLVENT * spread_molecule:
        return ("molecule", molecule) if molecule.any() else ("box", None)
    return "solvent", solvent


def molecular_region(ref: Map, corrected: Map, models, mask, d_min: float, *,
                     nthreads: int = 0) -> np.ndarray:
    """The molecular mask of a comparison on the reference grid (see :func:`compare`).

    Parameters
    ----------
    ref, corrected : Map
        The reference and the corrected target.
    models : iterable of gemmi.Structure
        Models in the reference frame.
    mask : Map or numpy.ndarray or None
        A user's mask, used as given.
    d_min : float
        Resolution (Å): the density masks are made at it and widened by it.
    nthreads : int, optional

    Returns
    -------
    numpy.ndarray of bool, shape of the reference
    """
    if mask is not None:
        arr = mask.data if isinstance(mask, Map) else np.asarray(mask)
        if arr.shape != ref.shape:
            raise VoxscaleError(f"the mask has shape {arr.shape}, the reference {ref.shape}: "
                                "it must be on the reference grid")
        inside = arr > 0.5 if arr.dtype != bool else arr.copy()
        if not inside.any():
            raise VoxscaleError("the mask is empty")
        return inside
    models = list(models)
    if models:
        return model_mask(ref, models, MODEL_MASK_RADIUS + d_min, nthreads=nthreads)
    inside = density_mask(low_pass(ref, d_min, nthreads=nthreads))
    inside |= density_mask(low_pass(corrected, d_min, nthreads=nthreads))
    return dilate(inside, ref, d_min, nthreads=nthreads)


def difference_quality(diff: DifferenceResult, peaks: Optional[PeakTable],
                       sigma: float) -> Quality:
    """Reasons from the difference map: an implausible relative B, σ taken from the
    difference itself for want of solvent, a cut peak list.

    Parameters
    ----------
    diff : DifferenceResult
    peaks : PeakTable or None
    sigma : float
        The peak threshold.

    Returns
    -------
    Quality
    """
    q = Quality()
    b = diff.scaling.b_tensor
    b_max = float(np.max(np.abs(np.linalg.eigvalsh(b))))
    if b_max > IMPLAUSIBLE_B:
        q.add("implausible_b", f"the amplitude scaling needs a relative B of {b_max:.0f} Å² "
                               f"(beyond ±{IMPLAUSIBLE_B:.0f} Å²): the maps differ by more "
                               "than a blur at this resolution")
    if diff.sigma_source == "box":
        q.add("sigma_from_box", "the molecule fills the box, so σ is the spread of the "
                                "difference map itself: peaks measure the difference relative "
                                "to itself, not to the noise (give half maps or --mask)")
    elif diff.sigma_source == "molecule":
        q.add("flat_solvent", "the reference's solvent is flat (a masked map), so it tells "
                              "nothing of the noise; σ is the spread of the difference over "
                              "the molecule and peaks are relative to it (give half maps)")
    if peaks is not None and peaks.capped:
        q.add("peaks_capped", f"{peaks.n_found} peaks beyond ±{sigma:g}; only the strongest "
                              f"{len(peaks)} are listed")
    return q


def difference_verdict(diff: DifferenceResult, peaks: Optional[PeakTable],
                       sigma: float) -> str:
    """One sentence on what the difference map shows, and against what its peaks are measured.

    Parameters
    ----------
    diff : DifferenceResult
    peaks : PeakTable or None
    sigma : float
        The peak threshold.

    Returns
    -------
    str
    """
    if diff.sigma == 0.0 and diff.sigma_source == "half_maps":
        return ("no difference beyond the noise: in every shell the difference is within "
                "what the half maps' noise explains (weight 0), so the map is zero")
    if diff.sigma == 0.0:
        return "the maps do not differ in the resolution range: the difference map is zero"
    n = 0 if peaks is None else peaks.n_found
    found = (f"{n} peak{'s' if n != 1 else ''} beyond ±{sigma:g}" if n
             else f"no peak beyond ±{sigma:g}")
    if diff.sigma_source == "half_maps":
        return (f"{found} z-scores of the half-map noise" if n else
                f"no difference beyond the noise: {found} z-scores of the half-map noise")
    floor = " (the resampling error a floor under σ)" if diff.resampling_floor else ""
    if diff.sigma_source in ("solvent", "mask"):
        return f"{found} σ of the difference over the {diff.sigma_source}{floor}"
    # σ from the difference itself: peaks are relative to the difference, not to the noise
    return (f"{found} σ of the difference over the {diff.sigma_source}{floor}, its own spread "
            "and not the noise: give half maps to know what is beyond the noise")


def amplitude_quality(before: ScalingResult, after: ScalingResult) -> Quality:
    """Reasons from the amplitude comparison: R not lower after the correction, or near the
    58.6 % of unrelated maps.

    Parameters
    ----------
    before, after : ScalingResult
        The uncorrected and the corrected target against the reference.

    Returns
    -------
    Quality
    """
    q = Quality()
    limit = 100 * WILSON_R_ACENTRIC
    if after.r_overall > before.r_overall + 0.05:
        q.add("r_not_improved", f"the amplitude difference R is {after.r_overall:.1f} % after "
                                f"the correction, against {before.r_overall:.1f} % before")
    if after.r_overall > R_NEAR_UNRELATED * limit:
        q.add("r_near_unrelated", f"R after correction is {after.r_overall:.1f} %, near the "
                                  f"{limit:.1f} % of unrelated maps: they hardly share signal "
                                  "at this resolution")
    return q


def read_density(path, role: str) -> Map:
    """Read a map for a comparison: it must not be constant.

    Parameters
    ----------
    path : str or os.PathLike
    role : str
        "reference" or "target", for the message.

    Returns
    -------
    Map

    Raises
    ------
    MapFormatError
        If the file cannot be read or the map is constant.
    """
    m = read_map(path)
    if is_constant(m.data):
        raise MapFormatError(f"{path}: the {role} map is constant "
                             f"({float(m.data.flat[0]):.4g} everywhere); there is nothing to "
                             "compare")
    return m


def read_placed_model(path, density: Map, density_path):
    """Read a model that must have protein Cα atoms and lie (mostly) inside its map's box.

    Parameters
    ----------
    path : str or os.PathLike
        Model file.
    density : Map
        The map the model belongs to.
    density_path : str or os.PathLike
        Its file, for the message.

    Returns
    -------
    gemmi.Structure
    """
    model = read_model(path)
    if not calpha_residues(model):
        raise ModelFormatError(f"{path}: no protein Cα atoms")
    check_model_in_map(model, density, what=str(path), where=str(density_path))
    return model


def compare_files(ref_path, target_path, *, ref_model_path=None, target_model_path=None,
                  ref_halves_paths=None, target_halves_paths=None, mask_path=None,
                  inputs: Optional[dict] = None, **options) -> CompareResult:
    """Read and check two maps (and their models), then :func:`compare` them.

    Parameters
    ----------
    ref_path, target_path : str or os.PathLike
        Map files.
    ref_model_path, target_model_path : str or os.PathLike, optional
        Model files; both or neither.
    ref_halves_paths, target_halves_paths : pair of str or os.PathLike, optional
        Half-map files of each map (on its grid); both pairs or neither.
    mask_path : str or os.PathLike, optional
        A molecular mask on the reference grid (values > 0.5 inside).
    inputs : dict, optional
        What the summary records as the inputs (default the file names).
    **options
        Keyword options of :func:`compare` (``d_max``, ``d_min``, ``sigma``, ``scan_options``,
        ``difference``, ``nthreads``, ``progress``, ``log``).

    Returns
    -------
    CompareResult
        With ``inputs`` set.

    Raises
    ------
    VoxscaleError
        If an input is unusable (the message names the file) or an option is out of range.
    """
    if (ref_model_path is None) != (target_model_path is None):
        raise VoxscaleError("give both a reference model and a target model, or neither")
    ref, target = read_density(ref_path, "reference"), read_density(target_path, "target")
    ref_model = (read_placed_model(ref_model_path, ref, ref_path)
                 if ref_model_path is not None else None)
    target_model = (read_placed_model(target_model_path, target, target_path)
                    if target_model_path is not None else None)
    if (ref_halves_paths is None) != (target_halves_paths is None):
        raise VoxscaleError("give half maps of both maps (--ref-halves and --target-halves) "
                            "or of neither: the noise of the difference needs both")
    halves = {}  # their grids and contents are checked by compare, naming the files
    for role, paths in (("ref", ref_halves_paths), ("target", target_halves_paths)):
        if paths is None:
            continue
        if len(paths) != 2:
            raise VoxscaleError(f"give two half maps of the {role}, got {len(paths)}")
        halves[f"{role}_halves"] = tuple(read_density(p, f"{role} half") for p in paths)
    if mask_path is not None:
        mask = read_map(mask_path)
        check_half_map(ref, mask, f"the mask {mask_path} (--mask)",
                       why="a mask must be on the reference grid")
        if not np.all(np.isfinite(mask.data)) or not (mask.data > 0.5).any():
            raise MapFormatError(f"{mask_path}: the mask (--mask) has no voxel above 0.5 or "
                                 "has non-finite values")
        options["mask"] = mask
    if ref_halves_paths is not None:
        options["half_map_names"] = {
            role: tuple(f"{os.fspath(p)} (a half map of {os.fspath(full)})" for p in paths)
            for role, paths, full in (("ref", ref_halves_paths, ref_path),
                                      ("target", target_halves_paths, target_path))}
    owned = _OwnedMap(target)
    del target
    result = compare(ref, owned, ref_model, target_model, **halves, **options)
    # the target was let go after resampling: target_voxel_fixed reads it again when asked
    result._target_source = target_path
    result.inputs = inputs or {
        "ref": os.fspath(ref_path), "target": os.fspath(target_path),
        "ref_model": None if ref_model_path is None else os.fspath(ref_model_path),
        "target_model": None if target_model_path is None else os.fspath(target_model_path),
        "ref_halves": None if ref_halves_paths is None else [os.fspath(p)
                                                             for p in ref_halves_paths],
        "target_halves": None if target_halves_paths is None else [
            os.fspath(p) for p in target_halves_paths],
        "mask": None if mask_path is None else os.fspath(mask_path)}
    return result
