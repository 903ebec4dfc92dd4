"""Global map-only placement: an exhaustive rotation search with an FFT translation search.

As rigid-body docking programs do (e.g. powerfit, Situs colores), both maps are low-passed and
sampled on a coarse common grid; for every rotation of a near-uniform grid over SO(3)
(super-Fibonacci quaternions, Alexa, CVPR 2022) the target's zero-mean envelope is rotated
and its cross-correlation with the reference at every translation is one FFT product. The
best poses of distinct rotations are then refined by rigid fits at finer resolution, and the
best refined pose wins. Nothing depends on principal axes, so a nearly spherical molecule is
placed at any rotation, and a part (a subunit, one ring of a double ring) finds its place in
the whole map.

The search reports how clearly it won: the correlation gap between the best and the
second-best distinct refined pose, and whether the two are related by a symmetry of the
reference (then either is right, and the gap says nothing against the placement).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.fft

from ..errors import VoxscaleError
from ..maps.interpolation import resample
from ..maps.map import Map
from ..reciprocal.transform import fast_length, fourier_crop
from ..threads import resolve_threads
from .points import FitPoints, fit_points
from .rigid import FitResult, ReferenceGrid, rigid_fit
from .rotations import rotation_angle_deg

__all__ = ["rotation_grid", "GlobalSearch", "PlacementSearch", "global_search", "mirrored"]

#: The reference maps onto itself under a transform when its points, moved, correlate with it
#: above this.
SYMMETRY_CC = 0.8
#: Symmetry operators kept at most (an icosahedral group has 60, the identity included).
MAX_SYMMETRY = 60
#: Voxels along the longest box edge of the coarse search grid.
COARSE_VOXELS = 20


def rotation_grid(n: int) -> np.ndarray:
    """Near-uniform rotations of SO(3): super-Fibonacci quaternions (Alexa, CVPR 2022).

    Parameters
    ----------
    n : int
        Number of rotations (720 cover SO(3) with a mean distance of about 13° and a largest
        one of about 23° to the nearest).

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)
        Rotation matrices.

    Examples
    --------
    >>> r = rotation_grid(100)
    >>> bool(np.allclose(r @ r.transpose(0, 2, 1), np.eye(3), atol=1e-12))
    True
    """
    from scipy.spatial.transform import Rotation
    phi, psi = np.sqrt(2.0), 1.533751168755204288118041
    s = np.arange(n) + 0.5
    r, big_r = np.sqrt(s / n), np.sqrt(1.0 - s / n)
    alpha, beta = 2 * np.pi * s / phi, 2 * np.pi * s / psi
    quat = np.stack([r * np.sin(alpha), r * np.cos(alpha), big_r * np.sin(beta),
                     big_r * np.cos(beta)], axis=1)
    return Rotation.from_quat(quat).as_matrix()


def mirrored(target: Map) -> Map:
    """The target reflected through the plane x = its box centre (the other hand).

    Parameters
    ----------
    target : Map

    Returns
    -------
    Map
    """
    return Map(np.ascontiguousarray(target.data[:, :, ::-1]), target.voxel_size, target.origin)


@dataclass
class GlobalSearch:
    """Outcome of :func:`global_search`.

    Attributes
    ----------
    fit : FitResult
        The best refined pose (x_ref = R·x_tgt + t).
    cc : float
        Its correlation at the fit points.
    second_cc : float
        Correlation of the best refined pose of a distinct rotation or place (NaN if none).
    gap : float
        ``cc - second_cc``.
    second_is_symmetry_mate : bool
        The second pose differs from the first by a symmetry of the reference (the reference
        correlates with itself under their relative transform): either placement is right.
    n_rotations : int
        Rotations searched.
    resolution : float
        Resolution (Å) of the coarse search.
    candidates : list of FitResult
        The refined poses, best first.
    symmetry : list of numpy.ndarray, shape (4, 4)
        Transforms of the reference frame that map the reference onto itself (its symmetry
        group less the identity, closed from the relations between refined poses; empty when
        none was found). For a pose T, every S·T places the target as well at s = 1.
    """

    fit: FitResult
    cc: float
    second_cc: float
    gap: float
    second_is_symmetry_mate: bool
    n_rotations: int
    resolution: float
    candidates: list = field(default_factory=list, repr=False)
    symmetry: list = field(default_factory=list, repr=False)


def _coarse(m: Map, voxel: float, d: float, nthreads: int, transform=None) -> Map:
    """m band-limited to d and sampled about every ``voxel`` Å over its box (by cropping its
    transform, ``half_transform(m)`` when given: exact, and one full-size transform only)."""
    shape = tuple(int(min(n, max(4, np.ceil(c / voxel))))
                  for n, c in zip(m.shape, m.cell[::-1]))
    return fourier_crop(m, shape, d, transform=transform, nthreads=nthreads)


class _TranslationSearch:
    """Cross-correlation of the rotated template with the (padded) reference at every
    translation, for stacks of rotations at a time."""

    def __init__(self, pad_data: np.ndarray, pad: Map, template_map: Map, center, radius):
        self.shape = pad_data.shape
        self.ref_f = scipy.fft.rfftn(pad_data, workers=1)
        self.pad, self.template_map, self.center = pad, template_map, np.asarray(center)
        half = int(np.ceil(radius / float(np.min(pad.voxel_size))))
        m = 2 * half + 1
        # a small centred box holds the rotated template; it is embedded with wrap-around
        self.small = Map(np.zeros((m, m, m), np.float32), pad.voxel_size,
                         -pad.voxel_size * half)
        self.index = [(np.arange(m) - half) % n for n in self.shape]

    def best(self, rotations, *, batch: int = 32, nthreads: int = 1):
        """Best translation of every rotation.

        Parameters
        ----------
        rotations : numpy.ndarray, shape (n, 3, 3)
        batch : int, optional
            Rotations transformed together (one FFT call of a stack: little Python per
            rotation).
        nthreads : int, optional
            Threads of the FFTs.

        Returns
        -------
        scores : numpy.ndarray, shape (n,)
        places : numpy.ndarray, shape (n, 3)
            Where (Å) the template's centre lands at the best translation.
        """
        n = len(rotations)
        scores, places = np.empty(n), np.empty((n, 3))
        stack = np.zeros((min(batch, n),) + self.shape, np.float32)
        transform = np.eye(4)
        for start in range(0, n, batch):
            chunk = rotations[start:start + batch]
            stack[:] = 0.0
            for j, rotation in enumerate(chunk):
                transform[:3, :3] = rotation
                transform[:3, 3] = -rotation @ self.center
                rotated = resample(self.template_map, self.small, transform, order=1,
                                   nthreads=1)
                stack[j][np.ix_(*self.index)] = rotated.data
            m = len(chunk)
            f_t = scipy.fft.rfftn(stack[:m], axes=(1, 2, 3), workers=nthreads)
            # cross-correlation theorem: irfft(F_ref·conj(F_t))[t] = Σ_x ref(x + t)·tmpl(x)
            f_t = np.conj(f_t, out=f_t)
            f_t *= self.ref_f
            score = scipy.fft.irfftn(f_t, s=self.shape, axes=(1, 2, 3), workers=nthreads)
            flat = score.reshape(m, -1)
            best = np.argmax(flat, axis=1)
            scores[start:start + m] = flat[np.arange(m), best]
            iz, iy, ix = np.unravel_index(best, self.shape)
            places[start:start + m] = (self.pad.origin
                                       + np.stack([ix, iy, iz], axis=1) * self.pad.voxel_size)
        return scores, places


class PlacementSearch:
    """The exhaustive placement search of one target on one reference, prepared once: the
    coarse reference and its transform, the target's template, its fit points and the
    quick and fine reference grids. :meth:`run` places the target or its mirror image.

    Parameters
    ----------
    ref, target : Map
        Any boxes and voxel sizes.
    points : FitPoints, optional
        The target's fit points, if the caller has them (default: the molecular envelope,
        or the voxels above ``contour``).
    ref_points : FitPoints, optional
        The reference's envelope points, if the caller has them (for the symmetry test).
    contour : float, optional
        Target contour for the fit points.
    reference_grid : ReferenceGrid, optional
        The reference prepared for cubic scoring, if the caller has it.
    n_rotations : int, optional
        Rotations of the grid (default 720, see :func:`rotation_grid`).
    n_refine : int, optional
        Best distinct coarse poses refined by rigid fits (default 6).
    transforms : tuple of numpy.ndarray, optional
        ``(half_transform(ref), half_transform(target))`` when the caller has them (either
        may be None; read, not changed), for the coarse maps.
    nthreads : int, optional
        Threads (0 = all available).
    """

    def __init__(self, ref: Map, target: Map, *, points: Optional[FitPoints] = None,
                 ref_points: Optional[FitPoints] = None,
                 contour=None, reference_grid: Optional[ReferenceGrid] = None,
                 n_rotations: int = 720, n_refine: int = 6, transforms=(None, None),
                 nthreads: int = 0):
        self.nthreads = nthreads = resolve_threads(nthreads)
        self.ref, self.target = ref, target
        self.n_rotations, self.n_refine = int(n_rotations), int(n_refine)
        voxel = float(max(np.max(ref.cell), np.max(target.cell)) / COARSE_VOXELS)
        voxel = max(voxel, 2.0 * float(max(np.max(ref.voxel_size),
                                           np.max(target.voxel_size))))
        self.voxel, self.resolution = voxel, 2.5 * voxel
        coarse_ref = _coarse(ref, voxel, self.resolution, nthreads, transforms[0])
        coarse_tgt = _coarse(target, voxel, self.resolution, nthreads, transforms[1])
        # the template: the target's envelope, zero-mean inside it and zero outside
        level = float(coarse_tgt.data.mean() + coarse_tgt.data.std())
        mask = coarse_tgt.data > level
        if np.count_nonzero(mask) < 8:
            raise VoxscaleError("the target has no molecular envelope at the search "
                                "resolution")
        template = np.where(mask, coarse_tgt.data - coarse_tgt.data[mask].mean(), 0.0)
        template /= np.linalg.norm(template)
        self.template = Map._on_grid_of(template.astype(np.float32), coarse_tgt)
        iz, iy, ix = np.nonzero(mask)
        xyz = coarse_tgt.origin + np.stack([ix, iy, iz], axis=1) * coarse_tgt.voxel_size
        self.center = xyz.mean(axis=0)
        self.radius = float(np.max(np.linalg.norm(xyz - self.center, axis=1))) + voxel
        # the reference, zero-mean, padded so that a template anywhere in it does not wrap
        # onto density: pad >= reference + template radius
        reach = int(np.ceil(self.radius / float(np.min(coarse_ref.voxel_size))))
        n_pad = [fast_length(int(k) + reach + 1) for k in coarse_ref.shape]
        pad_data = np.zeros(n_pad, np.float32)
        nz, ny, nx = coarse_ref.shape
        pad_data[:nz, :ny, :nx] = coarse_ref.data - coarse_ref.data.mean()
        self.pad_data = pad_data
        self.pad = Map(pad_data, coarse_ref.voxel_size, coarse_ref.origin)
        self.points = points if points is not None else fit_points(target, contour,
                                                                   nthreads=nthreads)
        self.ref_points = ref_points
        self._quick = None
        self._fine = (reference_grid if reference_grid is not None and reference_grid.order == 3
                      else None)

    # Built on first use: a scan that places the target by its models runs the search only
    # for the mirror check at its end, when its own large arrays are gone (memory).
    @property
    def quick(self) -> ReferenceGrid:
        """ReferenceGrid : The reference for trilinear scoring."""
        if self._quick is None:
            self._quick = ReferenceGrid(self.ref, order=1, nthreads=self.nthreads)
        return self._quick

    @property
    def fine(self) -> ReferenceGrid:
        """ReferenceGrid : The reference's cubic spline coefficients, for the refinement."""
        if self._fine is None:
            self._fine = ReferenceGrid(self.ref, order=3, nthreads=self.nthreads)
        return self._fine

    def _maps_onto_itself(self, relative: np.ndarray) -> bool:
        """Whether the reference maps onto itself under ``relative`` (x → R·x + t)."""
        if self.ref_points is None:
            self.ref_points = fit_points(self.ref, None, role="reference",
                                         nthreads=self.nthreads)
        pts = self.ref_points.subsample(6000)
        moved = np.ascontiguousarray(pts.xyz @ relative[:3, :3].T + relative[:3, 3])
        cc = self.fine.score(moved, pts.values, np.eye(3), np.zeros(3), moved.mean(axis=0))[0]
        return bool(np.isfinite(cc) and cc > SYMMETRY_CC)

    def _symmetry_mate(self, a: FitResult, b: FitResult) -> bool:
        """Whether the reference maps onto itself under the move from pose a to pose b."""
        return self._maps_onto_itself(b.transform @ np.linalg.inv(a.transform))

    def _symmetry(self, best: FitResult, others) -> list:
        """The reference's symmetry operators found from the poses ``others`` that are
        mates of ``best``, closed under composition (at most :data:`MAX_SYMMETRY`)."""
        center = np.asarray(self.ref.center, dtype=np.float64)
        tolerance = 0.2 * self.radius

        def same(a, b):
            return (rotation_angle_deg(a[:3, :3] @ b[:3, :3].T) < 10.0
                    and np.linalg.norm((a[:3, :3] - b[:3, :3]) @ center + a[:3, 3] - b[:3, 3])
                    < tolerance)

        group = [np.eye(4)]
        for fit in others:
            relative = fit.transform @ np.linalg.inv(best.transform)
            if (not any(same(relative, g) for g in group)
                    and self._maps_onto_itself(relative)):
                group.append(relative)
        if len(group) == 1:
            return []
        # closure: a group whose generators were found (the cyclic powers of one mate, and
        # the products of two axes), each product checked against the reference itself
        grew = True
        while grew and len(group) < MAX_SYMMETRY:
            grew = False
            for a in list(group[1:]):
                for b in list(group[1:]):
                    product = a @ b
                    if (len(group) < MAX_SYMMETRY and not any(same(product, g) for g in group)
                            and self._maps_onto_itself(product)):
                        group.append(product)
                        grew = True
        return group[1:]

    def _mirrored_template(self):
        """The template and its centre reflected through x = the target's box centre."""
        t = self.template
        cx = float(self.target.center[0])
        origin = t.origin.copy()
        origin[0] = 2 * cx - t.origin[0] - (t.shape[2] - 1) * t.voxel_size[0]
        center = self.center.copy()
        center[0] = 2 * cx - center[0]
        return Map(np.ascontiguousarray(t.data[:, :, ::-1]), t.voxel_size, origin), center

    def run(self, *, mirror: bool = False, n_rotations: Optional[int] = None) -> GlobalSearch:
        """Search every rotation and translation, refine the best distinct poses.

        Parameters
        ----------
        mirror : bool, optional
            Place the target's mirror image (reflected through x = its box centre) instead.
        n_rotations : int, optional
            Rotations of this run (default the search's).

        Returns
        -------
        GlobalSearch

        Raises
        ------
        VoxscaleError
            If no pose overlaps the reference.
        """
        nthreads = self.nthreads
        template, center = self._mirrored_template() if mirror else (self.template,
                                                                      self.center)
        points = self.points.mirrored() if mirror else self.points
        search = _TranslationSearch(self.pad_data, self.pad, template, center, self.radius)
        rotations = rotation_grid(self.n_rotations if n_rotations is None else n_rotations)
        scores, places = search.best(rotations, nthreads=nthreads)
        # best distinct poses: distinct from a better one when the rotation differs by more
        # than 30° or the centre by more than half the target's radius
        chosen = []
        for k in np.argsort(-scores):
            if all(rotation_angle_deg(rotations[k] @ rotations[j].T) > 30.0
                   or np.linalg.norm(places[k] - places[j]) > 0.5 * self.radius
                   for j in chosen):
                chosen.append(k)
            if len(chosen) == self.n_refine:
                break
        quick_pts = points.subsample(4000)
        starts = []
        # besides the search's poses: the maps as they are (often already in one frame, and
        # a map against itself) and their box centres superposed
        as_is = np.eye(4)
        centred = np.eye(4)
        centred[:3, 3] = self.ref.center - self.target.center
        poses = [as_is, centred]
        for k in chosen:
            m = np.eye(4)
            m[:3, :3] = rotations[k]
            m[:3, 3] = places[k] - rotations[k] @ center
            poses.append(m)
        for m in poses:
            try:
                starts.append(rigid_fit(self.quick, quick_pts.xyz, quick_pts.values, m,
                                        max_steps=80, xtol=1e-2, nthreads=nthreads))
            except VoxscaleError:
                continue
        if not starts:
            raise VoxscaleError("the target could not be placed on the reference: no pose "
                                "overlaps it")
        fine_pts = points.subsample(20000)
        refined = [rigid_fit(self.fine, fine_pts.xyz, fine_pts.values, fit.transform,
                             xtol=1e-3, nthreads=nthreads)
                   for fit in sorted(starts, key=lambda f: -f.cc)[:3]]
        refined.sort(key=lambda f: -f.cc)
        best = refined[0]
        second = next((f for f in refined[1:] if _distinct(f, best, self.radius)), None)
        mate = second is not None and self._symmetry_mate(best, second)
        # every start, refined or not, is a candidate mate: its relation to the best pose
        # is only a generator, checked against the reference and refined later at the factor
        others = [f for f in refined[1:] + starts if _distinct(f, best, self.radius)]
        symmetry = self._symmetry(best, others) if mate else []
        second_cc = float("nan") if second is None else second.cc
        return GlobalSearch(best, best.cc, second_cc,
                            best.cc - second_cc if second else np.inf, mate, len(rotations),
                            self.resolution, refined, symmetry)


def global_search(ref: Map, target: Map, *, contour=None, n_rotations: int = 720,
                  n_refine: int = 6, reference_grid: Optional[ReferenceGrid] = None,
                  nthreads: int = 0) -> GlobalSearch:
    """Place the target on the reference by an exhaustive rotation and translation search
    (:class:`PlacementSearch` prepared and run once).

    Parameters
    ----------
    ref, target : Map
    contour, n_rotations, n_refine, reference_grid, nthreads
        See :class:`PlacementSearch`.

    Returns
    -------
    GlobalSearch
    """
    return PlacementSearch(ref, target, contour=contour, reference_grid=reference_grid,
                           n_rotations=n_rotations, n_refine=n_refine,
                           nthreads=nthreads).run()


def _distinct(a: FitResult, b: FitResult, radius: float) -> bool:
    ra, rb = a.transform[:3, :3], b.transform[:3, :3]
    return (rotation_angle_deg(ra @ rb.T) > 10.0
            or np.linalg.norm(a.transform[:3, 3] - b.transform[:3, 3]) > 0.2 * radius)
