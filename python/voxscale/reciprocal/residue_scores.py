"""Per-residue scores of a difference map: where on the model the maps differ.

For every residue of a model in the difference map's frame, the difference (in the map's
units: z-scores of the noise with half maps, σ of the solvent otherwise) is interpolated at its
atoms (trilinear) and summarised as the signed mean (``score``: negative where the target has
less density, as for a removed side chain), the mean absolute value (``abs_score``, which a
substitution, with density lost in one place and gained in another, does not cancel) and the
largest absolute value. The table is ranked by ``abs_score``; :meth:`ResidueScores.write_model`
writes a copy of the model with ``score`` in the B-factor column, so that ChimeraX
(``color bfactor``) and Coot colour the model by change.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass

import gemmi
import numpy as np

from ..maps.interpolation import interpolate
from ..maps.map import Map
from ..threads import resolve_threads

__all__ = ["ResidueScore", "ResidueScores", "residue_scores"]


@dataclass
class ResidueScore:
    """The difference over one residue's atoms.

    Attributes
    ----------
    chain, residue_name : str
    residue_number : int
    insertion_code : str
    n_atoms : int
    score : float
        Mean of the difference at its atoms (map units; negative: less in the target).
    abs_score : float
        Mean of its absolute value.
    max_abs : float
        Largest absolute value at one of its atoms.
    """

    chain: str
    residue_name: str
    residue_number: int
    insertion_code: str
    n_atoms: int
    score: float
    abs_score: float
    max_abs: float

    def to_dict(self) -> dict:
        """The fields as a dict."""
        return asdict(self)


class ResidueScores(list):
    """:class:`ResidueScore` rows, largest ``abs_score`` first, with CSV and model writers."""

    def to_csv(self) -> str:
        """CSV, one row per residue with its rank."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["rank", "chain", "residue_name", "residue_number", "insertion_code",
                         "n_atoms", "score", "abs_score", "max_abs"])
        for rank, r in enumerate(self, start=1):
            writer.writerow([rank, r.chain, r.residue_name, r.residue_number, r.insertion_code,
                             r.n_atoms, f"{r.score:.3f}", f"{r.abs_score:.3f}",
                             f"{r.max_abs:.3f}"])
        return buf.getvalue()

    def scored_model(self, structure) -> gemmi.Structure:
        """A copy of the model with each atom's B factor set to its residue's ``score``,
        clipped to −99.99 … 999.99, what PDB's B column holds. Residues without a score (no
        atom inside the map, or, in a comparison, none where the corrected target has data)
        get B = 0 and occupancy 0, so that "not scored" is not read as "no change" (select
        them with ``occupancy = 0`` in ChimeraX or Coot)."""
        by_key = {(r.chain, r.residue_number, r.insertion_code): r.score for r in self}
        out = structure.clone()
        for chain in out[0]:
            for residue in chain:
                value = by_key.get((chain.name, residue.seqid.num, residue.seqid.icode.strip()))
                for atom in residue:
                    if value is None:
                        atom.b_iso, atom.occ = 0.0, 0.0
                    else:
                        atom.b_iso = float(np.clip(value, -99.99, 999.99))  # PDB's 6.2 column
        return out

    def write_model(self, structure, path) -> None:
        """Write the scored copy (:meth:`scored_model`): PDB when the name ends in .pdb and
        the model fits the format, mmCIF otherwise."""
        scored = self.scored_model(structure)
        path = str(path)
        if path.endswith(".pdb"):
            scored.write_pdb(path)
        else:
            scored.setup_entities()
            scored.make_mmcif_document().write_file(path)


def residue_scores(diff_map: Map, structure, *, mask=None, nthreads: int = 0) -> ResidueScores:
    """Score every residue of a model on a difference map.

    Parameters
    ----------
    diff_map : Map
        The difference map (z-scores or σ units).
    structure : gemmi.Structure
        Model in the map's frame (its first model is scored).
    mask : numpy.ndarray of bool, shape (nz, ny, nx), optional
        Only atoms whose nearest voxel is inside it count (e.g. where the corrected target
        has data); default every atom inside the map's box.
    nthreads : int, optional

    Returns
    -------
    ResidueScores
        Largest ``abs_score`` first; residues with no atom inside the map (or the mask) are
        left out.
    """
    nthreads = resolve_threads(nthreads)
    keys, owner, xyz = [], [], []
    for chain in structure[0]:
        for residue in chain:
            atoms = [a.pos for a in residue if a.element.name != "H"]
            if not atoms:
                continue
            keys.append((chain.name, residue.name, int(residue.seqid.num),
                         residue.seqid.icode.strip()))
            owner += [len(keys) - 1] * len(atoms)
            xyz += [(p.x, p.y, p.z) for p in atoms]
    table = ResidueScores()
    if not keys:
        return table
    xyz = np.asarray(xyz, dtype=np.float64)
    owner = np.asarray(owner, dtype=np.int64)
    lo = diff_map.origin
    hi = diff_map.origin + (np.array(diff_map.shape[::-1]) - 1) * diff_map.voxel_size
    inside = np.all((xyz >= lo) & (xyz <= hi), axis=1)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != diff_map.shape:
            raise ValueError(f"the mask has shape {mask.shape}, the map {diff_map.shape}")
        ix, iy, iz = np.rint((xyz[inside] - lo) / diff_map.voxel_size).astype(np.int64).T
        inside[np.flatnonzero(inside)] = mask[iz, iy, ix]
    values = np.zeros(len(xyz))
    values[inside] = interpolate(diff_map, xyz[inside], order=1, nthreads=nthreads)
    n = np.bincount(owner[inside], minlength=len(keys))
    total = np.bincount(owner[inside], values[inside], minlength=len(keys))
    total_abs = np.bincount(owner[inside], np.abs(values[inside]), minlength=len(keys))
    largest = np.zeros(len(keys))
    np.maximum.at(largest, owner[inside], np.abs(values[inside]))
    for j, (chain, name, number, icode) in enumerate(keys):
        if n[j]:
            table.append(ResidueScore(chain, name, number, icode, int(n[j]),
                                      float(total[j] / n[j]), float(total_abs[j] / n[j]),
                                      float(largest[j])))
    table.sort(key=lambda r: -r.abs_score)
    return table
