"""Reading atomic models (PDB / mmCIF, optionally gzipped) through gemmi.

Coordinates are Cartesian Å in the model file's own frame, x, y, z order, float64; the same
physical frame as :class:`voxscale.io.Map` (see DESIGN.md section 2).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Union

import gemmi
import numpy as np

from .errors import ModelFormatError

__all__ = ["read_model", "model_atom_positions"]

PathLike = Union[str, "os.PathLike[str]"]


def read_model(path: PathLike) -> gemmi.Structure:
    """Read an atomic model with :func:`gemmi.read_structure` and set up its entities.

    Parameters
    ----------
    path : str or os.PathLike
        A PDB or mmCIF file (mmJSON too), plain or ``.gz``; the format is taken from the
        file name and content by gemmi.

    Returns
    -------
    gemmi.Structure
        The structure after :meth:`gemmi.Structure.setup_entities`. It holds at least one
        atom; whether it holds protein or nucleic acid is for the caller to check.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    voxscale.errors.ModelFormatError
        If gemmi cannot parse the file, or the file holds no atoms (empty, or not a
        model). The message starts with the path.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "model file not found", str(path))
    try:
        structure = gemmi.read_structure(str(path))
        structure.setup_entities()
    except (RuntimeError, ValueError) as err:  # gemmi's parse errors; UnicodeDecodeError too
        raise ModelFormatError(f"{path}: cannot read the model: {err}") from None
    if sum(model.count_atom_sites() for model in structure) == 0:
        raise ModelFormatError(f"{path}: no atoms found (empty file, or not a PDB/mmCIF model)")
    return structure


def model_atom_positions(structure: gemmi.Structure, *, model_index: int = 0) -> np.ndarray:
    """Return the Cartesian coordinates of all atoms of one model.

    Parameters
    ----------
    structure : gemmi.Structure
        A structure, e.g. from :func:`read_model`.
    model_index : int, optional
        Which model (0-based position in the file, not the model's serial number); default the
        first.

    Returns
    -------
    numpy.ndarray, shape (N, 3), float64
        x, y, z in Å of every atom of the model (alternative conformations included), in
        file order. N may be 0 for a model without atoms.

    Raises
    ------
    IndexError
        If the structure has no model at ``model_index``.
    """
    if not 0 <= model_index < len(structure):
        raise IndexError(f"model_index {model_index} out of range: the structure has "
                         f"{len(structure)} model(s)")
    model = structure[model_index]
    coords = [cra.atom.pos.tolist() for cra in model.all()]
    return np.array(coords, dtype=np.float64).reshape(-1, 3)


def check_model_in_map(model, density, *, what: str = "the model", where: str = "its map",
                       min_fraction: float = 0.5) -> None:
    """Raise ModelFormatError when most of a model's atoms lie outside a map's box.

    Parameters
    ----------
    model : gemmi.Structure
    density : voxscale.Map
    what, where : str, optional
        How the message names the model and the map (e.g. file names).
    min_fraction : float, optional
        Fraction of atoms that must lie inside the box (default 0.5).
    """
    xyz = model_atom_positions(model)
    lo = density.origin - 0.5 * density.voxel_size
    hi = lo + density.cell
    inside = float(np.all((xyz >= lo) & (xyz <= hi), axis=1).mean()) if len(xyz) else 0.0
    if inside < min_fraction:
        raise ModelFormatError(f"{what}: lies outside {where} ({100 * inside:.0f} % of its "
                               "atoms are inside the map's box)")
