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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.fft

from ..errors import VoxscaleError
from ..maps.interpolation import resample
from ..maps.map import Map
from ..reciprocal.transform import low_pass
from ..threads import resolve_threads
from .points import fit_points
from .rigid import FitResult, ReferenceGrid, rigid_fit
from .rotations import rotation_angle_deg

__all__ = ["rotation_grid", "GlobalSearch", "global_search", "mirrored"]

#: Voxels along the longest box edge of the coarse search grid.
COARSE_VOXELS = 24


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


def _fast_length(n: int) -> int:
    """Smallest 2,3,5-smooth integer >= n (a fast FFT length)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


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
    """

    fit: FitResult
    cc: float
    second_cc: float
    gap: float
    second_is_symmetry_mate: bool
    n_rotations: int
    resolution: float
    candidates: list = field(default_factory=list, repr=False)


def _coarse(m: Map, voxel: float, d: float, nthreads: int) -> Map:
    """m low-passed to d and sampled every ``voxel`` Å over its box."""
    smooth = low_pass(m, d, nthreads=nthreads)
    shape = tuple(int(k) for k in np.maximum(np.ceil(m.cell / voxel), 4).astype(int)[::-1])
    grid = Map(np.zeros(shape, np.float32), voxel, m.origin)
    return resample(smooth, grid, order=1, nthreads=nthreads)


class _TranslationSearch:
    """Cross-correlation of the rotated template with the (padded) reference at every
    translation, one rotation at a time; the kernels run single-threaded, so that rotations
    can run in parallel threads (they release the GIL)."""

    def __init__(self, pad_data: np.ndarray, pad: Map, template_map: Map, center, radius):
        self.shape = pad_data.shape
        self.ref_f = scipy.fft.rfftn(pad_data, workers=1)
        self.pad, self.template_map, self.center = pad, template_map, np.asarray(center)
        half = int(np.ceil(radius / pad.voxel_size[0]))
        m = 2 * half + 1
        # a small centred box holds the rotated template; it is embedded with wrap-around
        self.small = Map(np.zeros((m, m, m), np.float32), pad.voxel_size,
                         -pad.voxel_size * half)
        self.index = [(np.arange(m) - half) % n for n in self.shape]

    def best(self, rotation):
        """(score, position in Å where the template's centre lands) of the best translation."""
        transform = np.eye(4)
        transform[:3, :3] = rotation
        transform[:3, 3] = -rotation @ self.center
        rotated = resample(self.template_map, self.small, transform, order=1, nthreads=1)
        wrapped = np.zeros(self.shape, np.float32)
        wrapped[np.ix_(*self.index)] = rotated.data
        f_t = scipy.fft.rfftn(wrapped, workers=1)
        # cross-correlation theorem: irfft(F_ref·conj(F_t))[t] = Σ_x ref(x + t)·template(x)
        score = scipy.fft.irfftn(self.ref_f * np.conj(f_t), s=self.shape, workers=1)
        i = int(np.argmax(score))
        iz, iy, ix = np.unravel_index(i, self.shape)
        return float(score.flat[i]), self.pad.origin + np.array([ix, iy, iz]) * self.pad.voxel_size


def global_search(ref: Map, target: Map, *, contour=None, n_rotations: int = 720,
                  n_refine: int = 6, reference_grid: Optional[ReferenceGrid] = None,
                  nthreads: int = 0) -> GlobalSearch:
    """Place the target on the reference by an exhaustive rotation and translation search.

    Parameters
    ----------
    ref, target : Map
        Any boxes and voxel sizes.
    contour : float, optional
        Target contour for the fit points (default: the molecular envelope).
    n_rotations : int, optional
        Rotations of the grid (default 720, see :func:`rotation_grid`).
    n_refine : int, optional
        Best distinct coarse poses refined by rigid fits (default 6).
    reference_grid : ReferenceGrid, optional
        The reference prepared for cubic scoring, if the caller has it.
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    GlobalSearch

    Raises
    ------
    VoxscaleError
        If no pose overlaps the reference.
    """
    nthreads = resolve_threads(nthreads)
    voxel = float(max(np.max(ref.cell), np.max(target.cell)) / COARSE_VOXELS)
    voxel = max(voxel, 2.0 * float(max(np.max(ref.voxel_size), np.max(target.voxel_size))))
    d = 2.5 * voxel
    coarse_ref = _coarse(ref, voxel, d, nthreads)
    coarse_tgt = _coarse(target, voxel, d, nthreads)
    # the template: the target's envelope, zero-mean inside it and zero outside
    level = float(coarse_tgt.data.mean() + coarse_tgt.data.std())
    mask = coarse_tgt.data > level
    if np.count_nonzero(mask) < 8:
        raise VoxscaleError("the target has no molecular envelope at the search resolution")
    template = np.where(mask, coarse_tgt.data - coarse_tgt.data[mask].mean(), 0.0)
    template /= np.linalg.norm(template)
    template_map = Map._on_grid_of(template.astype(np.float32), coarse_tgt)
    iz, iy, ix = np.nonzero(mask)
    xyz = coarse_tgt.origin + np.stack([ix, iy, iz], axis=1) * voxel
    center = xyz.mean(axis=0)
    radius = float(np.max(np.linalg.norm(xyz - center, axis=1))) + voxel
    # the reference, zero-mean, padded so that a template anywhere in it does not wrap onto
    # density: pad >= reference + template radius
    reach = int(np.ceil(radius / voxel))
    n_pad = [_fast_length(int(k) + reach + 1) for k in coarse_ref.shape]
    pad_data = np.zeros(n_pad, np.float32)
    nz, ny, nx = coarse_ref.shape
    pad_data[:nz, :ny, :nx] = coarse_ref.data - coarse_ref.data.mean()
    search = _TranslationSearch(pad_data, Map(pad_data, voxel, coarse_ref.origin),
                                template_map, center, radius)
    rotations = rotation_grid(int(n_rotations))
    with ThreadPoolExecutor(max_workers=nthreads) as pool:
        found = list(pool.map(search.best, rotations, chunksize=16))
    scores = np.array([f[0] for f in found])
    places = np.array([f[1] for f in found])
    # best distinct poses: a pose is distinct from a better one when its rotation differs by
    # more than 30° or its centre by more than half the target's radius
    order = np.argsort(-scores)
    chosen = []
    for k in order:
        if all(rotation_angle_deg(rotations[k] @ rotations[j].T) > 30.0
               or np.linalg.norm(places[k] - places[j]) > 0.5 * radius for j in chosen):
            chosen.append(k)
        if len(chosen) == n_refine:
            break
    quick_pts = fit_points(target, contour, max_points=4000, nthreads=nthreads)
    quick = ReferenceGrid(ref, order=1, nthreads=nthreads)
    starts = []
    for k in chosen:
        m = np.eye(4)
        m[:3, :3] = rotations[k]
        m[:3, 3] = places[k] - rotations[k] @ center
        try:
            starts.append(rigid_fit(quick, quick_pts.xyz, quick_pts.values, m, max_steps=80,
                                    xtol=1e-2, nthreads=nthreads))
        except VoxscaleError:
            continue
    if not starts:
        raise VoxscaleError("the target could not be placed on the reference: no pose "
                            "overlaps it")
    fine_pts = fit_points(target, contour, max_points=20000, nthreads=nthreads)
    fine = (reference_grid if reference_grid is not None and reference_grid.order == 3
            else ReferenceGrid(ref, order=3, nthreads=nthreads))
    refined = []
    for fit in sorted(starts, key=lambda f: -f.cc)[:3]:
        refined.append(rigid_fit(fine, fine_pts.xyz, fine_pts.values, fit.transform,
                                 xtol=1e-3, nthreads=nthreads))
    refined.sort(key=lambda f: -f.cc)
    best = refined[0]
    second = next((f for f in refined[1:] if _distinct(f, best, radius)), None)
    mate = second is not None and _symmetry_mate(fine, ref, best, second, nthreads)
    second_cc = float("nan") if second is None else second.cc
    return GlobalSearch(best, best.cc, second_cc, best.cc - second_cc if second else np.inf,
                        mate, len(rotations), d, refined)


def _distinct(a: FitResult, b: FitResult, radius: float) -> bool:
    ra, rb = a.transform[:3, :3], b.transform[:3, :3]
    return (rotation_angle_deg(ra @ rb.T) > 10.0
            or np.linalg.norm(a.transform[:3, 3] - b.transform[:3, 3]) > 0.2 * radius)


def _symmetry_mate(grid: ReferenceGrid, ref: Map, a: FitResult, b: FitResult,
                   nthreads: int) -> bool:
    """Whether the reference maps onto itself under the move from pose a to pose b."""
    relative = b.transform @ np.linalg.inv(a.transform)
    pts = fit_points(ref, None, max_points=6000, role="reference", nthreads=nthreads)
    moved = pts.xyz @ relative[:3, :3].T + relative[:3, 3]
    c = moved.mean(axis=0)
    cc = grid.score(np.ascontiguousarray(moved), pts.values, np.eye(3), np.zeros(3), c)[0]
    return bool(np.isfinite(cc) and cc > 0.8)

