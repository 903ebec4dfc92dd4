"""Molecular masks on a map's grid: where the molecule is, and the solvent around it.

A mask is a boolean array of the map's shape (nz, ny, nx). It comes from atomic models (every
voxel within a radius of an atom), from a density (voxels above a threshold set by the
density's own solvent noise), or from a user's mask file; :func:`dilate` widens any of them by
a distance in Å. Dilation is a convolution with a ball, done by FFT in slabs of planes
(whatever the radius), so it costs about a low-pass filter in time and a few slabs in memory.
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
#: Planes of the mask dilated per transform (see :func:`dilate`).
DILATE_SLAB = 64


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
    pad_z, pad_y, pad_x = (int(np.ceil(radius / float(v))) + 1
                           for v in np.asarray(like.voxel_size)[::-1])
    nz, ny, nx = mask.shape
    # z-slabs of DILATE_SLAB planes, each with pad_z planes of the neighbours either side: the
    # full-size padded grids of one transform took 5 maps of memory at 400³ (the peak of a
    # compare). Data fill [0, hi − lo) of a block; its length leaves pad_z zero planes for the
    # wrap-around of the circular convolution, as pad_y and pad_x do in y and x.
    depth = min(nz, DILATE_SLAB)
    shape = (scipy.fft.next_fast_len(depth + 3 * pad_z, real=True),
             scipy.fft.next_fast_len(ny + pad_y, real=True),
             scipy.fft.next_fast_len(nx + pad_x, real=True))
    ball = scipy.fft.rfftn(_ball(shape, like.voxel_size, radius), workers=nthreads)
    out = np.empty(mask.shape, dtype=bool)
    block = np.empty(shape, np.float32)
    for z0 in range(0, nz, depth):
        z1 = min(nz, z0 + depth)
        lo, hi = max(0, z0 - pad_z), min(nz, z1 + pad_z)
        block.fill(0.0)
        block[:hi - lo, :ny, :nx] = mask[lo:hi]
        spectrum = scipy.fft.rfftn(block, workers=nthreads)
        spectrum *= ball
        spread = scipy.fft.irfftn(spectrum, shape, workers=nthreads, overwrite_x=True)
        del spectrum
        out[z0:z1] = spread[z0 - lo:z1 - lo, :ny, :nx] > 0.5
    return out


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
