"""Interpolation of maps at points and resampling of maps onto other grids.

Two interpolation orders, both defined on the box spanned by the voxel centres (index 0 to
n - 1 on every axis); points outside it get ``fill`` and are flagged outside, as in ChimeraX
``fitmap`` (:func:`resample` counts points within 0.01 voxel of the box as on its face):

* ``order=1``: trilinear interpolation (scipy.ndimage ``order=1``);
* ``order=3``: cubic B-spline interpolation with mirror boundaries (scipy.ndimage ``order=3,
  mode='mirror'``). It passes through the samples, is twice continuously differentiable and
  is much more accurate between samples, which the fitting and the voxel-scale scan rely on.
  The map is converted to spline coefficients first (:func:`spline_coefficients`);
  :class:`Interpolator` keeps them for repeated use.

Coordinates are Cartesian Å, (x, y, z); maps are (nz, ny, nx) arrays (docs/method.md §2).
"""
from __future__ import annotations

import numpy as np

from .. import _core
from ..errors import OptionError
from ..threads import resolve_threads
from .map import Map

__all__ = ["Interpolator", "interpolate", "resample", "resample_by_index", "spline_coefficients",
           "index_map"]


def _check_order(order: int) -> int:
    if order not in (1, 3):
        raise OptionError(f"order must be 1 (trilinear) or 3 (cubic B-spline), got {order!r}")
    return order


def _points_array(points) -> np.ndarray:
    pts = np.ascontiguousarray(points, dtype=np.float64)
    if pts.ndim == 1 and pts.shape == (3,):
        pts = pts.reshape(1, 3)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape (n, 3) (x, y, z in Å), got {pts.shape}")
    return pts


def spline_coefficients(data: np.ndarray, *, overwrite: bool = False,
                        nthreads: int = 0) -> np.ndarray:
    """Cubic B-spline coefficients of a map array (mirror boundaries).

    Parameters
    ----------
    data : numpy.ndarray, shape (nz, ny, nx)
        Samples; converted to float32.
    overwrite : bool, optional
        Compute the coefficients in place of ``data`` when it is a writeable, C-contiguous
        float32 array, and return it (default False: ``data`` is left unchanged). For callers
        that no longer need the samples: it saves a copy of the map.
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    numpy.ndarray
        float32 coefficients c with the same shape, such that cubic B-spline interpolation of
        c reproduces ``data`` at the grid points. Same as
        ``scipy.ndimage.spline_filter(data, order=3, mode='mirror')``.

    References
    ----------
    M. Unser, "Splines: a perfect fit for signal and image processing", IEEE Signal Processing
    Magazine 16 (1999) 22-38.
    """
    array = np.ascontiguousarray(data, dtype=np.float32)
    in_place = overwrite and array is data and array.flags.writeable
    return _core.spline_prefilter(array, nthreads=resolve_threads(nthreads),
                                  overwrite=in_place or array is not data)


class Interpolator:
    """Repeated interpolation of one map at many point sets.

    Parameters
    ----------
    map : Map
        The map to interpolate.
    order : {1, 3}, optional
        1 for trilinear, 3 for cubic B-spline (default); for order 3 the spline coefficients
        are computed once, here.
    fill : float, optional
        Value returned for points outside the map (default 0).
    nthreads : int, optional
        Threads for every call (0 = all available).

    Examples
    --------
    >>> import numpy as np, voxscale
    >>> m = voxscale.Map(np.arange(27, dtype=np.float32).reshape(3, 3, 3), 2.0)
    >>> interp = voxscale.Interpolator(m, order=1)
    >>> float(interp([[1.0, 0.0, 0.0]])[0])   # halfway between voxels x=0 and x=1
    0.5
    """

    def __init__(self, map: Map, *, order: int = 3, fill: float = 0.0, nthreads: int = 0):
        self.map = map
        self.order = _check_order(order)
        self.fill = float(fill)
        self.nthreads = resolve_threads(nthreads)
        self._grid = (spline_coefficients(map.data, nthreads=self.nthreads) if order == 3
                      else map.data)

    def __call__(self, points, *, gradient: bool = False, return_inside: bool = False):
        """Interpolate at points.

        Parameters
        ----------
        points : array_like, shape (n, 3)
            Positions x, y, z in Å.
        gradient : bool, optional
            Also return the gradient.
        return_inside : bool, optional
            Also return the inside flags.

        Returns
        -------
        values : numpy.ndarray, shape (n,)
            float32 values (``fill`` outside).
        gradients : numpy.ndarray, shape (n, 3)
            Only with ``gradient``: d/dx, d/dy, d/dz in value per Å, float32 (0 outside).
        inside : numpy.ndarray of bool, shape (n,)
            Only with ``return_inside``: True where the point lies within the map.
        """
        pts = _points_array(points)
        values, grads, inside = _core.interpolate_points(
            self._grid, self.map.origin, self.map.voxel_size, pts, self.order, self.fill,
            gradient, self.nthreads)
        out = (values,)
        if gradient:
            out += (grads,)
        if return_inside:
            out += (inside,)
        return out[0] if len(out) == 1 else out


def interpolate(map: Map, points, *, order: int = 1, fill: float = 0.0, gradient: bool = False,
                nthreads: int = 0):
    """Interpolate a map at arbitrary points.

    Parameters
    ----------
    map : Map
        The map.
    points : array_like, shape (n, 3)
        Positions x, y, z in Å.
    order : {1, 3}, optional
        1 trilinear (default), 3 cubic B-spline. For many calls on one map use
        :class:`Interpolator`, which prepares the spline coefficients once.
    fill : float, optional
        Value for points outside the map (default 0).
    gradient : bool, optional
        Also return the gradient d/dx, d/dy, d/dz (value per Å), shape (n, 3).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    values : numpy.ndarray, shape (n,)
        float32 values.
    gradients : numpy.ndarray, shape (n, 3)
        Only with ``gradient=True``.
    """
    nthreads = resolve_threads(nthreads)
    return Interpolator(map, order=order, fill=fill, nthreads=nthreads)(points, gradient=gradient)


def _linear_part(scale) -> np.ndarray:
    s = np.asarray(scale, dtype=np.float64)
    if s.ndim == 0:
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        return np.eye(3) * float(s)
    if s.shape != (3, 3) or not np.all(np.isfinite(s)) or not np.linalg.det(s) > 0:
        raise ValueError("scale must be a positive number or a 3x3 matrix with positive "
                         "determinant")
    return s


def _transform_matrix(transform) -> np.ndarray:
    if transform is None:
        return np.eye(4)
    t = np.asarray(transform, dtype=np.float64)
    if t.shape != (4, 4):
        raise ValueError(f"transform must be a 4x4 matrix, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("transform must be finite")
    if not np.allclose(t[3], [0, 0, 0, 1]):
        raise ValueError("transform's last row must be (0, 0, 0, 1)")
    if abs(np.linalg.det(t[:3, :3])) < 1e-12:
        raise ValueError("transform's 3x3 part must be invertible")
    return t


def index_map(map: Map, onto: Map, transform=None, scale=1.0) -> np.ndarray:
    """The affine map from voxel indices of ``onto`` to fractional voxel indices of ``map``.

    Parameters
    ----------
    map, onto : Map
        Source and destination grids.
    transform : array_like, shape (4, 4), optional
        Rigid (or affine) transform taking ``map``'s physical coordinates, after scaling, into
        ``onto``'s frame: x_onto = R·x_map + t.
    scale : float or array_like, shape (3, 3), optional
        Voxel-scale factor s applied to ``map`` about its centre (:attr:`Map.center`) before
        the transform: the voxel size becomes s·v and the centre stays in place. A 3x3 matrix
        gives an anisotropic scaling about the centre.

    Returns
    -------
    numpy.ndarray, shape (3, 4)
        M such that index_map = M · (ix, iy, iz, 1), all in x, y, z order.
    """
    t = _transform_matrix(transform)
    s = _linear_part(scale)
    rot_inv = np.linalg.inv(t[:3, :3])
    s_inv = np.linalg.inv(s)
    c = map.center
    # physical point p of onto -> q = R⁻¹(p - t) -> unscaled u = c + S⁻¹(q - c) -> index.
    lin = np.diag(1.0 / map.voxel_size) @ s_inv @ rot_inv @ np.diag(onto.voxel_size)
    off = np.diag(1.0 / map.voxel_size) @ (
        c + s_inv @ (rot_inv @ (onto.origin - t[:3, 3]) - c) - map.origin)
    return np.ascontiguousarray(np.hstack([lin, off[:, None]]))


def resample(map: Map, onto: Map, transform=None, scale=1.0, order: int = 1, *,
             fill: float = 0.0, coefficients=None, nthreads: int = 0) -> Map:
    """Sample a map on the grid of another, through a transform and a voxel-scale factor.

    Parameters
    ----------
    map : Map
        The map to sample.
    onto : Map
        The map whose grid (shape, voxel size, origin) the result takes; its data are unused.
    transform : array_like, shape (4, 4), optional
        Rotation and translation taking ``map``'s physical coordinates (after scaling) into
        ``onto``'s frame, x_onto = R·x_map + t (Å). Default identity.
    scale : float or array_like, shape (3, 3), optional
        Voxel-scale factor s: ``map``'s voxel size is taken as s × its header value, about its
        box centre, so the molecule stays where it was (docs/method.md §2). Default 1.
    order : {1, 3}, optional
        1 trilinear (default), 3 cubic B-spline.
    fill : float, optional
        Value for output voxels that fall outside ``map`` (default 0); those within 0.01
        voxel of its outer samples count as inside and take the value on its face (a fitted
        pose's last digits must not cut off a box's outer planes).
    coefficients : numpy.ndarray, optional
        ``spline_coefficients(map.data)`` when the caller has them already (order 3 only), so
        that resampling one map several times computes them once.
    nthreads : int, optional
        Threads (0 = all available, honouring OMP_NUM_THREADS).

    Returns
    -------
    Map
        Data of shape ``onto.shape`` with ``onto``'s voxel size and origin.

    Examples
    --------
    >>> import numpy as np, voxscale
    >>> m = voxscale.Map(np.random.default_rng(0).random((8, 8, 8), np.float32), 1.0)
    >>> same = voxscale.resample(m, m)
    >>> bool(np.allclose(same.data, m.data))
    True
    """
    return resample_by_index(map, onto, index_map(map, onto, transform, scale), order,
                             fill=fill, coefficients=coefficients, nthreads=nthreads)


def resample_by_index(map: Map, onto: Map, matrix, order: int = 1, *, fill: float = 0.0,
                      coefficients=None, nthreads: int = 0) -> Map:
    """Sample a map on the grid of another through an affine map of voxel indices: the
    general form of :func:`resample` (for example its inverse, whose scaling is about the
    other map's centre).

    Parameters
    ----------
    map, onto : Map
        The map to sample, and the map whose grid the result takes (its data are unused).
    matrix : array_like, shape (3, 4)
        M with index of ``map`` = M · (ix, iy, iz, 1) for each voxel of ``onto`` (x, y, z
        order; :func:`index_map` gives it for a transform and a voxel-scale factor).
    order, fill, coefficients, nthreads
        See :func:`resample`.

    Returns
    -------
    Map
        Data of shape ``onto.shape`` with ``onto``'s voxel size and origin.
    """
    _check_order(order)
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    if matrix.shape != (3, 4) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"the index map must be a finite 3x4 matrix, got shape {matrix.shape}")
    nthreads = resolve_threads(nthreads)
    if order == 1:
        grid = map.data
    elif coefficients is None:
        grid = spline_coefficients(map.data, nthreads=nthreads)
    else:
        grid = np.asarray(coefficients)
        if grid.shape != map.shape or grid.dtype != np.float32:
            raise OptionError(f"coefficients must be float32 of the map's shape {map.shape}, "
                              f"got {grid.dtype} {grid.shape}")
    if not np.isfinite(fill):
        raise ValueError(f"fill must be finite, got {fill!r}")
    data = _core.resample_affine(grid, matrix, onto.shape, order, float(fill), nthreads)
    return Map._on_grid_of(data, onto)
