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
   ratios of their radially averaged powers and cross power (:func:`relative_b_of_shells`,
   which noise in either map does not inflate), with the target placed
   on the reference's grid at the factor of a first scan (so both spectra are in true units
   and from one box), over the shells from 1/12 Å⁻¹ where their FSC is at least 0.5 (where
   signal, not noise or the part of the box one map lacks, makes the power), and the sharper
   map is blurred by |ΔB| (blurring, not sharpening, adds no noise). When it exceeds 5 Å² the
   scan runs again, near that factor, on the maps with the same fall-off.

Neither step changes the scale of a map, so the factor the scan finds is unchanged by them
except for the bias they remove.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..maps.interpolation import resample
from ..maps.map import Map
from ..reciprocal.difference import default_d_min, resolution_from_fsc
from ..reciprocal.shells import check_resolution_range, shell_edges, shell_index, shell_sums
from ..reciprocal.transform import (half_grid_frequencies, half_transform,
                                    map_from_half_transform)
from ..threads import resolve_threads

__all__ = ["MatchedMaps", "MapMatcher", "match_maps", "relative_b_of_shells",
           "LOW_RESOLUTION_FIT", "FSC_FALL_OFF", "B_REMATCH"]

#: A relative B (Å²) above this, found after the first scan, makes the scan run again on maps
#: with the same fall-off.
B_REMATCH = 5.0

#: The relative B is fitted from this resolution (Å) on: lower shells carry the solvent
#: and the box, not the fall-off.
LOW_RESOLUTION_FIT = 12.0
#: The relative B is fitted over the shells where the placed maps' FSC is at least this.
FSC_FALL_OFF = 0.9
#: Shells (equal in 1/d³ up to the Nyquist limit) of the FSC and the powers.
N_SHELLS = 100
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


def relative_b_of_shells(s2: np.ndarray, power_ref: np.ndarray, power_target: np.ndarray,
                         cross: np.ndarray, fsc: np.ndarray, d_min: float) -> float:
    """B_target − B_reference (Å²) from the two maps' powers in shells of one grid.

    Noise adds to a map's power but not, on average, to the cross power Re Σ F_r·F_t*, so
    the fall-off is fitted twice: ln(P_cross/P_r), exact when the reference is free of
    noise, and ln(P_t/P_cross), exact when the target is; each is a − ΔB·s²/4. Noise in the
    other map makes it look sharper, so of the two the one nearer 0 is returned: a
    fall-off is never matched by more than both estimates support. The fit runs over the
    shells between 1/12 Å⁻¹ and 1/d_min whose FSC is at least :data:`FSC_FALL_OFF`;
    0 when fewer than 3 such shells (or either estimate is 0 or of the other sign).

    Parameters
    ----------
    s2 : numpy.ndarray
        Squared spatial frequency (Å⁻²) at the shell centres.
    power_ref, power_target, cross : numpy.ndarray
        Per shell: Σ|F_r|², Σ|F_t|² and Re Σ F_r·F_t* (any common normalisation).
    fsc : numpy.ndarray
        Their FSC per shell.
    d_min : float
        Finest resolution (Å) of the fit.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        from_ref = np.log(cross / power_ref)
        from_target = np.log(power_target / cross)
    use = ((s2 >= LOW_RESOLUTION_FIT ** -2) & (s2 <= d_min ** -2) & (fsc >= FSC_FALL_OFF)
           & np.isfinite(from_ref) & np.isfinite(from_target))
    if np.count_nonzero(use) < 3:
        return 0.0
    b_ref, b_target = (-4.0 * np.polyfit(s2[use], y[use], 1)[0]
                       for y in (from_ref, from_target))
    if b_ref * b_target <= 0:
        return 0.0
    return float(b_ref if abs(b_ref) < abs(b_target) else b_target)


def _filtered(transform, m: Map, d_cut: Optional[float], blur: float,
              nthreads: int, overwrite: bool = False) -> Map:
    """The map with a soft low-pass at d_cut (header units; None for none) and a blur B.
    ``transform()`` gives its half transform, asked for only when the map is filtered; with
    ``overwrite`` it is filtered in place (memory)."""
    if d_cut is None and blur <= 0:
        return m
    f = transform()
    sx, sy, sz = (a.astype(np.float32) for a in half_grid_frequencies(m.shape, m.cell))
    if blur > 0:
        # exp(−B·s²/4) is a product of one factor per axis: one pass over the half-grid
        factor = [np.exp(np.float32(-blur / 4.0) * a * a) for a in (sx, sy, sz)]
        weight = factor[2] * factor[1] * factor[0]
    else:
        weight = np.ones(f.shape, np.float32)
    if d_cut is not None:
        # a cosine edge from 0.85/d to 1/d: a sharp edge rings at its own spacing, a cue to
        # the scale that the scan would follow; only the band of the edge needs a cosine
        s2 = (sz * sz + sy * sy) + sx * sx
        lo, hi = EDGE_START / d_cut, 1.0 / d_cut
        weight[s2 >= np.float32(hi * hi)] = 0.0
        band = np.flatnonzero(((s2 > np.float32(lo * lo)) & (s2 < np.float32(hi * hi))).ravel())
        edge = (np.sqrt(s2.ravel()[band].astype(np.float64)) - lo) / (hi - lo)
        weight.ravel()[band] *= (0.5 * (1.0 + np.cos(np.pi * edge))).astype(np.float32)
        del s2
    weight[0, 0, 0] = 1.0
    if overwrite:
        f *= weight
    else:
        f = f * weight
    del weight
    return map_from_half_transform(f, m, overwrite=True, nthreads=nthreads)


class MapMatcher:
    """The two maps' transforms, common resolution and relative B, kept to make matched pairs.

    Parameters
    ----------
    ref, target : Map
    transform : array_like, shape (4, 4)
        The placement of the target at s = 1 (x_ref = R·x_tgt + t), for the FSC.
    d_min : float, optional
        The common resolution (Å) to use instead of the FSC's.
    transforms : tuple of numpy.ndarray, optional
        ``(half_transform(ref), half_transform(target))`` when the caller has them (read, not
        changed); either None (the default) is computed here. They are held until
        :meth:`release` and computed again when needed after it.
    nthreads : int, optional

    Attributes
    ----------
    d_common : float or None
        The common resolution (Å), None for none (the maps share signal to the end).
    source : str
        "fsc", "full" or "given" (see :class:`MatchedMaps`).
    delta_b : float
        B_target − B_reference (Å²) from the last :meth:`measure` with ``fall_off``, else 0.
    """

    def __init__(self, ref: Map, target: Map, transform, *, d_min: Optional[float] = None,
                 transforms=(None, None), nthreads: int = 0):
        self.nthreads = nthreads = resolve_threads(nthreads)
        self.ref, self.target = ref, target
        self.nyquist = 2.0 * float(max(np.max(ref.voxel_size), np.max(target.voxel_size)))
        self.delta_b = 0.0
        if d_min is not None:
            self.d_common = check_resolution_range(None, d_min)[1]
            self.source = "given"
        else:
            self.d_common, self.source = None, "full"
        self._f_ref, self._f_tgt = transforms
        edges = shell_edges(None, default_d_min(ref), N_SHELLS)
        self._edges = edges
        self._shells = shell_index(ref.shape, ref.cell, edges, nthreads=nthreads)
        self.measure(transform, 1.0, fall_off=False)

    def _transform(self, role: str) -> np.ndarray:
        """The half transform of ``role`` ("ref" or "tgt"), made again after release."""
        name = "_f_" + role
        if getattr(self, name) is None:
            setattr(self, name, half_transform(self.ref if role == "ref" else self.target,
                                               nthreads=self.nthreads))
        return getattr(self, name)

    #: numpy.ndarray : The reference's half transform (made again after :meth:`release`).
    f_ref = property(lambda self: self._transform("ref"))
    #: numpy.ndarray : The target's half transform (made again after :meth:`release`).
    f_tgt = property(lambda self: self._transform("tgt"))

    def release(self) -> None:
        """Drop both half transforms until they are needed again (memory: two maps' worth
        while the scan runs on a matched pair; computing them again costs two FFTs)."""
        self._f_ref = self._f_tgt = None

    def measure(self, transform, scale: float, *, fall_off: bool = True) -> None:
        """The FSC of the reference and the target placed by ``transform`` at factor
        ``scale``: the common resolution where it falls below 0.143 (when that is clearly
        coarser than the coarser map's Nyquist limit; else none) unless one was given, and,
        with ``fall_off``, the relative B over the shells where it is at least 0.5 (the
        target then placed with cubic splines, which damp its high frequencies far less
        than linear interpolation)."""
        placed = resample(self.target, self.ref, transform, scale, order=3 if fall_off else 1,
                          nthreads=self.nthreads)
        f_placed = half_transform(placed, nthreads=self.nthreads)
        del placed  # before f_ref may be computed again (memory)
        sums = shell_sums(self.f_ref, f_placed, self._shells, N_SHELLS, nthreads=self.nthreads)
        del f_placed
        fsc = np.nan_to_num(sums.fsc, nan=0.0)
        if self.source != "given":
            d_fsc = resolution_from_fsc(fsc, self._edges)
            if d_fsc > FSC_GAP * self.nyquist:
                self.d_common, self.source = float(d_fsc), "fsc"
            else:
                self.d_common, self.source = None, "full"
        if fall_off:
            centres = 0.5 * (self._edges[:-1] + self._edges[1:])
            d = self.d_common if self.d_common is not None else self.nyquist
            self.delta_b = relative_b_of_shells(centres ** 2, sums.sum_f1_sq, sums.sum_f2_sq,
                                                sums.sum_re_cross, fsc, d)

    def pair(self, delta_b: float = 0.0, target_scale: float = 1.0, *,
             release: bool = False) -> MatchedMaps:
        """Both maps at the common resolution (the target's cut in its header units, at the
        factor ``target_scale``), the sharper blurred by |delta_b| (Å²) when it is more than
        1 Å². With ``release`` each half transform is filtered in place and dropped as soon
        as its map is made (as :meth:`release`; memory)."""
        blurred = None if abs(delta_b) < 1.0 else ("ref" if delta_b > 0 else "target")
        d = self.d_common
        # a transform is read (or made again after release) only for a map it filters
        ref_m = _filtered(lambda: self.f_ref, self.ref, d,
                          delta_b if blurred == "ref" else 0.0, self.nthreads,
                          overwrite=release)
        if release:
            self._f_ref = None
        # a true frequency f is s·f in the target's header units
        tgt_m = _filtered(lambda: self.f_tgt, self.target,
                          None if d is None else d / target_scale,
                          (-delta_b if blurred == "target" else 0.0) / target_scale ** 2,
                          self.nthreads, overwrite=release)
        if release:
            self._f_tgt = None
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
        The placement of the target at ``target_scale`` (as :func:`~voxscale.maps.resample`
        takes it: the target scaled about its centre, then x_ref = R·x + t), for the FSC and
        the relative B.
    d_min : float, optional
        The common resolution (Å) to use instead of the FSC's.
    target_scale : float, optional
        The target's voxel-scale factor found so far.
    nthreads : int, optional

    Returns
    -------
    MatchedMaps
    """
    matcher = MapMatcher(ref, target, transform, d_min=d_min, nthreads=nthreads)
    matcher.measure(transform, target_scale)
    return matcher.pair(matcher.delta_b, target_scale)
