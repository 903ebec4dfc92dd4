"""Initial placement of the target map on the reference (DESIGN.md §1 step 1).

From models: the target model is superposed on the reference model by the Cα atoms of matching
residues, found by chain name and residue number when the two models agree, and by per-chain
sequence alignment otherwise (homologues, renumbered or renamed chains). Pairs that moved much
more than the rest (a domain that rotated) are pruned in a few rounds, as ChimeraX matchmaker
does. The superposition itself is gemmi's (QCP, as Kabsch).

Without models: the densities above their contours are aligned by their centroids and principal
axes; every one of the 24 rotations that map the target's principal frame onto the reference's
(axis permutations and sign flips, so near-degenerate axes are covered too) is refined by a
quick rigid fit, and the best correlation wins. This finds a target rotated by any angle and
shifted anywhere in its box, as long as the two maps show the same molecule.

Every transform maps target coordinates into the reference frame: x_ref = R·x_tgt + t.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import gemmi
import numpy as np

from .errors import ModelFormatError, VoxscaleError
from .fit import ReferenceGrid, fit_points, rigid_fit, rotation_angle_deg
from .io import Map

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


def _ca_residues(chain: gemmi.Chain):
    """(number, insertion code, one-letter code, Cα position) of the chain's residues."""
    out = []
    for res in chain:
        ca = res.find_atom("CA", "*")
        if ca is None:
            continue
        info = gemmi.find_tabulated_residue(res.name)
        code = info.one_letter_code.upper() if info is not None and info.is_amino_acid() else "X"
        out.append((res.seqid.num, res.seqid.icode, code, np.array(ca.pos.tolist())))
    return out


def _pairs_by_number(ref_res, tgt_res):
    index = {(num, icode): (code, xyz) for num, icode, code, xyz in tgt_res}
    pairs, same = [], 0
    for num, icode, code, xyz in ref_res:
        hit = index.get((num, icode))
        if hit is not None:
            pairs.append((xyz, hit[1]))
            same += code == hit[0]
    return pairs, same


def _pairs_by_alignment(ref_res, tgt_res):
    seq_ref = [r[2] for r in ref_res]
    seq_tgt = [r[2] for r in tgt_res]
    result = gemmi.align_string_sequences(seq_ref, seq_tgt, [])
    pairs, i, j, same = [], 0, 0, 0
    for op in result.cigar_str().replace("M", "M ").replace("I", "I ").replace("D", "D ").split():
        count, kind = int(op[:-1]), op[-1]
        if kind == "M":
            for _ in range(count):
                pairs.append((ref_res[i][3], tgt_res[j][3]))
                same += seq_ref[i] == seq_tgt[j]
                i += 1
                j += 1
        elif kind == "I":  # in the query (reference) only
            i += count
        else:
            j += count
    return pairs, same


def _chain_pairs(ref_res, tgt_res):
    """Residue pairs of two chains: by number when numbering and sequence agree, else aligned."""
    by_number, same = _pairs_by_number(ref_res, tgt_res)
    if len(by_number) >= 3 and same >= 0.7 * len(by_number):
        return by_number, same
    return _pairs_by_alignment(ref_res, tgt_res)


def residue_pairs(ref_model: gemmi.Structure, target_model: gemmi.Structure, chains=None):
    """Cα positions of matching residues of two models.

    Chains with the same name are paired; a reference chain with no namesake is paired with
    the target chain whose sequence aligns best. Within a chain pair, residues are matched by
    number when at least 70 % of the numbered matches have the same residue type, otherwise
    by global sequence alignment (gemmi.align_string_sequences).

    Parameters
    ----------
    ref_model, target_model : gemmi.Structure
        Models; the first model of each is used.
    chains : sequence of str, optional
        Restrict to these reference chains.

    Returns
    -------
    ref_xyz, target_xyz : numpy.ndarray, shape (n, 3)
        Cα positions in Å.
    chain_of_pair : list of str
        Reference chain name of each pair.

    Raises
    ------
    ModelFormatError
        If a model has no Cα atoms.
    """
    ref_chains = {ch.name: _ca_residues(ch) for ch in ref_model[0]}
    tgt_chains = {ch.name: _ca_residues(ch) for ch in target_model[0]}
    ref_chains = {k: v for k, v in ref_chains.items() if v and (chains is None or k in chains)}
    tgt_chains = {k: v for k, v in tgt_chains.items() if v}
    if not ref_chains or not tgt_chains:
        raise ModelFormatError("a model has no protein Cα atoms to superpose")
    ref_xyz, tgt_xyz, labels = [], [], []
    for name, res in ref_chains.items():
        if name in tgt_chains:
            pairs, _ = _chain_pairs(res, tgt_chains[name])
        else:
            best = max((_pairs_by_alignment(res, other) for other in tgt_chains.values()),
                       key=lambda p: p[1])
            pairs = best[0]
        for a, b in pairs:
            ref_xyz.append(a)
            tgt_xyz.append(b)
            labels.append(name)
    return np.array(ref_xyz).reshape(-1, 3), np.array(tgt_xyz).reshape(-1, 3), labels


def _superpose(ref_xyz: np.ndarray, tgt_xyz: np.ndarray):
    """Rigid transform (4x4) taking tgt_xyz onto ref_xyz, and the RMSD (gemmi)."""
    sup = gemmi.superpose_positions([gemmi.Position(*p) for p in ref_xyz],
                                    [gemmi.Position(*p) for p in tgt_xyz])
    m = np.eye(4)
    m[:3, :3] = np.array(sup.transform.mat.tolist())
    m[:3, 3] = np.array(sup.transform.vec.tolist())
    return m, float(sup.rmsd)


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
    m, rmsd = _superpose(ref_xyz, tgt_xyz)
    for _ in range(prune_rounds):
        dist = np.linalg.norm(tgt_xyz @ m[:3, :3].T + m[:3, 3] - ref_xyz, axis=1)
        new_keep = dist <= max(2.0, 2.0 * rmsd)
        if new_keep.sum() < max(3, 0.5 * len(keep)) or np.array_equal(new_keep, keep):
            break
        keep = new_keep
        m, rmsd = _superpose(ref_xyz[keep], tgt_xyz[keep])
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


def _frame_rotations():
    """The 24 proper rotations that permute and flip the coordinate axes."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            if np.linalg.det(m) > 0:
                out.append(m)
    return out


def place_by_maps(ref: Map, target: Map, *, contour=None, ref_contour=None,
                  n_refine: int = 4, nthreads: int = 0) -> Placement:
    """Map-only global placement of the target on the reference.

    Parameters
    ----------
    ref, target : Map
    contour : float, optional
        Target contour for the fit points (default :func:`voxscale.fit.auto_contour`).
    ref_contour : float, optional
        Reference contour for its principal axes (default :func:`auto_contour`).
    n_refine : int, optional
        How many of the best distinct quick fits are refined before choosing (default 4).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    Placement
        method "maps", with the correlation of the best quick fit.
    """
    tgt_pts = fit_points(target, contour, max_points=4000)
    ref_pts = fit_points(ref, ref_contour, max_points=4000)
    c_t, e_t = _principal_frame(tgt_pts.xyz, tgt_pts.values - tgt_pts.values.min() + 1e-6)
    c_r, e_r = _principal_frame(ref_pts.xyz, ref_pts.values - ref_pts.values.min() + 1e-6)
    quick = ReferenceGrid(ref, order=1, nthreads=nthreads)
    candidates = []
    for q in _frame_rotations():
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
    fine_pts = fit_points(target, contour, max_points=20000)
    fine = ReferenceGrid(ref, order=3, nthreads=nthreads)
    best = max((rigid_fit(fine, fine_pts.xyz, fine_pts.values, fit.transform, xtol=1e-3,
                          nthreads=nthreads) for fit in distinct), key=lambda fit: fit.cc)
    return Placement(best.transform, "maps", cc=best.cc)
