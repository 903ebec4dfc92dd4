"""Reading atomic models (PDB / mmCIF, optionally gzipped) through gemmi.

Coordinates are Cartesian Å in the model file's own frame, x, y, z order, float64; the same
physical frame as :class:`voxscale.Map` (docs/method.md §2). Every part of voxscale that
needs the Cα atoms of a model takes them from :func:`calpha_residues`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import gemmi
import numpy as np

from ..errors import ModelFormatError
from ..files import require_regular_file

__all__ = ["read_model", "model_atom_positions", "check_model_in_map", "CalphaResidue",
           "calpha_residues", "transform_structure"]

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
    path = require_regular_file(path, "model file")
    try:
        structure = gemmi.read_structure(str(path))
        structure.setup_entities()
    except (RuntimeError, ValueError) as err:  # gemmi's parse errors; UnicodeDecodeError too
        raise ModelFormatError(f"{path}: cannot read the model: {err}") from None
    if sum(model.count_atom_sites() for model in structure) == 0:
        raise ModelFormatError(f"{path}: no atoms found (empty file, or not a PDB/mmCIF model)")
    bad = sum(1 for model in structure for cra in model.all()
              if not all(map(np.isfinite, cra.atom.pos.tolist())))
    if bad:
        raise ModelFormatError(f"{path}: {bad} atom(s) have coordinates that are not finite "
                               "numbers (NaN or infinite)")
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


@dataclass(frozen=True)
class CalphaResidue:
    """One amino-acid residue of a model, by its Cα atom.

    Attributes
    ----------
    chain : str
    number : int
        Residue sequence number.
    icode : str
        Insertion code (" " for none).
    code : str
        One-letter code, "X" for a non-standard amino acid.
    xyz : numpy.ndarray, shape (3,)
        Cα position (x, y, z, Å).
    """

    chain: str
    number: int
    icode: str
    code: str
    xyz: np.ndarray


def _calpha(residue: gemmi.Residue) -> Optional[gemmi.Atom]:
    """The residue's Cα atom if it is an amino acid, else None.

    A calcium ion is also named "CA": the atom must be a carbon, and the residue a tabulated
    amino acid or one with backbone N and C atoms (a modified residue).
    """
    atom = residue.find_atom("CA", "*")
    if atom is None or atom.element.name != "C":
        return None
    info = gemmi.find_tabulated_residue(residue.name)
    if info is not None and info.is_amino_acid():
        return atom
    if residue.find_atom("N", "*") and residue.find_atom("C", "*"):
        return atom
    return None


def calpha_residues(structure: gemmi.Structure, *, chains: Optional[Sequence[str]] = None,
                    model_index: int = 0) -> dict:
    r"""The amino-acid residues of a model with their Cα positions, chain by chain.

    Parameters
    ----------
    structure : gemmi.Structure
    chains : sequence of str, optional
        Only these chains (default all).
    model_index : int, optional
        Which model (default the first).

    Returns
    -------
    dict of str to list of CalphaResidue
        In file order; chains without amino acids are left out.

    Examples
    --------
    >>> import gemmi
    >>> st = gemmi.read_pdb_string(
    ...     "ATOM      1  CA  ALA A   1       1.000   2.000   3.000  1.00 20.00           C\n"
    ...     "HETATM    2 CA    CA A 101       5.000   5.000   5.000  1.00 20.00          CA\n")
    >>> [(r.code, r.number) for r in calpha_residues(st)["A"]]
    [('A', 1)]
    """
    out = {}
    for chain in structure[model_index]:
        if chains is not None and chain.name not in chains:
            continue
        found = []
        for res in chain:
            atom = _calpha(res)
            if atom is None:
                continue
            info = gemmi.find_tabulated_residue(res.name)
            letter = info.one_letter_code.upper() if info is not None else "X"
            found.append(CalphaResidue(chain.name, int(res.seqid.num), res.seqid.icode,
                                       letter if letter.isalpha() else "X",
                                       np.array(atom.pos.tolist())))
        if found:
            out.setdefault(chain.name, []).extend(found)
    return out


def transform_structure(structure: gemmi.Structure, transform) -> gemmi.Structure:
    """A copy of a structure with x -> R·x + t applied to every atom.

    Parameters
    ----------
    structure : gemmi.Structure
    transform : array_like, shape (4, 4)

    Returns
    -------
    gemmi.Structure
    """
    t = np.asarray(transform, dtype=np.float64)
    out = structure.clone()
    tr = gemmi.Transform(gemmi.Mat33(t[:3, :3].tolist()), gemmi.Vec3(*t[:3, 3]))
    for model in out:
        model.transform_pos_and_adp(tr)
    return out
