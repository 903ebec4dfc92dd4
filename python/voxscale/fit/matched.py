"""Compare like with like: bring two maps to a common resolution and sharpening before the
scan (docs/method.md §1 step 2).

A map blurred by a B factor relative to the other, or carrying noise to a finer resolution,
pulls the correlation curve's maximum away from the true scale (a blurred copy of a map
relabelled ×1.017 gave a 9.6σ miss). Before the scan both maps are therefore

1. low-passed to a **common resolution** ``d_common``: where the FSC of the reference and the
   placed target falls below 0.143, when that is clearly coarser than the coarser map's
   Nyquist limit (else they share signal to the end and are not filtered), or the ``d_min``
   the user gives. The edge is a cosine (a sharp edge rings at its own spacing, a cue to the
   scale), and the target's edge is placed at the same true resolution as the reference's:
   at d/s in its header units, s the factor of a first scan, after which the scan runs again
   near that factor on the matched maps;
2. given the **same fall-off**: the relative Wilson B of the two maps is fitted to the log
   ratio of their radially averaged powers, ln(P_t/P_r) = a − ΔB·s²/2, over 1/12 Å⁻¹ to
   1/d_common (each map's power from its own box, so no placement is needed for it), and the
   sharper map is blurred by |ΔB| (blurring, not sharpening, adds no noise). A voxel-size
   error stretches the target's spectrum too, so the B is fitted with the target taken at the
   factor of a first scan; when it exceeds 5 Å² the scan runs again, near that factor, on the
   maps with the same fall-off.

Neither step changes the scale of a map, so the factor the scan finds is unchanged by them
except for the bias they remove.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..maps.interpolation import resample
from ..maps.map import Map
from ..reciprocal.difference import estimate_resolution
from ..reciprocal.shells import check_resolution_range, shell_edges, shell_index, shell_sums
from ..reciprocal.transform import (half_grid_frequencies, half_transform,
                                    map_from_half_transform)
from ..threads import resolve_threads

__all__ = ["MatchedMaps", "MapMatcher", "match_maps", "relative_b", "LOW_RESOLUTION_FIT",
           "B_REMATCH"]

#: A relative B (Å²) above this, found after the first scan, makes the scan run again on maps
#: with the same fall-off.
B_REMATCH = 5.0

#: The relative B is fitted from this resolution (Å) on: lower shells carry the solvent
#: and the box, not the fall-off.
LOW_RESOLUTION_FIT = 12.0
#: The maps are low-passed only when their FSC falls below 0.143 at more than this many
#: times the coarser map's Nyquist limit.
FSC_GAP = 1.25
#: The low-pass edge: a cosine from this fraction of 1/d_common to 1/d_common.
EDGE_START = 0.85


@dataclass
class MatchedMaps:
    """The two maps as the scan compares them.

    Attributes
    ----------
    ref, target : Map
        Low-passed to ``d_common`` and with the same fall-off.
    d_common : float or None
        The common resolution (Å); None when the maps are not low-passed.
    d_source : str
        How it was chosen: "fsc" (FSC = 0.143 of the placed maps), "full" (they share
        signal to the Nyquist limit: not low-passed) or "given".
    relative_b : float
        B_target − B_reference (Å²) before matching: positive when the target is blurrier.
    blurred : str or None
        Which map was blurred to match ("ref", "target" or None).
    """

    ref: Map
    target: Map
    d_common: Optional[float]
    d_source: str
    relative_b: float
    blurred: Optional[str]

    def to_dict(self) -> dict:
        """dict : The matching, as it appears in ``scan.json``."""
        return {"d_common": self.d_common, "d_source": self.d_source,
                "relative_B": self.relative_b, "blurred": self.blurred}


def _log_power(f: np.ndarray, m: Map, d_min: float, nthreads: int):
    """(s² at shell centres, ln mean |F|²) of a half-transform, from 1/12 Å⁻¹ to 1/d_min."""
    edges = shell_edges(LOW_RESOLUTION_FIT, d_min, 12)
    shells = shell_index(m.shape, m.cell, edges, nthreads=nthreads)
    sums = shell_sums(f, None, shells, len(edges) - 1, nthreads=nthreads)
    with np.errstate(divide="ignore", invalid="ignore"):
        power = sums.sum_f1_sq / sums.count
    centres = 0.5 * (edges[:-1] + edges[1:])
    ok = (sums.count >= 20) & (power > 0)
    return centres[ok] ** 2, np.log(power[ok])


def relative_b(f_ref: np.ndarray, ref: Map, f_tgt: np.ndarray, target: Map, d_min: float, *,
               target_scale: float = 1.0, nthreads: int = 0) -> float:
    """B_target − B_reference (Å²) from the log ratio of the maps' radially averaged powers.

    A voxel-size error also changes the fall-off seen in the target's header units (its
    spectrum is stretched by the factor), so the target's power is compared at s·f, with s
    the scale factor found so far: P_true(f) = P_header(s·f).

    Parameters
    ----------
    f_ref, f_tgt : numpy.ndarray
        Half-transforms of the two maps (each on its own grid).
    ref, target : Map
    d_min : float
        Highest resolution (Å) of the fit.
    target_scale : float, optional
        The voxel-scale factor of the target found so far.
    nthreads : int, optional

    Returns
    -------
    float
        0 when fewer than 3 shells lie in the range (d_min coarser than about 8 Å).
    """
    nthreads = resolve_threads(nthreads)
    if max(d_min, d_min / target_scale) > LOW_RESOLUTION_FIT / 1.5:
        return 0.0  # too few shells between 12 Å and d_min to fit a fall-off
    s2_r, lp_r = _log_power(f_ref, ref, d_min, nthreads)
    s2_t, lp_t = _log_power(f_tgt, target, d_min / target_scale, nthreads)
    s2_t = s2_t / target_scale ** 2  # the target's frequencies in true units
    if len(s2_r) < 3 or len(s2_t) < 3:
        return 0.0
    # the two maps' shells differ slightly (different boxes): compare them on the
    # reference's shells by interpolating the target's curve
    lo, hi = max(s2_r[0], s2_t[0]), min(s2_r[-1], s2_t[-1])
    use = (s2_r >= lo) & (s2_r <= hi)
    if np.count_nonzero(use) < 3:
        return 0.0
    ratio = np.interp(s2_r[use], s2_t, lp_t) - lp_r[use]
    slope = np.polyfit(s2_r[use], ratio, 1)[0]
    return float(-2.0 * slope)  # ln(P_t/P_r) = a − ΔB·s²/2


def _filtered(f: np.ndarray, m: Map, d_cut: Optional[float], blur: float,
              nthreads: int) -> Map:
    """The map with a soft low-pass at d_cut (header units; None for none) and a blur B."""
    if d_cut is None and blur <= 0:
        return m
    sx, sy, sz = half_grid_frequencies(m.shape, m.cell)
    s2 = (sz ** 2 + sy ** 2) + sx ** 2
    weight = np.ones(s2.shape, np.float32)
    if d_cut is not None:
        # a cosine edge from 0.85/d to 1/d: a sharp edge rings at its own spacing, a cue to
        # the scale that the scan would follow
        s_len = np.sqrt(s2)
        lo, hi = EDGE_START / d_cut, 1.0 / d_cut
        edge = np.clip((s_len - lo) / (hi - lo), 0.0, 1.0)
        weight *= (0.5 * (1.0 + np.cos(np.pi * edge))).astype(np.float32)
    if blur > 0:
        weight *= np.exp(-blur * s2 / 4.0).astype(np.float32)
    weight[0, 0, 0] = 1.0
    return map_from_half_transform(f * weight, m, nthreads=nthreads)


class MapMatcher:
    """The two maps' transforms and common resolution, kept to make matched pairs.

    Parameters
    ----------
    ref, target : Map
    transform : array_like, shape (4, 4)
        The placement of the target at s = 1 (x_ref = R·x_tgt + t), for the FSC.
    d_min : float, optional
        The common resolution (Å) to use instead of the FSC's.
    nthreads : int, optional
    """

    def __init__(self, ref: Map, target: Map, transform, *, d_min: Optional[float] = None,
                 nthreads: int = 0):
        self.nthreads = nthreads = resolve_threads(nthreads)
        self.ref, self.target = ref, target
        self.nyquist = 2.0 * float(max(np.max(ref.voxel_size), np.max(target.voxel_size)))
        if d_min is not None:
            self.d_common = check_resolution_range(None, d_min)[1]
            self.source = "given"
        else:
            self.update_resolution(transform, 1.0)
        self.f_ref = half_transform(ref, nthreads=nthreads)
        self.f_tgt = half_transform(target, nthreads=nthreads)

    def update_resolution(self, transform, scale: float) -> None:
        """The common resolution from the FSC of the reference and the target placed by
        ``transform`` at factor ``scale``: where it falls below 0.143, if that is clearly
        coarser than the Nyquist limit of the coarser map (else no low-pass: the maps share
        signal to the end)."""
        if getattr(self, "source", None) == "given":
            return
        placed = resample(self.target, self.ref, transform, scale, order=1,
                          nthreads=self.nthreads)
        d_fsc = estimate_resolution(self.ref, placed, nthreads=self.nthreads)
        del placed
        if d_fsc > FSC_GAP * self.nyquist:
            self.d_common, self.source = float(d_fsc), "fsc"
        else:
            self.d_common, self.source = None, "full"

    def relative_b(self, target_scale: float = 1.0) -> float:
        """B_target − B_reference (Å²), the target taken at ``target_scale``."""
        d = self.d_common if self.d_common is not None else 1.1 * self.nyquist
        return relative_b(self.f_ref, self.ref, self.f_tgt, self.target, d,
                          target_scale=target_scale, nthreads=self.nthreads)

    def pair(self, delta_b: float = 0.0, target_scale: float = 1.0) -> MatchedMaps:
        """Both maps at the common resolution (the target's cut in its header units, at the
        factor ``target_scale``), the sharper blurred by |delta_b| (Å²) when it is more than
        1 Å²."""
        blurred = None if abs(delta_b) < 1.0 else ("ref" if delta_b > 0 else "target")
        d = self.d_common
        ref_m = _filtered(self.f_ref, self.ref, d, delta_b if blurred == "ref" else 0.0,
                          self.nthreads)
        # a true frequency f is s·f in the target's header units
        tgt_m = _filtered(self.f_tgt, self.target, None if d is None else d / target_scale,
                          (-delta_b if blurred == "target" else 0.0) / target_scale ** 2,
                          self.nthreads)
        return MatchedMaps(ref_m, tgt_m, None if d is None else float(d), self.source,
                           float(delta_b), blurred)

    @property
    def filters(self) -> bool:
        """bool : Whether the pair is low-passed at all."""
        return self.d_common is not None


def match_maps(ref: Map, target: Map, transform, *, d_min: Optional[float] = None,
               target_scale: float = 1.0, nthreads: int = 0) -> MatchedMaps:
    """Bring two maps to a common resolution and fall-off (see the module documentation).

    Parameters
    ----------
    ref, target : Map
    transform : array_like, shape (4, 4)
        The placement of the target at s = 1 (x_ref = R·x_tgt + t), for the FSC.
    d_min : float, optional
        The common resolution (Å) to use instead of the FSC's.
    target_scale : float, optional
        The target's voxel-scale factor found so far (for the relative B).
    nthreads : int, optional

    Returns
    -------
    MatchedMaps
    """
    matcher = MapMatcher(ref, target, transform, d_min=d_min, nthreads=nthreads)
    return matcher.pair(matcher.relative_b(target_scale), target_scale)
