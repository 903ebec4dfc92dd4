"""Structure factors of maps: the Fourier transform with the conventions of docs/method.md §2.

F(h) = (V/N) Σ_x ρ(x) exp(+2πi h·x) and ρ(x) = (1/V) Σ_h F(h) exp(−2πi h·x), with V the box
volume (Å³), N the number of voxels and x the fractional position of a voxel in the box (its
first voxel at x = 0). This is the convention of CCP4 sfall and of
``gemmi.transform_map_to_f_phi`` (P1 box, ``use_scale=True``); a round trip is exact.
Miller indices (h, k, l) run along x, y, z.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from ..maps.map import Map
from .shells import D_MIN_TOLERANCE, check_resolution_range
from ..threads import resolve_threads

__all__ = ["StructureFactors", "half_transform", "map_from_half_transform",
           "structure_factors", "map_from_structure_factors", "half_grid_frequencies",
           "resolution_mask", "low_pass", "low_pass_of_transform", "gaussian_smooth",
           "gaussian_smooth_transform",
           "fourier_crop", "fast_length"]


def half_transform(map: Map, *, nthreads: int = 0) -> np.ndarray:
    """The map's structure factors on the half-grid.

    Parameters
    ----------
    map : Map
        The map, (nz, ny, nx).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    numpy.ndarray of complex64, shape (nz, ny, nx//2 + 1)
        F(h, k, l) at [l mod nz, k mod ny, h], h >= 0.
    """
    nthreads = resolve_threads(nthreads)
    return _core.map_to_sf(map.data, float(np.prod(map.cell)), nthreads)


def map_from_half_transform(f: np.ndarray, like: Map, *, overwrite: bool = False,
                            nthreads: int = 0) -> Map:
    """Inverse of :func:`half_transform`: a map on the grid of ``like``.

    Parameters
    ----------
    f : numpy.ndarray of complex64, shape (nz, ny, nx//2 + 1)
        Half-transform; Friedel mates in the planes h = 0 (and h = nx/2) must be consistent.
    like : Map
        Map whose grid (shape, voxel size, origin) the result takes.
    overwrite : bool, optional
        Use ``f`` as the work array and leave it overwritten (default False). Saves the full
        complex temporary (8 bytes a voxel) when the caller no longer needs ``f``; only a
        C-contiguous, writeable complex64 array is transformed in place.
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    Map
    """
    nthreads = resolve_threads(nthreads)
    nz, ny, nx = like.shape
    if np.shape(f) != (nz, ny, nx // 2 + 1):
        raise ValueError(f"f has shape {np.shape(f)}; a map of shape {like.shape} needs "
                         f"{(nz, ny, nx // 2 + 1)}")
    owned = not (isinstance(f, np.ndarray) and f.dtype == np.complex64
                 and f.flags.c_contiguous)
    f = np.ascontiguousarray(f, dtype=np.complex64)
    # float64 sums of float32 values cannot overflow: the sum is finite iff every value is,
    # and the reduction is buffered (no full-size boolean temporary).
    if not np.isfinite(np.add.reduce(f.view(np.float32).reshape(-1), dtype=np.float64)):
        raise ValueError("structure factors must be finite")
    overwrite = (overwrite or owned) and f.flags.writeable
    data = _core.sf_to_map(f, nx, float(np.prod(like.cell)), nthreads, overwrite_f=overwrite)
    return Map._on_grid_of(data, like)


def _signed(i: np.ndarray, n: int) -> np.ndarray:
    return np.where(i < (n + 1) // 2, i, i - n)


class StructureFactors:
    """Unique structure factors of a map in P1.

    Built by :func:`structure_factors` as a view over the map's half-transform: ``hkl``, ``f``
    and ``d`` are computed when first read (they take 24 bytes a reflection more than the
    transform), and :func:`map_from_structure_factors` transforms the view straight back
    unless ``hkl`` or ``f`` was read or set (and so may have been changed). Built directly, from
    arrays, or by :meth:`subset`, it holds those arrays.

    Parameters
    ----------
    hkl : numpy.ndarray of int, shape (n, 3)
        Miller indices (h along x, k along y, l along z) of the half-space h >= 0, F(000)
        excluded; in the planes h = 0 (and h = nx/2) both members of a Friedel pair may appear.
    f : numpy.ndarray of complex64, shape (n,)
        F(hkl) with the normalisation of docs/method.md §2.
    d : numpy.ndarray of float64, shape (n,)
        Resolution of each reflection in Å (d = 1/|s|).
    f000 : float
        F(000) = V × mean density.
    grid_shape : tuple of int
        Shape (nz, ny, nx) of the map they came from.
    cell : array_like, shape (3,)
        Box lengths (a, b, c) in Å.
    origin : array_like, shape (3,), optional
        Position (Å) of the map's first voxel, to which the phases refer (default 0).
    """

    def __init__(self, hkl, f, d, f000: float, grid_shape, cell, origin=None):
        self._hkl, self._f, self._d = hkl, f, d
        self._half = self._keep = self._count = None
        # a view whose hkl or f were handed out (and so may have been changed in place) is
        # transformed back from its arrays, not from its half transform
        self._touched = False
        self.f000 = float(f000)
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.cell = np.array(cell, dtype=np.float64)
        self.origin = np.zeros(3) if origin is None else np.array(origin, dtype=np.float64)

    @classmethod
    def _view(cls, half: np.ndarray, keep: np.ndarray, map: Map,
              f000: Optional[float] = None) -> "StructureFactors":
        """The reflections of ``half`` where ``keep`` (see :func:`unique_reflection_mask`), on the
        grid of ``map``; F(000) from ``half`` unless given."""
        f000 = float(half[0, 0, 0].real) if f000 is None else f000
        sf = cls(None, None, None, f000, map.shape, map.cell, map.origin)
        sf._half, sf._keep = half, keep
        return sf

    @property
    def _untouched_view(self) -> bool:
        return self._half is not None and not self._touched

    def _miller(self) -> np.ndarray:
        if self._hkl is None:
            # each index selected from a broadcast view in the mask's (C) order: no
            # per-reflection int64 coordinates (memory)
            nz, ny, nx = self.grid_shape
            hkl = np.empty((np.count_nonzero(self._keep), 3), np.int32)
            for column, index in enumerate((
                    np.arange(nx // 2 + 1, dtype=np.int32)[None, None, :],
                    _signed(np.arange(ny, dtype=np.int32), ny)[None, :, None],
                    _signed(np.arange(nz, dtype=np.int32), nz)[:, None, None])):
                hkl[:, column] = np.broadcast_to(index, self._keep.shape)[self._keep]
            self._hkl = hkl
        return self._hkl

    def _values(self) -> np.ndarray:
        if self._f is None:
            self._f = self._half[self._keep]
        return self._f

    def _detach(self) -> "StructureFactors":
        """The view's values selected now and its half transform let go (memory: a map's
        worth); its indices stay lazy. Returns itself."""
        self._values()
        self._half = None
        return self

    @property
    def hkl(self) -> np.ndarray:
        """numpy.ndarray of int32, shape (n, 3) : Miller indices (h, k, l); may be changed or
        replaced (with ``f`` and ``d`` of the same length)."""
        self._values()  # a view's values are fixed before its indices may change
        self._touched = True
        return self._miller()

    @hkl.setter
    def hkl(self, value) -> None:
        self._values()
        self._touched = True
        self._hkl = value

    @property
    def f(self) -> np.ndarray:
        """numpy.ndarray of complex64, shape (n,) : F(hkl); may be changed or replaced."""
        self._touched = True
        return self._values()

    @f.setter
    def f(self, value) -> None:
        self._miller()  # a view's indices are fixed before its values are replaced
        self._touched = True
        self._f = value

    @property
    def d(self) -> np.ndarray:
        """numpy.ndarray of float64, shape (n,) : resolution of each reflection in Å."""
        if self._d is None:
            self._d = 1.0 / np.sqrt(((self._miller() / self.cell) ** 2).sum(axis=1))
        return self._d

    @d.setter
    def d(self, value) -> None:
        self._d = value

    def subset(self, selection) -> "StructureFactors":
        """The reflections ``selection`` (a mask, slice or indices) as structure factors of
        their own (holding arrays, not a view).

        Returns
        -------
        StructureFactors
        """
        return StructureFactors(self._miller()[selection], self._values()[selection],
                                self.d[selection], self.f000, self.grid_shape, self.cell,
                                self.origin)

    def __len__(self) -> int:
        if self._f is not None:
            return len(self._f)
        if self._count is None:
            self._count = int(np.count_nonzero(self._keep))
        return self._count

    def __repr__(self) -> str:
        return (f"StructureFactors({len(self)} reflections, grid {self.grid_shape}, "
                f"cell {tuple(np.round(self.cell, 3))} Å)")

    @property
    def amplitudes(self) -> np.ndarray:
        """numpy.ndarray : |F|, float32."""
        return np.abs(self._values())

    @property
    def phases(self) -> np.ndarray:
        """numpy.ndarray : Phases in degrees, (-180, 180], float32."""
        return np.degrees(np.angle(self._values()))


def structure_factors(map: Map, d_min=None, *, nthreads: int = 0) -> StructureFactors:
    """Fourier-invert a map to its P1 structure factors.

    Parameters
    ----------
    map : Map
        The map (nz, ny, nx).
    d_min : float, optional
        Keep reflections with d >= d_min (Å). Default: all.
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    StructureFactors
        One reflection of each Friedel pair of the half-space h >= 0, F(000) apart; a view over
        the half-transform (its per-reflection arrays are built when first read).

    Examples
    --------
    >>> import numpy as np, voxscale
    >>> m = voxscale.Map(np.random.default_rng(1).random((6, 6, 6), np.float32), 1.5)
    >>> sf = voxscale.structure_factors(m)
    >>> back = voxscale.map_from_structure_factors(sf, like=m)
    >>> bool(np.allclose(back.data, m.data, atol=1e-5))
    True
    """
    nthreads = resolve_threads(nthreads)
    if d_min is not None:
        d_min = check_resolution_range(None, d_min)[1]
    half = half_transform(map, nthreads=nthreads)
    return StructureFactors._view(half, unique_reflection_mask(map.shape, map.cell, None, d_min),
                                  map)


def map_from_structure_factors(sf: StructureFactors, like: Map, *, include_f000: bool = True,
                               nthreads: int = 0) -> Map:
    """Synthesise a map from structure factors on the grid of ``like``.

    Parameters
    ----------
    sf : StructureFactors
        Reflections (as from :func:`structure_factors`, possibly modified or a subset).
    like : Map
        Map whose grid the result takes; it must have the shape and box of ``sf``.
    include_f000 : bool, optional
        Add F(000), that is the mean density (default True).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    Map
        ρ(x) = (1/V) Σ F(h) exp(−2πi h·x) over the given reflections and their Friedel mates.
    """
    nthreads = resolve_threads(nthreads)
    nz, ny, nx = like.shape
    if tuple(sf.grid_shape) != tuple(like.shape) or not np.allclose(sf.cell, like.cell):
        raise ValueError(f"structure factors of a {sf.grid_shape} grid with cell {tuple(sf.cell)} "
                         f"do not fit a map of shape {like.shape} and cell {tuple(like.cell)}")
    if sf._untouched_view:  # its transform, masked
        half = np.where(_with_friedel_mates(sf._keep, nx), sf._half, np.complex64(0))
        half[0, 0, 0] = sf.f000 if include_f000 else 0
        return map_from_half_transform(half, like, overwrite=True, nthreads=nthreads)
    h, k, l = (np.asarray(sf.hkl[:, a], dtype=np.int64) for a in range(3))
    if np.any(h < 0) or np.any(h > nx // 2):
        raise ValueError("structure factors must lie in the half-space 0 <= h <= nx/2")
    half = np.zeros((nz, ny, nx // 2 + 1), dtype=np.complex64)
    half[l % nz, k % ny, h] = sf.f
    # In the planes h = 0 and h = nx/2 the transform needs both members of each Friedel pair.
    plane = (h == 0) | ((nx % 2 == 0) & (h == nx // 2))
    half[(-l[plane]) % nz, (-k[plane]) % ny, h[plane]] = np.conj(sf.f[plane])
    if include_f000:
        half[0, 0, 0] = sf.f000
    return map_from_half_transform(half, like, overwrite=True, nthreads=nthreads)


def _with_friedel_mates(keep: np.ndarray, nx: int) -> np.ndarray:
    """A half-grid mask with the Friedel mate of each kept reflection of the planes h = 0 and
    h = nx/2 (the only ones whose mates lie on the half-grid) added."""
    nz, ny, _ = keep.shape
    mate_z, mate_y = (-np.arange(nz)) % nz, (-np.arange(ny)) % ny
    full = keep.copy()
    planes = [0, nx // 2] if nx % 2 == 0 and nx > 1 else [0]
    for h in planes:
        full[:, :, h] |= keep[mate_z][:, mate_y, h]
    return full


def fast_length(n: int) -> int:
    """Smallest 2,3,5-smooth integer >= n: a length the FFT transforms fast.

    Examples
    --------
    >>> fast_length(97)
    100
    """
    n = int(n)
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def half_grid_frequencies(shape, cell):
    """Reciprocal coordinates over the half-transform.

    Parameters
    ----------
    shape : tuple of int
        Map shape (nz, ny, nx).
    cell : array_like, shape (3,)
        Box lengths (a, b, c) in Å.

    Returns
    -------
    sx, sy, sz : numpy.ndarray
        Broadcastable to (nz, ny, nx//2 + 1): s along x, y, z in Å⁻¹.
    """
    nz, ny, nx = shape
    sx = (np.arange(nx // 2 + 1) / cell[0])[None, None, :]
    sy = (np.fft.fftfreq(ny, 1.0 / ny) / cell[1])[None, :, None]
    sz = (np.fft.fftfreq(nz, 1.0 / nz) / cell[2])[:, None, None]
    return sx, sy, sz


def resolution_mask(shape, cell, d_max, d_min) -> np.ndarray:
    """Half-grid mask of the reflections with d_min <= d <= d_max (Friedel mates included).

    Parameters
    ----------
    shape : tuple of int
        Map shape (nz, ny, nx).
    cell : array_like, shape (3,)
        Box lengths in Å.
    d_max : float or None
        Low-resolution limit in Å (None: none).
    d_min : float or None
        High-resolution limit in Å (reflections at exactly d_min included; None: none).

    Returns
    -------
    numpy.ndarray of bool, shape (nz, ny, nx//2 + 1)
        F(000) excluded.
    """
    s_lo = 0.0 if d_max is None or not np.isfinite(d_max) else 1.0 / float(d_max)
    keep = _band_mask(shape, cell, s_lo,
                      np.inf if d_min is None else (1 + D_MIN_TOLERANCE) / float(d_min))
    keep[0, 0, 0] = False
    return keep


def unique_reflection_mask(shape, cell, d_max, d_min) -> np.ndarray:
    """:func:`resolution_mask` with one reflection of each Friedel pair: the unique
    reflections in the range, F(000) excluded (the members :func:`shell_index` counts).

    Parameters
    ----------
    shape, cell, d_max
        See :func:`resolution_mask`.
    d_min : float or None
        See :func:`resolution_mask`.

    Returns
    -------
    numpy.ndarray of bool, shape (nz, ny, nx//2 + 1)
    """
    keep = resolution_mask(shape, cell, d_max, d_min)
    # in the planes h = 0 and (even nx) h = nx/2 both mates are stored: keep the one with the
    # smaller linear (l, k) index, as shells.hpp does (a plane of work, not a map's)
    nz, ny, nx = shape
    iz, iy = np.arange(nz)[:, None], np.arange(ny)[None, :]
    first = iz * ny + iy <= ((nz - iz) % nz) * ny + (ny - iy) % ny
    for h in (0, nx // 2) if nx % 2 == 0 else (0,):
        keep[:, :, h] &= first
    return keep


def _band_mask(shape, cell, s_lo: float, s_hi: float) -> np.ndarray:
    """Half-grid mask of s_lo <= |s| <= s_hi (Å⁻¹; s_hi may be inf), F(000) included when
    s_lo is 0.

    Row by row: along h (x, never negative on the half grid) s² grows, so each (k, l) row
    keeps one interval of h, and no full-size float array is made (a third of the time of
    comparing s² everywhere).
    """
    _, sy, sz = half_grid_frequencies(shape, cell)
    row = sz ** 2 + sy ** 2
    hi = s_hi ** 2 - row
    h = np.arange(shape[2] // 2 + 1)[None, None, :]
    keep = h <= np.where(hi >= 0, np.floor(np.sqrt(np.maximum(hi, 0.0)) * cell[0] + 1e-9),
                         -1.0)
    if s_lo > 0:
        lo = s_lo ** 2 - row
        keep &= h >= np.ceil(np.sqrt(np.maximum(lo, 0.0)) * cell[0] - 1e-9)
    return keep


def low_pass(map: Map, d_min: float, *, nthreads: int = 0) -> Map:
    """The map with every Fourier component finer than d_min (Å) removed (F(000) kept).

    Parameters
    ----------
    map : Map
    d_min : float
        Resolution in Å.
    nthreads : int, optional

    Returns
    -------
    Map

    Raises
    ------
    ResolutionRangeError
        If d_min is not a resolution (see :func:`voxscale.reciprocal.check_resolution_range`).
    """
    nthreads = resolve_threads(nthreads)
    d_min = check_resolution_range(None, d_min)[1]  # 0, NaN or absurd values are refused
    f = half_transform(map, nthreads=nthreads)
    f *= _sphere_mask(map.shape, map.cell, d_min)
    return map_from_half_transform(f, map, overwrite=True, nthreads=nthreads)


def low_pass_of_transform(f: np.ndarray, like: Map, d_min: float, *, nthreads: int = 0) -> Map:
    """:func:`low_pass` of the map whose half transform ``f`` is (read, not changed).

    Parameters
    ----------
    f : numpy.ndarray of complex64, shape (nz, ny, nx//2 + 1)
        ``half_transform(like)``.
    like : Map
        The map's grid.
    d_min : float
        Resolution (Å).
    nthreads : int, optional

    Returns
    -------
    Map
    """
    d_min = check_resolution_range(None, d_min)[1]
    return map_from_half_transform(f * _sphere_mask(like.shape, like.cell, d_min), like,
                                   overwrite=True, nthreads=nthreads)


def gaussian_smooth(map: Map, fwhm: float, *, nthreads: int = 0) -> Map:
    """The map convolved with a normalised 3-D Gaussian (periodic, by FFT).

    Parameters
    ----------
    map : Map
    fwhm : float
        Full width at half maximum (Å); the Gaussian's σ is fwhm / (2 √(2 ln 2)).
    nthreads : int, optional

    Returns
    -------
    Map
        Same grid; its mean equals the map's.
    """
    return gaussian_smooth_transform(half_transform(map, nthreads=nthreads), map, fwhm,
                                     nthreads=nthreads)


def gaussian_smooth_transform(f: np.ndarray, like: Map, fwhm: float, *,
                              nthreads: int = 0) -> Map:
    """:func:`gaussian_smooth` of the map whose half transform ``f`` is (``f`` is used up:
    it is filtered and transformed back in place).

    Parameters
    ----------
    f : numpy.ndarray of complex64, shape (nz, ny, nx//2 + 1)
    like : Map
        The map's grid.
    fwhm : float
        Full width at half maximum (Å).
    nthreads : int, optional

    Returns
    -------
    Map
    """
    if not (np.isfinite(fwhm) and fwhm > 0):
        raise ValueError(f"fwhm must be a positive length in Å, got {fwhm!r}")
    sigma = float(fwhm) / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    c = -2.0 * np.pi ** 2 * sigma ** 2
    # exp(−2π²σ²s²) factorises by axis: three small vectors, no full-size temporary
    for s_axis in half_grid_frequencies(like.shape, like.cell):
        f *= np.exp(c * s_axis * s_axis).astype(np.float32)
    return map_from_half_transform(f, like, overwrite=True, nthreads=nthreads)


def _sphere_mask(shape, cell, d_min: float) -> np.ndarray:
    """Half-grid mask of every reflection with d >= d_min, F(000) included."""
    return _band_mask(shape, cell, 0.0, (1 + D_MIN_TOLERANCE) / float(d_min))


def fourier_crop(map: Map, shape, d_min: Optional[float] = None, *, transform=None,
                 nthreads: int = 0) -> Map:
    """The map sampled on a coarser grid over the same box, by cropping its transform.

    The low-resolution part of the half-transform is kept (optionally to ``d_min`` as well)
    and transformed back on a grid of ``shape``: an exact band-limited resampling, with no
    aliasing, at the cost of one full-size forward transform.

    Parameters
    ----------
    map : Map
    shape : tuple of int
        (mz, my, mx) of the coarse grid, each at most the map's.
    d_min : float, optional
        Also remove every component finer than this (Å).
    transform : numpy.ndarray, optional
        ``half_transform(map)`` when the caller has it (read, not changed).
    nthreads : int, optional

    Returns
    -------
    Map
        Voxel size ``cell / (mx, my, mz)``, the same origin and box.
    """
    nthreads = resolve_threads(nthreads)
    mz, my, mx = (int(n) for n in shape)
    nz, ny, nx = map.shape
    if not (1 <= mz <= nz and 1 <= my <= ny and 1 <= mx <= nx):
        raise ValueError(f"the coarse shape {shape} must not exceed the map's {map.shape}")
    f = half_transform(map, nthreads=nthreads) if transform is None else transform
    rows_z = np.arange(-(mz // 2), (mz + 1) // 2) % nz
    rows_y = np.arange(-(my // 2), (my + 1) // 2) % ny
    small = np.ascontiguousarray(f[np.ix_(rows_z, rows_y, np.arange(mx // 2 + 1))])
    small = np.fft.ifftshift(small, axes=(0, 1))
    # the Nyquist planes of even sizes have no Friedel mates inside the crop: drop them
    if mz % 2 == 0:
        small[mz // 2] = 0
    if my % 2 == 0:
        small[:, my // 2] = 0
    if mx % 2 == 0:
        small[:, :, mx // 2] = 0
    like = Map(np.zeros((mz, my, mx), np.float32), map.cell / np.array([mx, my, mz]),
               map.origin)
    if d_min is not None:
        small *= _sphere_mask(like.shape, like.cell, check_resolution_range(None, d_min)[1])
    return map_from_half_transform(small, like, overwrite=True, nthreads=nthreads)
