"""Model maps: the density of an atomic model sampled on a map's grid.

Densities come from gemmi's electron-scattering density calculator (``DensityCalculatorE``)
on a P1 box that is exactly the map's box, so the model must lie inside it with a margin of a
few Å (the box is periodic for the calculator). A resolution d is imposed as in ChimeraX
``molmap``: each atom is blurred by a Gaussian of σ = 0.225·d (an extra B of 8π²σ² ≈ 4·d² Å²
on top of its own B factor), then the map is cut off sharply at d in Fourier space.
"""
from __future__ import annotations

import gemmi
import numpy as np

from ..maps.map import Map
from ..maps.models import transform_structure
from .transform import low_pass
from ..threads import resolve_threads

__all__ = ["model_map"]


def model_map(structure: gemmi.Structure, *, voxel_size, shape, origin, d_min=None,
              blur=None, nthreads: int = 0) -> Map:
    """Density of a model sampled on a given grid.

    Parameters
    ----------
    structure : gemmi.Structure
        The model (first model used), coordinates in Å.
    voxel_size : float or array_like, shape (3,)
        Grid spacing x, y, z in Å.
    shape : tuple of int
        Grid shape (nz, ny, nx).
    origin : array_like, shape (3,)
        Position of voxel (0, 0, 0), x, y, z in Å.
    d_min : float, optional
        Resolution d in Å: extra blur 8π²(0.225·d)² Å² and a Fourier cut-off at d.
    blur : float, optional
        Extra B in Å² instead of the one implied by ``d_min``.
    nthreads : int, optional
        Threads for the Fourier cut-off.

    Returns
    -------
    Map
    """
    nthreads = resolve_threads(nthreads)
    voxel = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,))
    origin = np.asarray(origin, dtype=np.float64)
    nz, ny, nx = (int(n) for n in shape)
    cell = voxel * (nx, ny, nz)
    shift = np.eye(4)
    shift[:3, 3] = -origin  # the calculator's box starts at 0
    st = transform_structure(structure, shift)
    dc = gemmi.DensityCalculatorE()
    dc.d_min = 0.0  # keep our grid: the calculator sizes its own grid when d_min is set
    if blur is None:
        blur = 0.0 if d_min is None else 8 * np.pi**2 * (0.225 * float(d_min)) ** 2
    dc.blur = float(blur)
    dc.grid.unit_cell = gemmi.UnitCell(*cell, 90, 90, 90)
    dc.grid.spacegroup = gemmi.SpaceGroup("P 1")
    dc.grid.set_size(nx, ny, nz)
    dc.put_model_density_on_grid(st[0])
    data = np.ascontiguousarray(np.array(dc.grid, copy=False).transpose(2, 1, 0), np.float32)
    out = Map(data, voxel, origin)
    if d_min is not None:
        out = low_pass(out, float(d_min), nthreads=nthreads)
    return out
