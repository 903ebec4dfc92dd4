"""Initial placement of the target map on the reference (docs/method.md §1 step 1).

From models: the target model is superposed on the reference model by the Cα atoms of matching
residues, found by chain name and residue number when the two models agree, and by per-chain
sequence alignment otherwise (homologues, renumbered or renamed chains). Pairs that moved much
more than the rest (a domain that rotated) are pruned in a few rounds, as ChimeraX matchmaker
does. The superposition is Kabsch's SVD solution.

Without models: an exhaustive rotation search with an FFT translation search on coarse maps,
the best distinct poses refined by rigid fits (:func:`voxscale.fit.search.global_search`).
It does not depend on principal axes, so it places nearly spherical molecules at any rotation
and parts into a whole map, and it reports how clearly the best pose won.

Every transform maps target coordinates into the reference frame: x_ref = R·x_tgt + t.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import gemmi
import numpy as np

from ..errors import ModelFormatError
from ..maps.map import Map
from ..threads import resolve_threads
from .rigid import ReferenceGrid
from .search import global_search
from .superpose import residue_pairs, superpose

__all__ = ["Placement", "residue_pairs", "superpose_models", "place_by_maps"]


@dataclass
class Placement:
    """An initial placement of the target in the reference frame.

    Attributes
    ----------
    transform : numpy.ndarray, shape (4, 4)
        x_ref = R·x_tgt + t.
    method : str
        "models", "maps" or "given".
    n_pairs : int
        Cα pairs used (models), else 0.
    rmsd : float
        Cα RMSD of the used pairs in Å (models), else NaN.
    cc : float
        Correlation of the refined map fit (maps), else NaN.
    second_cc : float
        Correlation of the best distinct other pose (maps), else NaN.
    symmetry_mate : bool
        That other pose is related to the best by a symmetry of the reference (maps).
    symmetry_operators : int
        Symmetry operators of the reference found (the identity not counted; maps). Each
        mate of the pose was refitted at the best factor and the best kept: at s = 1 a scale
        error lowers every mate's correlation alike, so the search alone cannot tell the
        target's own pose from its mates (a pseudo-symmetric map compared with itself).
    mate_cc_gain : float
        How much the mate chosen at the best factor fits better than the search's pose
        (0 when the search's pose was kept; NaN when no mate was tried).
    """

    transform: np.ndarray
    method: str
    n_pairs: int = 0
    rmsd: float = float("nan")
    cc: float = float("nan")
    second_cc: float = float("nan")
    symmetry_mate: bool = False
    symmetry_operators: int = 0
    mate_cc_gain: float = float("nan")

    @property
    def gap(self) -> float:
        """float : ``cc - second_cc``: how clearly the best map-only pose won (NaN if none)."""
        return self.cc - self.second_cc

    def to_dict(self) -> dict:
        """dict : The placement as it appears in ``scan.json`` and ``summary.json``."""
        return {"method": self.method, "n_pairs": self.n_pairs, "rmsd_A": self.rmsd,
                "cc": self.cc, "second_cc": self.second_cc, "gap": self.gap,
                "second_is_symmetry_mate": self.symmetry_mate,
                "symmetry_operators": self.symmetry_operators,
                "mate_cc_gain": self.mate_cc_gain}


def superpose_models(ref_model: gemmi.Structure, target_model: gemmi.Structure, *,
                     chains=None, prune_rounds: int = 3) -> Placement:
    """Transform that superposes the target model on the reference model by Cα atoms.

    Parameters
    ----------
    ref_model, target_model : gemmi.Structure
    chains : sequence of str, optional
        Reference chains to use (default all).
    prune_rounds : int, optional
        Rounds of discarding pairs farther apart than max(2 Å, 2 × RMSD) after superposition
        (default 3), so that a moved domain does not drag the fit.

    Returns
    -------
    Placement
        method "models", with the number of pairs kept and their RMSD (Å).

    Raises
    ------
    ModelFormatError
        If fewer than 3 residue pairs are found.
    """
    ref_xyz, tgt_xyz, _ = residue_pairs(ref_model, target_model, chains)
    if len(ref_xyz) < 3:
        raise ModelFormatError(f"only {len(ref_xyz)} matching residues between the models; "
                               "at least 3 are needed to superpose them")
    keep = np.ones(len(ref_xyz), dtype=bool)
    m, rmsd = superpose(ref_xyz, tgt_xyz)
    for _ in range(prune_rounds):
        dist = np.linalg.norm(tgt_xyz @ m[:3, :3].T + m[:3, 3] - ref_xyz, axis=1)
        new_keep = dist <= max(2.0, 2.0 * rmsd)
        if new_keep.sum() < max(3, 0.5 * len(keep)) or np.array_equal(new_keep, keep):
            break
        keep = new_keep
        m, rmsd = superpose(ref_xyz[keep], tgt_xyz[keep])
    return Placement(m, "models", int(keep.sum()), rmsd)


def place_by_maps(ref: Map, target: Map, *, contour=None,
                  reference_grid: Optional[ReferenceGrid] = None, n_rotations: int = 720,
                  nthreads: int = 0) -> Placement:
    """Map-only global placement of the target on the reference.

    Parameters
    ----------
    ref, target : Map
    contour : float, optional
        Target contour for the fit points (default: the molecular envelope, see
        :func:`voxscale.fit.fit_points`).
    reference_grid : ReferenceGrid, optional
        The reference prepared for cubic scoring, if the caller has it already (its spline
        coefficients are then not computed again).
    n_rotations : int, optional
        Rotations of the exhaustive search (default 720).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    Placement
        method "maps", with the correlation of the best refined pose and of the best distinct
        other pose.
    """
    found = global_search(ref, target, contour=contour, n_rotations=n_rotations,
                          reference_grid=reference_grid, nthreads=resolve_threads(nthreads))
    return placement_of(found)


def placement_of(found) -> Placement:
    """The :class:`Placement` of a :class:`voxscale.fit.search.GlobalSearch`."""
    return Placement(found.fit.transform, "maps", cc=found.cc, second_cc=found.second_cc,
                     symmetry_mate=found.second_is_symmetry_mate,
                     symmetry_operators=len(found.symmetry))
