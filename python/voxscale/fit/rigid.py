"""Rigid-body fitting of a target map into a reference map (docs/method.md §1 step 2).

The score is ChimeraX ``fitmap``'s envelope mode with "correlation about mean": the target's
grid points above its contour level are the fit points, their target densities the values, and
the reference is interpolated (cubic B-spline by default) at the transformed points. The
transform is x_ref = R·x_tgt + t (docs/method.md §2); rotations are applied about the fit points'
centroid. Maximisation is a quasi-Newton (BFGS) ascent on the six rigid parameters with the
analytic gradient from the C++ kernel; the rotation is re-based after every step, so its
gradient is always taken at zero rotation where it is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import _core
from ..errors import OptionError
from ..maps.map import Map
from ..maps.interpolation import spline_coefficients
from .optimise import ascend
from ..threads import resolve_threads
from .rotations import rotation_angle_deg, rotation_from_vector

__all__ = ["FitResult", "ReferenceGrid", "TransformSummary", "rigid_fit", "radius_of_gyration"]


class ReferenceGrid:
    """A reference map prepared for repeated scoring (spline coefficients computed once).

    Parameters
    ----------
    map : Map
    order : {1, 3}, optional
        Interpolation order (default 3, cubic B-spline).
    nthreads : int, optional
        Threads (0 = all available).
    keep_map : bool, optional
        Keep the map itself as :attr:`map` (default True); False keeps only its geometry
        (``map`` is then None), for callers that need the coefficients alone (memory).
    overwrite : bool, optional
        With ``keep_map=False`` and order 3: compute the coefficients in place of the map's
        data, for a caller that owns the map and drops it (default False). The map is not
        usable afterwards.

    Attributes
    ----------
    map : Map or None
    origin, voxel_size : numpy.ndarray, shape (3,)
        x, y, z in Å.
    grid_size : numpy.ndarray of int, shape (3,)
        nx, ny, nz.
    """

    def __init__(self, map: Map, *, order: int = 3, nthreads: int = 0, keep_map: bool = True,
                 overwrite: bool = False):
        self.map = map if keep_map else None
        self.origin, self.voxel_size = map.origin.copy(), map.voxel_size.copy()
        self.grid_size = np.array(map.grid_size)
        self.order = order
        if order not in (1, 3):
            raise OptionError(f"order must be 1 (trilinear) or 3 (cubic B-spline), got {order!r}")
        self.nthreads = resolve_threads(nthreads)
        if overwrite and keep_map:
            raise OptionError("overwrite=True needs keep_map=False: the map's data become the "
                              "coefficients")
        self.grid = (spline_coefficients(map.data, overwrite=overwrite, nthreads=self.nthreads)
                     if order == 3 else map.data)

    def score(self, points: np.ndarray, values: np.ndarray, linear, translation, center):
        """Score a placement x_ref = L·(p − c) + c + t of fit points.

        Parameters
        ----------
        points : numpy.ndarray, shape (n, 3)
            Fit points x, y, z in Å.
        values : numpy.ndarray of float32, shape (n,)
            Target values at the points.
        linear : array_like, shape (3, 3)
            L: a rotation, or any linear map.
        translation, center : array_like, shape (3,)
            t and c in Å.

        Returns
        -------
        cc : float
            Correlation about the mean.
        gradient : numpy.ndarray, shape (6,)
            dCC/dω (x, y, z; per radian, small rotation applied on the left) and dCC/dt
            (per Å).
        n_inside : int
            Points that landed inside the reference.
        linear_gradient : numpy.ndarray, shape (3, 3)
            G = dCC/dX for a left update L -> (I + X)·L.
        """
        return _core.rigid_score(self.grid, self.origin, self.voxel_size, points, values,
                                 np.ascontiguousarray(linear, dtype=np.float64),
                                 np.asarray(translation, dtype=np.float64),
                                 np.asarray(center, dtype=np.float64), self.order, self.nthreads)


class TransformSummary:
    """Mixin for results with a 4x4 ``transform``: its rotation angle and shift length."""

    @property
    def rotation_deg(self) -> float:
        """float : Rotation angle of the transform in degrees."""
        return rotation_angle_deg(self.transform[:3, :3])

    @property
    def shift_A(self) -> float:
        """float : Length of the translation part of the transform in Å."""
        return float(np.linalg.norm(self.transform[:3, 3]))


@dataclass
class FitResult(TransformSummary):
    """Result of a rigid fit.

    Attributes
    ----------
    transform : numpy.ndarray, shape (4, 4)
        x_ref = R·x_tgt + t for target coordinates (after any voxel-scale factor).
    cc : float
        Correlation about the mean at the fit points.
    n_points : int
        Fit points used.
    n_inside : int
        Fit points that landed inside the reference.
    iterations : int
        Quasi-Newton steps taken.
    history : list of float
        Correlation after each step.
    converged : bool
        False when the step limit was reached first.
    """

    transform: np.ndarray
    cc: float
    n_points: int
    n_inside: int
    iterations: int = 0
    history: list = field(default_factory=list, repr=False)
    converged: bool = True


def _compose(rotation, translation_about_center, center) -> np.ndarray:
    """4x4 of x -> R(x - c) + c + t."""
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = center + translation_about_center - rotation @ center
    return m


def radius_of_gyration(points: np.ndarray, center: np.ndarray) -> float:
    """RMS distance (Å) of points from a centre; at least 1e-6 (a scale for rotations)."""
    return max(float(np.sqrt(((points - center) ** 2).sum(axis=1).mean())), 1e-6)


def rigid_fit(reference, points: np.ndarray, values: np.ndarray, transform=None, *,
              max_steps: int = 200, xtol: float = 1e-4, first_step: float = 0.5,
              nthreads: int = 0) -> FitResult:
    """Maximise the correlation of fit points with a reference over rigid transforms.

    Parameters
    ----------
    reference : Map or ReferenceGrid
        The reference map (a :class:`ReferenceGrid` is reused as it is).
    points : numpy.ndarray, shape (n, 3)
        Fit points x, y, z in Å (target frame, after any voxel-scale factor).
    values : numpy.ndarray of float32, shape (n,)
        Target values at the points.
    transform : array_like, shape (4, 4), optional
        Starting transform (default identity).
    max_steps : int, optional
        Maximum number of quasi-Newton steps.
    xtol : float, optional
        Convergence: stop when a step moves the fit points by less than about this (Å).
    first_step : float, optional
        Length (≈ Å) of the first step; small when the start is known to be close (a warm
        start from a neighbouring voxel-scale factor), so the line search does not overshoot.
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    FitResult
    """
    nthreads = resolve_threads(nthreads)
    ref = reference if isinstance(reference, ReferenceGrid) else ReferenceGrid(
        reference, nthreads=nthreads)
    points = np.ascontiguousarray(points, dtype=np.float64)
    values = np.ascontiguousarray(values, dtype=np.float32)
    t0 = np.eye(4) if transform is None else np.asarray(transform, dtype=np.float64)
    center = points.mean(axis=0)
    # Rotations in units of Å at the points' radius of gyration, so all six parameters are
    # commensurate and a unit step moves the points by about 1 Å.
    radius = radius_of_gyration(points, center)

    def evaluate(state):
        cc, grad, inside, _ = ref.score(points, values, state[0], state[1], center)
        return cc, np.concatenate([grad[:3] / radius, grad[3:]]), inside

    def update(state, step):
        return rotation_from_vector(step[:3] / radius) @ state[0], state[1] + step[3:]

    start = (t0[:3, :3].copy(), t0[:3, :3] @ center + t0[:3, 3] - center)  # t about centroid
    (rot, trans), cc, inside, steps, history, converged = ascend(
        evaluate, update, start, 6, max_steps=max_steps, xtol=xtol, first_step=first_step)
    return FitResult(_compose(rot, trans, center), float(cc), len(values), int(inside), steps,
                     history, converged)
