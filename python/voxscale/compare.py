"""The whole method in one call (DESIGN.md §1): placement, voxel-scale scan, correction and
resampling, amplitude scaling before and after the correction, vector and real-space
difference maps, peaks, and the model analyses when models are given.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .expansion import expansion as model_expansion
from .difference import (DifferenceResult, compare_amplitudes, estimate_resolution,
                         real_space_difference, vector_difference)
from .scaling import ScalingResult
from .io import Map
from .peaks import PeakTable, find_peaks
from .sampling import resample
from .scan import ScanResult, corrected_target, scan_voxel_scale
from .simulate import transform_structure

__all__ = ["CompareResult", "compare", "scale_error_matters"]


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
    after : DifferenceResult
        Amplitude scaling and vector difference of the corrected target.
    real_space : Map
        Real-space difference (equal σ, both low-passed to d_min) of the corrected target.
    peaks : PeakTable
        Peaks of the vector difference after correction.
    d_max, d_min : float
        Resolution range in Å.
    expansion : object or None
        Cα-shift expansion analysis when both models were given.
    target_model_in_ref : gemmi.Structure or None
        The target model moved into the reference frame with the corrected scale.
    timings : dict
        Seconds per step.
    """

    scan: ScanResult
    corrected: Map
    before: ScalingResult
    after: DifferenceResult
    real_space: Map
    peaks: PeakTable
    d_max: Optional[float]
    d_min: float
    expansion: object = None
    target_model_in_ref: object = None
    timings: dict = field(default_factory=dict)


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
            d_min=None, nthreads: int = 0, sigma: float = 4.0,
            progress: Optional[Callable[[str, int, int, str], None]] = None,
            log: Optional[Callable[[str], None]] = None, **scan_options) -> CompareResult:
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
        falls below 0.143, see :func:`voxscale.difference.estimate_resolution`).
    nthreads : int, optional
        Threads (0 = all available).
    sigma : float, optional
        Peak threshold in σ (default 4).
    progress : callable, optional
        progress(step, done, total, message) during the scan.
    log : callable, optional
        Receives one line per finished step.
    **scan_options
        Passed to :func:`voxscale.scan_voxel_scale` (scale_range, step, contour, …).

    Returns
    -------
    CompareResult
    """
    timings: dict = {}
    say = log or (lambda line: None)

    @contextmanager
    def step(name):
        start = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - start
        say(f"{name}: {timings[name]:.2f} s")

    with step("scan"):
        scan = scan_voxel_scale(
            ref, target, ref_model, target_model, nthreads=nthreads,
            progress=None if progress is None else (lambda d, t, m: progress("scan", d, t, m)),
            **scan_options)
    with step("resample"):
        corrected = corrected_target(ref, target, scan, nthreads=nthreads)
        unit_fit = scan.fits[1.0]
        uncorrected = resample(target, ref, unit_fit.transform, 1.0, order=3, nthreads=nthreads)
    with step("scaling_and_difference"):
        if d_min is None:
            d_min = estimate_resolution(ref, corrected, nthreads=nthreads)
            say(f"resolution limit from FSC(reference, corrected target) = 0.143: "
                f"{d_min:.2f} Å")
        d_min = float(d_min)
        before = compare_amplitudes(ref, uncorrected, d_max, d_min, nthreads=nthreads)
        del uncorrected  # only its statistics are kept: memory
        after = vector_difference(ref, corrected, d_max, d_min, nthreads=nthreads)
        real_space = real_space_difference(ref, corrected, resolution=d_min, nthreads=nthreads)
    models = {}
    moved = None
    if ref_model is not None:
        models["ref"] = ref_model
    if target_model is not None:
        moved = _model_into_reference(target_model, scan)
        models["target"] = moved
    with step("peaks"):
        peaks = find_peaks(after.map, sigma, models, nthreads=nthreads)
    expansion = None
    if ref_model is not None and target_model is not None:
        with step("models"):
            expansion = model_expansion(ref_model, target_model)
    return CompareResult(scan, corrected, before, after, real_space, peaks, d_max,
                         d_min, expansion, moved, timings)
