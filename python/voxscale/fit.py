"""Rigid-body fitting of a target map into a reference map (DESIGN.md §1 step 2, §3).

The score is ChimeraX ``fitmap``'s envelope mode with "correlation about mean": the target's
grid points above its contour level are the fit points, their target densities the values, and
the reference is interpolated (cubic B-spline by default) at the transformed points. The
transform is x_ref = R·x_tgt + t (DESIGN.md §2); rotations are applied about the fit points'
centroid. Maximisation is a quasi-Newton (BFGS) ascent on the six rigid parameters with the
analytic gradient from the C++ kernel; the rotation is re-based after every step, so its
gradient is always taken at zero rotation where it is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _core
from .errors import VoxscaleError
from .io import Map
from .sampling import spline_coefficients

__all__ = ["FitPoints", "FitResult", "auto_contour", "fit_points", "rigid_fit",
           "rotation_from_vector", "rotation_angle_deg", "ReferenceGrid"]


def auto_contour(map: Map) -> float:
    """Default contour level for fitting: mean + 1 standard deviation of the whole box.

    For a molecule filling 5–30 % of its box this keeps the molecular envelope and drops the
    solvent; it needs no mask and does not depend on the map's absolute scale. Give an
    explicit level for maps that are masked tightly or mostly molecule.

    Parameters
    ----------
    map : Map

    Returns
    -------
    float
        Density level.
    """
    d = map.data
    return float(d.mean(dtype=np.float64) + d.std(dtype=np.float64))


@dataclass
class FitPoints:
    """The target's fit points: grid points above the contour.

    Attributes
    ----------
    xyz : numpy.ndarray, shape (n, 3)
        Physical positions x, y, z in Å, at the header voxel size.
    values : numpy.ndarray of float32, shape (n,)
        Target density at those points, centred (mean subtracted).
    center : numpy.ndarray, shape (3,)
        Centre of the target's box (:attr:`Map.center`), about which voxel-scale factors act.
    contour : float
        The level used.
    """

    xyz: np.ndarray
    values: np.ndarray
    center: np.ndarray
    contour: float

    def __len__(self) -> int:
        return len(self.values)

    def scaled(self, scale) -> np.ndarray:
        """Positions with the target's voxel size multiplied by ``scale`` about its centre.

        Parameters
        ----------
        scale : float or array_like, shape (3, 3)
            Isotropic factor or a 3x3 scale matrix.

        Returns
        -------
        numpy.ndarray, shape (n, 3)
        """
        s = np.asarray(scale, dtype=np.float64)
        d = self.xyz - self.center
        return np.ascontiguousarray(self.center + (d * s if s.ndim == 0 else d @ s.T))


def fit_points(target: Map, contour=None, *, max_points: int = 0) -> FitPoints:
    """Select the target's grid points above a contour level.

    Parameters
    ----------
    target : Map
        The map to be fitted.
    contour : float, optional
        Density level; default :func:`auto_contour`.
    max_points : int, optional
        If > 0 and more points lie above the contour, keep an evenly spread subset of about
        this many (every k-th point in grid order), which speeds up fitting of large maps.

    Returns
    -------
    FitPoints

    Raises
    ------
    VoxscaleError
        If fewer than 10 points lie above the contour.
    """
    level = auto_contour(target) if contour is None else float(contour)
    iz, iy, ix = np.nonzero(target.data > level)
    if len(ix) < 10:
        raise VoxscaleError(f"only {len(ix)} grid points of the target lie above the contour "
                            f"level {level:.4g}; give a lower --contour")
    if max_points and len(ix) > max_points:
        keep = slice(None, None, int(np.ceil(len(ix) / max_points)))
        iz, iy, ix = iz[keep], iy[keep], ix[keep]
    xyz = target.origin + np.stack([ix, iy, iz], axis=1) * target.voxel_size
    values = target.data[iz, iy, ix].astype(np.float64)
    values = (values - values.mean()).astype(np.float32)
    return FitPoints(np.ascontiguousarray(xyz), values, target.center.copy(), level)


def rotation_from_vector(omega) -> np.ndarray:
    """Rotation matrix of a rotation vector (axis × angle in radians), Rodrigues' formula.

    Parameters
    ----------
    omega : array_like, shape (3,)

    Returns
    -------
    numpy.ndarray, shape (3, 3)
    """
    omega = np.asarray(omega, dtype=np.float64)
    theta = float(np.linalg.norm(omega))
    if theta < 1e-12:
        return np.eye(3)
    k = omega / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def rotation_angle_deg(rotation) -> float:
    """Angle of a rotation matrix in degrees.

    Parameters
    ----------
    rotation : array_like, shape (3, 3)

    Returns
    -------
    float
    """
    c = (np.trace(np.asarray(rotation)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


class ReferenceGrid:
    """A reference map prepared for repeated scoring (spline coefficients computed once).

    Parameters
    ----------
    map : Map
    order : {1, 3}, optional
        Interpolation order (default 3, cubic B-spline).
    nthreads : int, optional
        Threads (0 = all available).
    """

    def __init__(self, map: Map, *, order: int = 3, nthreads: int = 0):
        self.map = map
        self.order = order
        self.nthreads = nthreads
        self.grid = spline_coefficients(map.data, nthreads=nthreads) if order == 3 else map.data

    def score(self, points: np.ndarray, values: np.ndarray, rotation, translation, center):
        """Correlation, its gradient (dω per rad, dt per Å) and points inside, for
        x_ref = R·(p − c) + c + t."""
        return _core.rigid_score(self.grid, self.map.origin, self.map.voxel_size, points, values,
                                 np.ascontiguousarray(rotation, dtype=np.float64),
                                 np.asarray(translation, dtype=np.float64),
                                 np.asarray(center, dtype=np.float64), self.order, self.nthreads)


@dataclass
class FitResult:
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
    """

    transform: np.ndarray
    cc: float
    n_points: int
    n_inside: int
    iterations: int = 0
    history: list = field(default_factory=list, repr=False)

    @property
    def rotation_deg(self) -> float:
        """float : Rotation angle of the transform in degrees."""
        return rotation_angle_deg(self.transform[:3, :3])

    @property
    def shift_A(self) -> float:
        """float : Length of the translation part of the transform in Å."""
        return float(np.linalg.norm(self.transform[:3, 3]))


def _compose(rotation, translation_about_center, center) -> np.ndarray:
    """4x4 of x -> R(x - c) + c + t."""
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = center + translation_about_center - rotation @ center
    return m


def rigid_fit(reference, points: np.ndarray, values: np.ndarray, transform=None, *,
              max_steps: int = 200, xtol: float = 1e-4, nthreads: int = 0) -> FitResult:
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
        Convergence: stop when a step moves the fit points by less than this (Å, RMS).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    FitResult
    """
    ref = reference if isinstance(reference, ReferenceGrid) else ReferenceGrid(
        reference, nthreads=nthreads)
    points = np.ascontiguousarray(points, dtype=np.float64)
    values = np.ascontiguousarray(values, dtype=np.float32)
    t0 = np.eye(4) if transform is None else np.asarray(transform, dtype=np.float64)
    center = points.mean(axis=0)
    # Rotations in units of Å at the points' radius of gyration, so all six parameters are
    # commensurate and a unit step moves the points by about 1 Å.
    radius = max(float(np.sqrt(((points - center) ** 2).sum(axis=1).mean())), 1e-6)
    scale = np.array([radius] * 3 + [1.0] * 3)
    rot = t0[:3, :3].copy()
    trans = t0[:3, :3] @ center + t0[:3, 3] - center  # translation about the centroid

    def evaluate(r, t):
        cc, grad, inside = ref.score(points, values, r, t, center)
        return -cc, -grad / scale, inside  # minimise -cc in scaled parameters

    f, g, inside = evaluate(rot, trans)
    if not np.isfinite(f):
        raise VoxscaleError("the fit points do not overlap the reference map (correlation "
                            "undefined); check the placement or the maps' origins")
    hess_inv = np.eye(6) * 0.1  # first step: at most ~0.1 Å per unit gradient
    steps = 0
    history = [-f]
    for steps in range(1, max_steps + 1):
        direction = -hess_inv @ g
        if g @ direction >= 0:  # not a descent direction: restart from steepest descent
            hess_inv = np.eye(6) * 0.1
            direction = -hess_inv @ g
        step_len = 1.0
        while True:
            y = step_len * direction
            new_rot = rotation_from_vector(y[:3] / radius) @ rot
            new_trans = trans + y[3:]
            f_new, g_new, inside_new = evaluate(new_rot, new_trans)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * step_len * (g @ direction):
                break
            step_len *= 0.5
            if step_len < 1e-6:
                break
        if step_len < 1e-6:
            break
        s_vec, y_vec = y, g_new - g
        rot, trans, f, g, inside = new_rot, new_trans, f_new, g_new, inside_new
        history.append(-f)
        sy = s_vec @ y_vec
        if sy > 1e-12:
            rho = 1.0 / sy
            eye = np.eye(6)
            hess_inv = ((eye - rho * np.outer(s_vec, y_vec)) @ hess_inv
                        @ (eye - rho * np.outer(y_vec, s_vec)) + rho * np.outer(s_vec, s_vec))
        if np.linalg.norm(s_vec) < xtol:
            break
    return FitResult(_compose(rot, trans, center), float(-f), len(values), int(inside), steps,
                     history)
