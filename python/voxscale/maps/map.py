"""The :class:`Map` type: a density on a regular orthogonal grid (docs/method.md §2).

* ``Map.data`` is a float32, C-contiguous array of shape ``(nz, ny, nx)``: x runs fastest.
* ``voxel_size`` and ``origin`` are float64 arrays in x, y, z order, in Å. Voxel
  ``(ix, iy, iz)`` (that is ``data[iz, iy, ix]``) sits at ``origin + (ix*vx, iy*vy, iz*vz)``.

Reading and writing MRC/CCP4 files is in :mod:`voxscale.maps.mrc`.
"""
from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np

__all__ = ["Map", "relabel_voxel_size", "mean_std", "is_constant"]

PathLike = Union[str, "os.PathLike[str]"]

_NSTART_TOLERANCE = 1e-4  # voxels


def _xyz_vector(value, name: str, *, positive: bool) -> np.ndarray:
    """Validate a scalar or 3-vector (x, y, z) and return it as a read-only float64 array."""
    try:
        vec = np.array(np.broadcast_to(np.asarray(value, dtype=np.float64), (3,)))
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a number or 3 numbers (x, y, z, Å), got {value!r}") from None
    if not np.all(np.isfinite(vec)) or (positive and not np.all(vec > 0)):
        kind = "positive finite" if positive else "finite"
        raise ValueError(f"{name} must be {kind} (x, y, z, Å), got {tuple(vec.tolist())}")
    vec.flags.writeable = False
    return vec




class Map:
    """A density map on a regular orthogonal grid.

    Parameters
    ----------
    data : array_like, shape (nz, ny, nx)
        Density values, z slowest and x fastest. Converted to C-contiguous float32; an array
        that already is one is used as it is (not copied). Must be 3-D, every axis at least 1
        long, every value finite.
    voxel_size : float or array_like, shape (3,)
        Voxel size in Å, in x, y, z order; a single number means cubic voxels. Positive and
        finite.
    origin : array_like, shape (3,), optional
        Physical position (x, y, z, Å) of voxel ``(ix, iy, iz) = (0, 0, 0)``, that is of
        ``data[0, 0, 0]``. Default (0, 0, 0).

    Raises
    ------
    ValueError
        If an argument has the wrong shape or holds invalid values; the message names it.

    Notes
    -----
    Voxel ``(ix, iy, iz)``, stored at ``data[iz, iy, ix]``, sits at
    ``origin + (ix*vx, iy*vy, iz*vz)``. The three attributes can be reassigned; every
    assignment is validated the same way. ``voxel_size`` and ``origin`` are returned as
    read-only arrays so that they cannot be changed behind the validation.
    """

    __slots__ = ("_data", "_voxel_size", "_origin")

    def __init__(self, data, voxel_size, origin=(0.0, 0.0, 0.0)):
        self.data = data
        self.voxel_size = voxel_size
        self.origin = origin

    # -- validated attributes ----------------------------------------------------------------

    @property
    def data(self) -> np.ndarray:
        """numpy.ndarray : Density, float32, C-contiguous, shape (nz, ny, nx), x fastest."""
        return self._data

    @data.setter
    def data(self, value) -> None:
        if np.iscomplexobj(value):
            raise ValueError("data must be real, got a complex array")
        arr = np.require(value, dtype=np.float32, requirements=["C", "A"])
        if arr.ndim != 3:
            raise ValueError(f"data must be 3-D with shape (nz, ny, nx), got shape {arr.shape}")
        if min(arr.shape) < 1:
            raise ValueError(f"data axes must all have length >= 1, got shape {arr.shape}")
        n_bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
        if n_bad:
            raise ValueError(f"data contain {n_bad} non-finite value(s) (NaN or Inf)")
        self._data = arr

    @property
    def voxel_size(self) -> np.ndarray:
        """numpy.ndarray : Voxel size, float64, shape (3,), x, y, z order, Å (read-only)."""
        return self._voxel_size

    @voxel_size.setter
    def voxel_size(self, value) -> None:
        self._voxel_size = _xyz_vector(value, "voxel_size", positive=True)

    @property
    def origin(self) -> np.ndarray:
        """numpy.ndarray : Position of voxel (0, 0, 0): float64 (3,), x, y, z, Å (read-only)."""
        return self._origin

    @origin.setter
    def origin(self, value) -> None:
        self._origin = _xyz_vector(value, "origin", positive=False)

    # -- derived geometry ----------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int, int]:
        """tuple of int : Grid shape (nz, ny, nx), the shape of :attr:`data`."""
        return self._data.shape

    @property
    def grid_size(self) -> np.ndarray:
        """numpy.ndarray : Number of voxels along x, y, z, int64, shape (3,)."""
        return np.array(self._data.shape[::-1], dtype=np.int64)

    @property
    def cell(self) -> np.ndarray:
        """numpy.ndarray : Box lengths (nx*vx, ny*vy, nz*vz) in Å, x, y, z order, float64.

        This is the MRC ``cella`` of the map: the grid's number of voxels times the voxel
        size along each axis.
        """
        return self.grid_size * self._voxel_size

    @property
    def center(self) -> np.ndarray:
        """numpy.ndarray : Physical centre of the voxel grid, ``origin + voxel_size*(n - 1)/2``.

        Coordinates x, y, z in Å, float64. This is the midpoint between the first and the last
        voxel along each axis (for odd n, the central voxel itself), so it is unchanged when
        the map is scaled about it: ``origin' = center - s*voxel_size*(n - 1)/2`` keeps the
        molecule in place under a voxel-scale factor s. (The box edge, half a voxel beyond the
        outer voxels, would give ``origin + voxel_size*n/2``; that is not used here.)
        """
        return self._origin + self._voxel_size * (self.grid_size - 1) / 2.0

    @classmethod
    def _on_grid_of(cls, data: np.ndarray, like: "Map") -> "Map":
        """A map of freshly computed ``data`` (float32, C order) on ``like``'s grid.

        For results of the library's own kernels, whose values are finite by construction:
        it skips the full finiteness scan of the public constructor, which costs as much as
        a resampling of a large map.
        """
        if data.dtype != np.float32 or not data.flags.c_contiguous or data.shape != like.shape:
            raise ValueError("internal: data must be float32, C-contiguous, of like's shape")
        out = cls.__new__(cls)
        out._data, out._voxel_size, out._origin = data, like._voxel_size, like._origin
        return out

    @classmethod
    def _grid_only(cls, like: "Map") -> "Map":
        """The grid of ``like`` (shape, voxel size, origin) with no data of its own: a
        read-only zero view, for steps that need only where a map's voxels are (memory)."""
        out = cls.__new__(cls)
        out._data = np.broadcast_to(np.float32(0.0), like.shape)
        out._voxel_size, out._origin = like._voxel_size, like._origin
        return out

    @classmethod
    def _on_grid_of_box(cls, data: np.ndarray, like: "Map", first) -> "Map":
        """A map of ``data`` (float32, C order) on the box of ``like``'s grid whose first voxel
        is ``first`` (ix, iy, iz): like's voxel size, the origin of that voxel."""
        if data.dtype != np.float32 or not data.flags.c_contiguous:
            raise ValueError("internal: data must be float32 and C-contiguous")
        out = cls.__new__(cls)
        out._data, out._voxel_size = data, like._voxel_size
        out._origin = like._origin + like._voxel_size * np.asarray(first, dtype=np.float64)
        return out

    def copy(self) -> "Map":
        """Return an independent copy (the data array is copied).

        Returns
        -------
        Map
            A map with a copy of :attr:`data` and the same voxel size and origin.
        """
        return type(self)(self._data.copy(), self._voxel_size, self._origin)

    def __repr__(self) -> str:
        fmt = lambda v: "(" + ", ".join(f"{x:.6g}" for x in v) + ")"  # noqa: E731
        return (f"Map(shape (nz, ny, nx)={self.shape}, voxel_size={fmt(self._voxel_size)} Å, "
                f"origin={fmt(self._origin)} Å)")

    # -- file IO -------------------------------------------------------------------------------

    @classmethod
    def read(cls, path: PathLike) -> "Map":
        """Read an MRC2014 / CCP4 map file (plain, ``.gz`` or ``.bz2``).

        Parameters
        ----------
        path : str or os.PathLike
            The map file.

        Returns
        -------
        Map
            Data transposed to (nz, ny, nx) whatever the file's axis order, as float32; voxel
            size ``cella / (mx, my, mz)`` (x, y, z, Å); origin from the MRC2014 ``origin``
            field when it is non-zero, otherwise ``nstart × voxel size`` with each of
            ``nxstart``, ``nystart``, ``nzstart`` assigned to its physical axis through
            ``mapc``, ``mapr``, ``maps`` (see the module documentation).

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        voxscale.errors.MapFormatError
            If the file is not a readable density map: not an MRC file, truncated or corrupt,
            inconsistent header (dimensions, mode, axis order, voxel size, origin), complex or
            unknown mode, non-finite values. The message starts with the path and names the
            problem.
        """
        from .mrc import read_map
        return read_map(path)

    def write(self, path: PathLike, *, overwrite: bool = True) -> None:
        """Write the map as an MRC2014 file (mode 2, float32), gzip-compressed for ``.gz``.

        The header gets the standard axis order (1, 2, 3), ``cella = n × voxel size``, the
        ``origin`` field set to :attr:`origin`, and ``nxstart, nystart, nzstart`` set to
        ``round(origin / voxel_size)`` when that is an integer (within 1e-4) on all three
        axes, so that programs reading only ``nstart`` (CCP4, Coot) place the map the same
        way; otherwise ``nstart`` is 0. The statistics (dmin, dmax, dmean, rms) are updated.

        The file is written to a temporary file in the same directory, flushed to disk and
        then renamed into place, so an interrupted write never leaves a truncated map under
        ``path``; the temporary file is removed if anything fails.

        Parameters
        ----------
        path : str or os.PathLike
            Destination; a name ending in ``.gz`` is gzip-compressed.
        overwrite : bool, optional
            Replace an existing file (default). If False and ``path`` exists,
            :class:`FileExistsError` is raised and nothing is written.

        Raises
        ------
        FileExistsError
            If ``overwrite`` is False and ``path`` exists.
        OSError
            If the file cannot be written.
        """
        from .mrc import write_map
        write_map(self, path, overwrite=overwrite)

    def _integral_nstart(self) -> np.ndarray:
        """``origin / voxel_size`` rounded (x, y, z) if integral within tolerance, else zeros."""
        steps = self._origin / self._voxel_size
        rounded = np.round(steps)
        if np.all(np.abs(steps - rounded) <= _NSTART_TOLERANCE) and np.all(np.abs(rounded) < 2**31):
            return rounded.astype(np.int64)
        return np.zeros(3, dtype=np.int64)


def relabel_voxel_size(map: Map, voxel_size) -> Map:
    """The same data with another voxel size, keeping the box centre where it was.

    This is what correcting a header's voxel size does (ChimeraX ``volume voxelSize``), and
    how a voxel-size error is simulated: sample a model every v/f Å and label the map with v
    (docs/method.md §6); the correction factor is then s = 1/f.

    Parameters
    ----------
    map : Map
    voxel_size : float or array_like, shape (3,)
        New voxel size x, y, z in Å.

    Returns
    -------
    Map
        Sharing ``map.data`` (not copied).
    """
    voxel = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,))
    n = map.grid_size
    return Map(map.data, voxel, map.center - voxel * (n - 1) / 2.0)


def mean_std(data: np.ndarray, *, mask: Optional[np.ndarray] = None, chunk: int = 1 << 20):
    """Mean and standard deviation of an array, summed in float64 chunk by chunk.

    Parameters
    ----------
    data : numpy.ndarray
    mask : numpy.ndarray of bool, optional
        Only the elements where it is True (same shape as ``data``); selected chunk by chunk,
        so no copy of ``data[mask]`` is made.
    chunk : int, optional
        Elements per chunk (the float64 temporaries are this size, not the array's).

    Returns
    -------
    mean, std : float
        NaN for no elements.

    Examples
    --------
    >>> m, s = mean_std(np.arange(10, dtype=np.float32))
    >>> round(m, 6), round(s, 6)
    (4.5, 2.872281)
    >>> mean_std(np.arange(10.0), mask=np.arange(10) < 3)
    (1.0, 0.816496580927726)
    """
    flat = np.ravel(data)
    keep = None if mask is None else np.ravel(mask)
    if keep is not None and keep.dtype != bool:
        # an integer mask would index, not select
        raise TypeError(f"mask must be boolean, not {keep.dtype}")
    if keep is not None and keep.shape != flat.shape:
        raise ValueError(f"mask has {keep.size} elements, the data {flat.size}")

    def chunks():
        for i in range(0, flat.size, chunk):
            part = flat[i:i + chunk]
            yield part if keep is None else part[keep[i:i + chunk]]

    n = flat.size if keep is None else int(np.count_nonzero(keep))
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(float(np.sum(part, dtype=np.float64)) for part in chunks()) / n
    squares = 0.0
    for part in chunks():
        d = part.astype(np.float64) - mean
        squares += float(np.dot(d, d))
    return mean, float(np.sqrt(squares / n))


def is_constant(data: np.ndarray) -> bool:
    """True when every value of the array is the same (cheaper than a standard deviation)."""
    return bool(float(np.max(data)) == float(np.min(data)))
