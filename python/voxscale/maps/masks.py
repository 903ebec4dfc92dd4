"""Molecular masks on a map's grid: where the molecule is, and the solvent around it.

A mask is a boolean array of the map's shape (nz, ny, nx). It comes from atomic models (every
voxel within a radius of an atom), from a density (voxels above a threshold set by the
density's own solvent noise), or from a user's mask file; :func:`dilate` widens any of them by
a distance in Å. Dilation is a convolution with a ball, done by FFT (three transforms,
whatever the radius), so it costs the same at 256³ as a low-pass filter.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import scipy.fft

from .map import Map
from .models import model_atom_positions
from ..threads import resolve_threads

__all__ = ["dilate", "model_mask", "density_mask", "edge_mask", "DENSITY_MASK_SD"]

#: A density mask keeps voxels more than this many robust standard deviations of the solvent
#: above its median.
DENSITY_MASK_SD = 4.0


def _ball(shape, voxel_size, radius: float) -> np.ndarray:
    """A ball of ``radius`` (Å) about voxel (0, 0, 0), wrapped around the box."""
    axes = [np.minimum(np.arange(n), n - np.arange(n)) * float(v)
            for n, v in zip(shape, np.asarray(voxel_size)[::-1])]
    r2 = (axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2) + axes[2][None, None, :] ** 2
    return (r2 <= radius * radius).astype(np.float32)


def dilate(mask: np.ndarray, like: Map, radius: float, *, nthreads: int = 0) -> np.ndarray:
    """The mask widened by ``radius`` (Å): every voxel within that distance of a masked one.

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape (nz, ny, nx)
    like : Map
        The map whose grid the mask is on (its voxel size, x, y, z).
    radius : float
        Distance in Å; 0 returns the mask.
    nthreads : int, optional

    Returns
    -------
    numpy.ndarray of bool
        The box is not periodic: nothing wraps from one face to the other.
    """
    nthreads = resolve_threads(nthreads)
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0 or not mask.any():
        return mask.copy()
    pad = [int(np.ceil(radius / float(v))) + 1 for v in np.asarray(like.voxel_size)[::-1]]
    shape = tuple(scipy.fft.next_fast_len(n + p, real=True) for n, p in zip(mask.shape, pad))
    padded = np.zeros(shape, np.float32)
    padded[:mask.shape[0], :mask.shape[1], :mask.shape[2]] = mask
    # each array freed as soon as it is used, products in place: three padded grids at most
    spectrum = scipy.fft.rfftn(padded, workers=nthreads)
    del padded
    spectrum *= scipy.fft.rfftn(_ball(shape, like.voxel_size, radius), workers=nthreads)
    spread = scipy.fft.irfftn(spectrum, shape, workers=nthreads, overwrite_x=True)
    del spectrum
    return spread[:mask.shape[0], :mask.shape[1], :mask.shape[2]] > 0.5


def model_mask(like: Map, structures: Iterable, radius: float = 3.0, *,
               nthreads: int = 0) -> np.ndarray:
    """Voxels within ``radius`` (Å) of an atom of any of the models.

    Parameters
    ----------
    like : Map
        The grid.
    structures : iterable of gemmi.Structure
        Models in the map's frame (first model of each).
    radius : float, optional
        Å (default 3).
    nthreads : int, optional

    Returns
    -------
    numpy.ndarray of bool, shape (nz, ny, nx)
    """
    seeds = np.zeros(like.shape, dtype=bool)
    for st in structures:
        xyz = model_atom_positions(st)
        index = np.rint((xyz - like.origin) / like.voxel_size).astype(np.int64)
        inside = np.all((index >= 0) & (index < np.array(like.shape[::-1])), axis=1)
        ix, iy, iz = index[inside].T
        seeds[iz, iy, ix] = True
    return dilate(seeds, like, radius, nthreads=nthreads)


def density_mask(m: Map) -> np.ndarray:
    """Voxels where the density stands out of its solvent: more than DENSITY_MASK_SD robust
    standard deviations (1.4826 × the median absolute deviation) above the median.

    The median and its deviation describe the solvent when it fills most of the box, as in
    a deposited map; in a tight box around the molecule the mask is only its strongest part.

    Parameters
    ----------
    m : Map
        A density, best low-passed to the comparison's resolution first.

    Returns
    -------
    numpy.ndarray of bool, shape (nz, ny, nx)
    """
    data = m.data
    step = max(1, int(round((data.size / 2e6) ** (1 / 3))))  # the median of a sample suffices
    sample = data[::step, ::step, ::step].astype(np.float64)
    median = float(np.median(sample))
    spread = 1.4826 * float(np.median(np.abs(sample - median)))
    if not spread > 0:
        return data > median
    return data > median + DENSITY_MASK_SD * spread


def edge_mask(like: Map, margin: float) -> np.ndarray:
    """Voxels at least ``margin`` (Å) from every face of the box.

    Parameters
    ----------
    like : Map
    margin : float
        Å.

    Returns
    -------
    numpy.ndarray of bool, shape (nz, ny, nx)
    """
    keep = np.ones(like.shape, dtype=bool)
    for axis, v in zip((2, 1, 0), like.voxel_size):  # x, y, z
        n = like.shape[axis]
        k = min(int(np.ceil(margin / float(v))), (n + 1) // 2)
        if k > 0:
            index = [slice(None)] * 3
            index[axis] = slice(0, k)
            keep[tuple(index)] = False
            index[axis] = slice(n - k, n)
            keep[tuple(index)] = False
    return keep
