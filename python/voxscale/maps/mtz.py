"""Structure factors as MTZ (through gemmi), for checks with CCP4, Phenix and Coot."""
from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np

from ..files import atomic_write

__all__ = ["write_mtz"]

#: Reflections per chunk of the columns written.
MTZ_CHUNK = 1 << 20


def write_mtz(path, sf_ref, sf_tgt, *,
              difference: bool = True, origin=None, d_max=None) -> None:
    """Write the two maps' structure factors (and their difference) as an MTZ file.

    Columns: H K L; FREF PHIREF (reference); FTGT PHITGT (target, as given: pass the scaled
    ones); DELFWT PHDELWT (F_tgt − F_ref, the vector-difference coefficients Coot recognises)
    when ``difference``. Space group P1, cell = the map box (a, b, c, 90°, 90°, 90°); phases
    in degrees with the sign convention of CCP4 (exp(+2πi h·x) in the forward transform), and
    reflections moved into gemmi's P1 asymmetric unit. The file is written to a temporary
    name and renamed into place.

    Parameters
    ----------
    path : str or os.PathLike
    sf_ref, sf_tgt : voxscale.StructureFactors
        Same reflections (same grid).
    difference : bool, optional
        Add DELFWT/PHDELWT (default True).
    origin : array_like, shape (3,), optional
        Position (Å) of the maps' first voxel (default ``sf_ref.origin``). voxscale's
        structure factors are relative to it; the MTZ phases are shifted by
        exp(+2πi h·origin/cell) so that a map synthesised from the file (a P1 cell from 0,
        as Coot and CCP4 fft make it) puts the density where the models are.
    d_max : float, optional
        Low-resolution limit (Å) of the difference coefficients: DELFWT is 0 for d > d_max,
        as in the difference map.
    """
    if not np.array_equal(sf_ref.hkl, sf_tgt.hkl):
        raise ValueError("the two sets of structure factors must have the same reflections")
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = gemmi.find_spacegroup_by_name("P 1")
    mtz.set_cell_for_all(gemmi.UnitCell(*sf_ref.cell, 90, 90, 90))
    mtz.add_dataset("voxscale")
    labels = [("FREF", "PHIREF"), ("FTGT", "PHITGT")] + (
        [("DELFWT", "PHDELWT")] if difference else [])
    for amp_label, phase_label in labels:
        mtz.add_column(amp_label, "F")
        mtz.add_column(phase_label, "P")
    origin = sf_ref.origin if origin is None else origin
    hkl = sf_ref.hkl
    fraction = np.asarray(origin, dtype=np.float64) / np.asarray(sf_ref.cell)
    limited = difference and d_max is not None and np.isfinite(d_max)
    # the columns filled a chunk of reflections at a time: the temporaries (complex128) are a
    # chunk's, not a list's (memory: a 400³ map has millions of reflections)
    data = np.empty((len(hkl), 3 + 2 * len(labels)), np.float32)
    data[:, :3] = hkl
    for start in range(0, len(hkl), MTZ_CHUNK):
        part = slice(start, start + MTZ_CHUNK)
        shift = np.exp(2j * np.pi * (hkl[part] @ fraction))
        f_ref, f_tgt = sf_ref.f[part] * shift, sf_tgt.f[part] * shift
        columns = [f_ref, f_tgt]
        if difference:
            delta = f_tgt - f_ref
            if limited:
                delta = np.where(sf_ref.d[part] <= d_max, delta, 0)
            columns.append(delta)
        for j, f in enumerate(columns):
            data[part, 3 + 2 * j] = np.abs(f)
            data[part, 4 + 2 * j] = np.degrees(np.angle(f))
    mtz.set_data(data)
    del data  # gemmi holds its own copy
    mtz.ensure_asu()
    with atomic_write(Path(path)) as tmp:
        mtz.write_to_file(str(tmp))
