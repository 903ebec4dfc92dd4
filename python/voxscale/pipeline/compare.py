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
from ..errors import MapFormatError, ModelFormatError, VoxscaleError
from ..fit.scan import Progress, ScanOptions, ScanResult, corrected_target, scan_voxel_scale
from ..maps.map import Map
from ..maps.models import calpha_residues, check_model_in_map, read_model, transform_structure
from ..maps.mrc import read_map
from ..maps.interpolation import resample, spline_coefficients
from ..reciprocal.difference import (DifferenceResult, compare_amplitudes, estimate_resolution,
                                     real_space_difference, vector_difference)
from ..reciprocal.peaks import PeakTable, find_peaks
from ..maps.map import is_constant, relabel_voxel_size
from ..quality import Quality
from ..reciprocal.scaling import WILSON_R_ACENTRIC, ScalingResult
from ..reciprocal.shells import check_resolution_range
from ..threads import resolve_threads

__all__ = ["CompareResult", "compare", "compare_files", "read_density", "read_placed_model",
           "scale_error_matters", "amplitude_quality", "R_NEAR_UNRELATED"]

#: R after correction above this fraction of the unrelated-maps limit (58.6 %) is unreliable.
R_NEAR_UNRELATED = 0.85


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
        ``volume voxelSize`` would give), box centre kept.
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
    target_voxel_fixed: Optional[Map] = None

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


def compare(ref: Map, target: Map, ref_model=None, target_model=None, *, d_max=None,
            d_min=None, sigma: float = 4.0, scan_options: Optional[ScanOptions] = None,
            difference: bool = True, nthreads: int = 0, progress: Optional[Progress] = None,
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
        low limit; the resolution where the FSC between the reference and the corrected target
        falls below 0.143, see :func:`voxscale.reciprocal.estimate_resolution`).
    sigma : float, optional
        Peak threshold in σ (default 4).
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
    """
    nthreads = resolve_threads(nthreads)
    if d_min is not None:
        d_max, d_min = check_resolution_range(d_max, d_min)
    timings: dict = {}
    say = log or (lambda line: None)

    @contextmanager
    def step(name):
        start = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - start
        say(f"{name}: {timings[name]:.2f} s")

    with step("scan"):
        scan = scan_voxel_scale(ref, target, ref_model, target_model, options=scan_options,
                                nthreads=nthreads, progress=progress)
    with step("resample"):
        # the target's spline coefficients serve both resamplings
        coefficients = spline_coefficients(target.data, nthreads=nthreads)
        corrected = corrected_target(ref, target, scan, coefficients=coefficients,
                                     nthreads=nthreads)
        uncorrected = resample(target, ref, scan.unit_transform, 1.0, order=3,
                               coefficients=coefficients, nthreads=nthreads)
        del coefficients
    with step("scaling_and_difference"):
        if d_min is None:
            d_min = estimate_resolution(ref, corrected, nthreads=nthreads)
            say(f"resolution limit from FSC(reference, corrected target) = 0.143: "
                f"{d_min:.2f} Å")
        d_min = float(d_min)
        before = compare_amplitudes(ref, uncorrected, d_max, d_min, nthreads=nthreads)
        del uncorrected  # only its statistics are kept: memory
        diff = real_space = None
        if difference:
            diff = vector_difference(ref, corrected, d_max, d_min, nthreads=nthreads)
            after = diff.scaling
            real_space = real_space_difference(ref, corrected, d_min=d_min, nthreads=nthreads)
        else:
            after = compare_amplitudes(ref, corrected, d_max, d_min, nthreads=nthreads)
    models = {}
    moved = None
    if ref_model is not None:
        models["ref"] = ref_model
    if target_model is not None:
        moved = _model_into_reference(target_model, scan)
        models["target"] = moved
    peaks = None
    if difference:
        with step("peaks"):
            peaks = find_peaks(diff.map, sigma, models, nthreads=nthreads)
    expansion = None
    if ref_model is not None and target_model is not None:
        with step("models"):
            expansion = model_expansion(ref_model, target_model)
    parameters = {"resolution": [d_max, d_min], "threads": nthreads, "sigma": sigma,
                  "range": list(scan.options.scale_range), "step": scan.options.step,
                  "contour": scan.options.contour, "anisotropic": scan.options.anisotropic}
    quality = Quality()
    quality.extend(scan.quality)
    quality.extend(amplitude_quality(before, after))
    corrected_voxel = target.voxel_size * scan.best_scale
    voxel_sizes = {"reference": ref.voxel_size, "target_header": target.voxel_size,
                   "target_corrected": corrected_voxel}
    return CompareResult(scan, corrected, before, after, diff, real_space, peaks, d_max, d_min,
                         expansion, moved, timings, parameters=parameters, quality=quality,
                         voxel_sizes=voxel_sizes,
                         target_voxel_fixed=relabel_voxel_size(target, corrected_voxel))


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
                  inputs: Optional[dict] = None, **options) -> CompareResult:
    """Read and check two maps (and their models), then :func:`compare` them.

    Parameters
    ----------
    ref_path, target_path : str or os.PathLike
        Map files.
    ref_model_path, target_model_path : str or os.PathLike, optional
        Model files; both or neither.
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
    result = compare(ref, target, ref_model, target_model, **options)
    result.inputs = inputs or {
        "ref": os.fspath(ref_path), "target": os.fspath(target_path),
        "ref_model": None if ref_model_path is None else os.fspath(ref_model_path),
        "target_model": None if target_model_path is None else os.fspath(target_model_path)}
    return result
