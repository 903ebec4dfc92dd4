"""The resolution range of a comparison, from the signal the two maps share (method §1 step 5).

The default high-resolution limit d_min is where both maps still carry signal the other
shares; beyond it the amplitudes are noise (or, for a map filtered at its resolution, almost
nothing), and the scaling, R and the difference map would measure that:

- with half maps of both maps: the worse of the two maps' own resolutions (half-map FSC =
  0.143, Rosenthal & Henderson 2003), the reference's in Å and the target's at its corrected
  voxel size;
- otherwise the worse of two limits: where the FSC between the reference and the corrected
  target falls below 0.5 (stricter than 0.143, which belongs to half maps: two full maps of
  one data set share their noise and stay above 0.143 almost to Nyquist), and each map's own
  extent of signal, where its shell power has fallen below 10⁻³ of its strongest shell finer
  than 10 Å (a map filtered at its resolution, or a spectrum gone into its floor);
- and never finer than 3.3 voxels of the resampled target: cubic-spline resampling damps and
  aliases finer detail, which would otherwise appear as a difference of the same data (at 3
  voxels, EMD-3488 against an unrotated, relabelled copy of itself still gave R = 1.26 % after
  correction; at 3.3 voxels 0.92 %, below the 1 % asked of the same data).

References
----------
P. B. Rosenthal and R. Henderson, J. Mol. Biol. 333 (2003) 721–745.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from ..maps.map import Map
from ..threads import resolve_threads
from .shells import resolution_from_fsc, shell_edges, shell_index, shell_sums
from .transform import half_transform

__all__ = ["ResolutionChoice", "signal_resolution", "power_resolution", "MAP_FSC_THRESHOLD",
           "POWER_FLOOR"]

#: FSC between two full maps below which they are taken to share no more signal.
MAP_FSC_THRESHOLD = 0.5
#: A shell with less than this fraction of the strongest shell's power carries no signal.
POWER_FLOOR = 1e-3
#: Shells coarser than this (Å) hold the molecular envelope, not the spectrum's decline.
ENVELOPE_D = 10.0
N_SHELLS = 60
#: Cubic-spline resampling is faithful to this many voxels of the resampled map (measured:
#: see the module's notes).
RESAMPLING_VOXELS = 3.3


@dataclass
class ResolutionChoice:
    """The high-resolution limit of a comparison and why it was chosen.

    Attributes
    ----------
    d_min : float
        The limit, Å.
    source : str
        ``"given"`` (``--resolution``), ``"half_maps"`` (the worse map's half-map FSC =
        0.143), ``"map_fsc"`` (FSC of the two maps = 0.5), ``"signal_power"`` (a map's own
        signal ends there) or ``"resampling"`` (3.3 voxels of the resampled target).
    reason : str
        One sentence for the log and the report.
    map_fsc, ref_power, target_power, ref_half_maps, target_half_maps, resampling : float or None
        The candidate limits (Å) that were considered.
    """

    d_min: float
    source: str
    reason: str
    map_fsc: Optional[float] = None
    ref_power: Optional[float] = None
    target_power: Optional[float] = None
    ref_half_maps: Optional[float] = None
    target_half_maps: Optional[float] = None
    resampling: Optional[float] = None

    def to_dict(self) -> dict:
        """All fields, for ``summary.json``."""
        return asdict(self)


def _power_limit(power: np.ndarray, edges: np.ndarray) -> float:
    """Resolution (Å) where a map's shell power first falls below POWER_FLOOR of its strongest
    shell finer than ENVELOPE_D; the outer edge when it never does."""
    fine = 1.0 / edges[1:] < ENVELOPE_D
    if not fine.any() or not np.nanmax(power[fine]) > 0:
        return float(1.0 / edges[-1])
    start = int(np.argmax(fine))
    peak = np.nanmax(power[fine])
    low = np.flatnonzero(power[start:] < POWER_FLOOR * peak)
    if not len(low):
        return float(1.0 / edges[-1])
    return float(1.0 / edges[start + low[0]])  # the inner edge of the first empty shell


def power_resolution(m: Map, *, nthreads: int = 0) -> float:
    """The extent of a map's own signal (Å): where its shell power falls below 10⁻³ of its
    strongest shell finer than 10 Å (the Nyquist limit when it never does).

    Parameters
    ----------
    m : Map
    nthreads : int, optional

    Returns
    -------
    float
    """
    nthreads = resolve_threads(nthreads)
    edges = shell_edges(None, 2.0 * float(np.max(m.voxel_size)), N_SHELLS)
    shells = shell_index(m.shape, m.cell, edges, nthreads=nthreads)
    sums = shell_sums(half_transform(m, nthreads=nthreads), None, shells, N_SHELLS,
                      nthreads=nthreads)
    return _power_limit(sums.sum_f1_sq / np.maximum(sums.count, 1), edges)


def signal_resolution(ref: Map, target: Map, *, half_map_resolutions=None,
                      resampled_voxel: Optional[float] = None, transforms=(None, None),
                      nthreads: int = 0) -> ResolutionChoice:
    """The default high-resolution limit of comparing two maps on one grid.

    Parameters
    ----------
    ref, target : Map
        The reference and the corrected target, on the reference grid.
    half_map_resolutions : tuple of float, optional
        The two maps' own resolutions from their half maps (Å, the target's at its corrected
        voxel size); when given they decide, unless the resampling limit is coarser.
    resampled_voxel : float, optional
        The target's largest corrected voxel size (Å) when it was resampled onto the
        reference grid: cubic-spline resampling is faithful to RESAMPLING_VOXELS voxels
        (finer, it damps and aliases what it moves), which limits d_min as well.
    transforms : tuple of numpy.ndarray, optional
        ``(half_transform(ref), half_transform(target))`` when the caller has them (read,
        not changed); either None (the default) is computed here.
    nthreads : int, optional

    Returns
    -------
    ResolutionChoice
    """
    nthreads = resolve_threads(nthreads)
    d_resampling = None if resampled_voxel is None else RESAMPLING_VOXELS * float(
        resampled_voxel)
    choice = _signal_choice(ref, target, half_map_resolutions, transforms, nthreads)
    choice.resampling = d_resampling
    if d_resampling is not None and d_resampling > choice.d_min:
        choice.reason = (f"{d_resampling:.2f} Å, {RESAMPLING_VOXELS:g} voxels of the "
                         "resampled target (cubic splines are faithful to there; the signal "
                         f"alone would allow {choice.d_min:.2f} Å)")
        choice.d_min, choice.source = d_resampling, "resampling"
    return choice


def _signal_choice(ref: Map, target: Map, half_map_resolutions, transforms, nthreads: int):
    if half_map_resolutions is not None:
        d_ref, d_tgt = (float(d) for d in half_map_resolutions)
        worse = "reference" if d_ref >= d_tgt else "target"
        d = max(d_ref, d_tgt)
        return ResolutionChoice(
            d, "half_maps", f"{d:.2f} Å, the {worse}'s own resolution from its half maps "
            f"(FSC = 0.143; reference {d_ref:.2f} Å, target {d_tgt:.2f} Å)",
            ref_half_maps=d_ref, target_half_maps=d_tgt)
    edges = shell_edges(None, 2.0 * float(np.max(ref.voxel_size)), N_SHELLS)
    shells = shell_index(ref.shape, ref.cell, edges, nthreads=nthreads)
    f_ref, f_tgt = (f if f is not None else half_transform(m, nthreads=nthreads)
                    for f, m in zip(transforms, (ref, target)))
    sums = shell_sums(f_ref, f_tgt, shells, N_SHELLS, nthreads=nthreads)
    del f_ref, f_tgt
    count = np.maximum(sums.count, 1)
    d_fsc = resolution_from_fsc(np.nan_to_num(sums.fsc, nan=0.0), edges,
                                threshold=MAP_FSC_THRESHOLD)
    d_ref = _power_limit(sums.sum_f1_sq / count, edges)
    d_tgt = _power_limit(sums.sum_f2_sq / count, edges)
    d = max(d_fsc, d_ref, d_tgt)
    if d == d_fsc:
        source, why = "map_fsc", (f"{d:.2f} Å, where the FSC between the reference and the "
                                  "corrected target falls below 0.5 (no half maps)")
    else:
        which = "reference" if d_ref >= d_tgt else "corrected target"
        source, why = "signal_power", (
            f"{d:.2f} Å, where the {which}'s own signal ends (shell power below 10⁻³ of its "
            f"strongest; the maps' FSC stays above 0.5 to {d_fsc:.2f} Å)")
    return ResolutionChoice(d, source, why, map_fsc=d_fsc, ref_power=d_ref, target_power=d_tgt)
