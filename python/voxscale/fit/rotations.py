"""Rotations: rotation vectors and angles.

Rotation vectors and angles are :class:`scipy.spatial.transform.Rotation`'s.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["rotation_from_vector", "rotation_angle_deg"]


def rotation_from_vector(omega) -> np.ndarray:
    """Rotation matrix of a rotation vector (axis × angle in radians).

    Parameters
    ----------
    omega : array_like, shape (3,)

    Returns
    -------
    numpy.ndarray, shape (3, 3)

    Examples
    --------
    >>> np.round(rotation_from_vector([0, 0, np.pi / 2]) @ [1, 0, 0], 12) + 0.0
    array([0., 1., 0.])
    """
    return Rotation.from_rotvec(np.asarray(omega, dtype=np.float64)).as_matrix()


def rotation_angle_deg(rotation) -> float:
    """Angle of a rotation matrix in degrees (0 to 180).

    Parameters
    ----------
    rotation : array_like, shape (3, 3)
        A proper rotation (a matrix within rounding of one is accepted).

    Returns
    -------
    float
    """
    return float(np.degrees(Rotation.from_matrix(np.asarray(rotation, dtype=np.float64))
                            .magnitude()))
