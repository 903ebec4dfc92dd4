"""Initial placement of the target map on the reference (docs/method.md §1 step 1).

From models: the target model is superposed on the reference model by the Cα atoms of matching
residues, found by chain name and residue number when the two models agree, and by per-chain
sequence alignment otherwise (homologues, renumbered or renamed chains). Pairs that moved much
more than the rest (a domain that rotated) are pruned in a few rounds, as ChimeraX matchmaker
does. The superposition is Kabsch's SVD solution.

Without models: the densities above their contours are aligned by their centroids and principal
axes; every one of the 24 rotations that map the target's principal frame onto the reference's
(axis permutations and sign flips, so near-degenerate axes are covered too) is refined by a
quick rigid fit, and the best correlation wins. This finds a target rotated by any angle and
shifted anywhere in its box, as long as the two maps show the same molecule.

Every transform maps target coordinates into the reference frame: x_ref = R·x_tgt + t.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import gemmi
import numpy as np

from ..errors import ModelFormatError, VoxscaleError
from ..maps.map import Map
from ..threads import resolve_threads
from .points import fit_points
from .rigid import ReferenceGrid, rigid_fit
from .rotations import axis_rotations, rotation_angle_deg
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
        Correlation of the quick map fit (maps), else NaN.
    """

    transform: np.ndarray
    method: str
    n_pairs: int = 0
    rmsd: float = float("nan")
    cc: float = float("nan")


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


def _principal_frame(points: np.ndarray, weights: np.ndarray):
    w = weights / weights.sum()
    centroid = w @ points
    d = points - centroid
    cov = (d * w[:, None]).T @ d
    _, vectors = np.linalg.eigh(cov)
    if np.linalg.det(vectors) < 0:
        vectors[:, 0] *= -1
    return centroid, vectors


def place_by_maps(ref: Map, target: Map, *, contour=None, ref_contour=None,
                  n_refine: int = 4, reference_grid: Optional[ReferenceGrid] = None,
                  nthreads: int = 0) -> Placement:
    """Map-only global placement of the target on the reference.

    Parameters
    ----------
    ref, target : Map
    contour : float, optional
        Target contour for the fit points (default: the molecular envelope, see :func:`voxscale.fit.fit_points`).
    ref_contour : float, optional
        Reference contour for its principal axes (default as for the target).
    n_refine : int, optional
        How many of the best distinct quick fits are refined before choosing (default 4).
    reference_grid : ReferenceGrid, optional
        The reference prepared for cubic scoring, if the caller has it already (its spline
        coefficients are then not computed again).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    Placement
        method "maps", with the correlation of the best quick fit.
    """
    nthreads = resolve_threads(nthreads)
    tgt_pts = fit_points(target, contour, max_points=4000, nthreads=nthreads)
    ref_pts = fit_points(ref, ref_contour, max_points=4000, role="reference",
                         nthreads=nthreads)
    c_t, e_t = _principal_frame(tgt_pts.xyz, tgt_pts.values - tgt_pts.values.min() + 1e-6)
    c_r, e_r = _principal_frame(ref_pts.xyz, ref_pts.values - ref_pts.values.min() + 1e-6)
    quick = ReferenceGrid(ref, order=1, nthreads=nthreads)
    candidates = []
    for q in axis_rotations():
        m = np.eye(4)
        m[:3, :3] = e_r @ q @ e_t.T
        m[:3, 3] = c_r - m[:3, :3] @ c_t
        try:
            candidates.append(rigid_fit(quick, tgt_pts.xyz, tgt_pts.values, m, max_steps=60,
                                        xtol=1e-2, nthreads=nthreads))
        except VoxscaleError:
            continue
    if not candidates:
        raise VoxscaleError("the target could not be placed on the reference: no orientation "
                            "overlaps it")
    # Pseudo-symmetric molecules give several nearly equal quick fits: the best few distinct
    # poses are refined with the cubic interpolant and more points before one is chosen.
    candidates.sort(key=lambda fit: -fit.cc)
    distinct = []
    for fit in candidates:
        if all(rotation_angle_deg(fit.transform[:3, :3] @ other.transform[:3, :3].T) > 5.0
               for other in distinct):
            distinct.append(fit)
        if len(distinct) == n_refine:
            break
    fine_pts = fit_points(target, contour, max_points=20000, nthreads=nthreads)
    fine = (reference_grid if reference_grid is not None and reference_grid.order == 3
            else ReferenceGrid(ref, order=3, nthreads=nthreads))
    best = max((rigid_fit(fine, fine_pts.xyz, fine_pts.values, fit.transform, xtol=1e-3,
                          nthreads=nthreads) for fit in distinct), key=lambda fit: fit.cc)
    return Placement(best.transform, "maps", cc=best.cc)
