"""Anisotropic magnification: a symmetric 3x3 scale matrix refined with the rigid fit.

Microscopes can magnify unequally along different directions. After the isotropic scan, the
placement x_ref = L·(p − c) + c + t is refined over every linear map L (9 parameters) and the
translation (3), from L = s·R at the isotropic optimum, with the analytic gradient
G = dCC/dX of a left update L → (I + X)·L (see ``cpp/include/voxscale/fit.hpp``). The polar
decomposition L = R·S then separates the rotation R from the symmetric scale matrix S of the
target, whose eigenvalues are the three principal voxel-scale factors and whose eigenvectors
are their directions in the target's frame.
"""
from __future__ import annotations

import numpy as np

from scipy.linalg import polar

from .optimise import ascend
from .points import FitPoints
from .rigid import ReferenceGrid, radius_of_gyration
from ..threads import resolve_threads

__all__ = ["refine_anisotropic_scale", "polar_decomposition"]


def polar_decomposition(linear):
    """Split a linear map with positive determinant into L = R·S (:func:`scipy.linalg.polar`).

    Parameters
    ----------
    linear : array_like, shape (3, 3)

    Returns
    -------
    rotation : numpy.ndarray, shape (3, 3)
        Proper rotation R.
    stretch : numpy.ndarray, shape (3, 3)
        Symmetric positive-definite S = sqrt(Lᵀ·L).

    Raises
    ------
    ValueError
        If L reverses handedness (det L <= 0): it has no rotation part.
    """
    linear = np.asarray(linear, dtype=np.float64)
    if not np.linalg.det(linear) > 0:
        raise ValueError("the linear map reverses handedness; it has no rotation part")
    rotation, stretch = polar(linear, side="right")
    return rotation, 0.5 * (stretch + stretch.T)


def refine_anisotropic_scale(reference: ReferenceGrid, points: FitPoints, scale: float,
                             transform, *, max_steps: int = 300, xtol: float = 1e-5,
                             nthreads: int = 0) -> dict:
    """Refine a symmetric scale matrix of the target together with its rigid placement.

    Parameters
    ----------
    reference : ReferenceGrid
        The reference map prepared for scoring.
    points : FitPoints
        The target's fit points (header voxel size).
    scale : float
        Isotropic voxel-scale factor to start from.
    transform : array_like, shape (4, 4)
        Rigid fit at ``scale`` (for points scaled about the target's box centre).
    max_steps : int, optional
        Maximum quasi-Newton steps.
    xtol : float, optional
        Convergence threshold on the step (≈ Å at the radius of gyration).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    dict
        ``scale_matrix`` (3x3, target frame, about the target's box centre),
        ``principal_scales`` (ascending) and ``principal_axes`` (unit vectors, one row per
        factor), ``isotropic_equivalent`` (det(S)^(1/3)), ``rotation`` and ``transform``
        (4x4: x_ref = R·(c_box + S·(x − c_box)) + t, which :func:`voxscale.resample` takes as
        ``transform=..., scale=scale_matrix``), ``cc`` and ``cc_isotropic``.
    """
    nthreads = resolve_threads(nthreads)
    xyz = np.ascontiguousarray(points.xyz)
    values = points.values
    c_box = points.center
    t_iso = np.asarray(transform, dtype=np.float64)
    center = xyz.mean(axis=0)
    radius = radius_of_gyration(xyz, center)
    # Isotropic start in the form L·(p − c) + c + t for unscaled points p.
    lin0 = t_iso[:3, :3] * scale
    trans0 = t_iso[:3, :3] @ (c_box + scale * (center - c_box)) + t_iso[:3, 3] - center

    def evaluate(state):
        cc, grad, inside, g_lin = reference.score(xyz, values, state[0], state[1], center)
        return cc, np.concatenate([g_lin.ravel() / radius, grad[3:]]), inside

    def update(state, step):
        return (np.eye(3) + step[:9].reshape(3, 3) / radius) @ state[0], state[1] + step[9:]

    cc_iso = evaluate((lin0, trans0))[0]
    (lin, trans), cc, _, _, _, _ = ascend(evaluate, update, (lin0, trans0), 12,
                                          max_steps=max_steps, xtol=xtol)
    rotation, stretch_c = polar_decomposition(lin)
    # The fit's S acts about the points' centroid; the same S about the box centre only moves
    # the translation: x_ref = R·(c_box + S·(p − c_box)) + t_box.
    t_box = lin @ (c_box - center) + center + trans - rotation @ c_box
    values_s, vectors = np.linalg.eigh(stretch_c)
    full = np.eye(4)
    full[:3, :3] = rotation
    full[:3, 3] = t_box
    return {
        "scale_matrix": stretch_c,
        "principal_scales": values_s,
        "principal_axes": vectors.T,
        "isotropic_equivalent": float(np.cbrt(np.linalg.det(stretch_c))),
        "rotation": rotation,
        "transform": full,
        "cc": float(cc),
        "cc_isotropic": float(cc_iso),
    }
