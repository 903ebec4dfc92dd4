"""Copies of a map with a known change, for checking a scan against a known answer.

Each function returns a new :class:`~voxscale.maps.Map`; the truth it builds in is what the
scan or the comparison must find (or flag). Used by the real-data tests and useful to anyone
who wants to see how voxscale behaves on their own map before trusting it on a pair.

- :func:`moved`: rotated about the box centre and shifted (the transform is returned);
- :func:`blurred`: a Wilson B added, ``exp(-B·s²/4)`` on the amplitudes;
- :func:`with_noise`: Gaussian noise, low-passed, at a multiple of the map's standard
  deviation;
- :func:`half_box`: one half of the box along an axis, the rest cut away (a part of the whole,
  for example one ring of a double ring);
- :func:`with_half_maps`: two half maps with independent noise and their average, the full
  map (what a reconstruction deposits);
- :func:`truncated`: a model with the side chains of some residues cut back to alanine (a
  known chemical change for difference maps);
- :func:`voxscale.maps.relabel_voxel_size` (a voxel-size error) and
  :func:`voxscale.fit.search.mirrored` (the other hand) complete the set.
"""
from __future__ import annotations

import numpy as np

from ..fit.rotations import rotation_from_vector
from ..maps.interpolation import resample
from ..maps.map import Map
from ..reciprocal.transform import (half_grid_frequencies, half_transform, low_pass,
                                    map_from_half_transform)

__all__ = ["moved", "blurred", "with_noise", "half_box", "with_half_maps", "truncated"]


def moved(m: Map, angle_deg: float, axis, shift_A=(0.0, 0.0, 0.0), *, order: int = 3):
    """The map rotated by ``angle_deg`` about ``axis`` through its box centre and shifted.

    Parameters
    ----------
    m : Map
    angle_deg : float
        Rotation angle (degrees).
    axis : array_like, shape (3,)
        Rotation axis, (x, y, z); need not be normalised.
    shift_A : array_like, shape (3,)
        Shift (Å), (x, y, z), after the rotation.
    order : int
        Spline order of the resampling.

    Returns
    -------
    copy : Map
        On the same grid as ``m``; density that leaves the box is lost.
    transform : numpy.ndarray, shape (4, 4)
        ``x_m = T·x_copy``: the copy's density at x is ``m``'s at T·x, so T is the fit of
        the copy into ``m`` (x_ref = R·x_tgt + t).
    """
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    rotation = rotation_from_vector(np.radians(angle_deg) * a)
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = m.center - rotation @ m.center + np.asarray(shift_A, dtype=float)
    return resample(m, m, np.linalg.inv(transform), order=order), transform


def blurred(m: Map, b_factor: float) -> Map:
    """The map with its amplitudes multiplied by exp(−B·s²/4) (B in Å², s in Å⁻¹)."""
    f = half_transform(m)
    sx, sy, sz = half_grid_frequencies(m.shape, m.cell)
    f *= np.exp(-b_factor * ((sz ** 2 + sy ** 2) + sx ** 2) / 4.0).astype(np.float32)
    return map_from_half_transform(f, m, overwrite=True)


def with_noise(m: Map, level: float, *, seed: int, d_min: float = None) -> Map:
    """The map plus Gaussian noise, white to the Nyquist limit or low-passed to ``d_min`` (Å),
    scaled to ``level`` times the map's standard deviation. ``seed`` makes it reproducible."""
    rng = np.random.default_rng(seed)
    noise = Map(rng.standard_normal(m.shape).astype(np.float32), m.voxel_size, m.origin)
    noise = (noise if d_min is None else low_pass(noise, float(d_min))).data
    noise *= np.float32(level * float(np.std(m.data, dtype=np.float64))
                        / float(np.std(noise, dtype=np.float64)))
    return Map(m.data + noise, m.voxel_size, m.origin)


def half_box(m: Map, axis: str = "z", *, upper: bool = True, margin: int = 0) -> Map:
    """One half of the box along ``axis`` ("x", "y" or "z"), as a map of its own with
    ``margin`` voxels of the other half kept (set to zero) around the cut; the origin keeps
    the part where it was."""
    k = {"z": 0, "y": 1, "x": 2}[axis]  # data axes are (z, y, x)
    n = m.shape[k]
    half = n // 2
    lo, hi = (half - margin, n) if upper else (0, half + margin)
    index = [slice(None)] * 3
    index[k] = slice(lo, hi)
    data = m.data[tuple(index)].copy()
    cut = [slice(None)] * 3
    cut[k] = slice(0, margin) if upper else slice(data.shape[k] - margin, data.shape[k])
    data[tuple(cut)] = 0.0
    origin = np.array(m.origin, dtype=float)
    origin[2 - k] += lo * float(m.voxel_size[2 - k])  # origin is (x, y, z)
    return Map(data, m.voxel_size, origin)


def with_half_maps(m: Map, level: float, *, seed: int, d_min: float = None):
    """Two half maps of ``m`` with independent noise and the full map, their average.

    Parameters
    ----------
    m : Map
        The signal.
    level : float
        Each half's noise σ as a multiple of the map's σ (the full map's noise is
        level/√2).
    seed : int
        The halves use ``seed`` and ``seed + 1``.
    d_min : float, optional
        Low-pass the noise to this resolution (Å); white to Nyquist by default.

    Returns
    -------
    full, half1, half2 : Map
    """
    half1 = with_noise(m, level, seed=seed, d_min=d_min)
    half2 = with_noise(m, level, seed=seed + 1, d_min=d_min)
    full = Map(0.5 * (half1.data + half2.data), m.voxel_size, m.origin)
    return full, half1, half2


#: Atoms an alanine keeps.
ALANINE_ATOMS = ("N", "CA", "C", "O", "CB", "OXT")


def truncated(structure, residues):
    """A copy of the model with the side chains of ``residues`` cut back to alanine.

    Parameters
    ----------
    structure : gemmi.Structure
    residues : iterable of (str, int)
        (chain, residue number) pairs.

    Returns
    -------
    gemmi.Structure
        Each listed residue renamed ALA, with only N, CA, C, O, CB (and OXT) left.
    """
    wanted = {(c, int(n)) for c, n in residues}
    out = structure.clone()
    for chain in out[0]:
        for residue in chain:
            if (chain.name, residue.seqid.num) in wanted:
                for i in reversed(range(len(residue))):
                    if residue[i].name not in ALANINE_ATOMS:
                        del residue[i]
                residue.name = "ALA"
    return out
