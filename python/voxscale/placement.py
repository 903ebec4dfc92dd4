"""Initial placement of the target map on the reference (DESIGN.md §1 step 1).

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

    Chains are paired one to one. A chain with the same name in both models is paired with its
    namesake when their sequences agree (at least 30 % identity over the aligned residues).
    The other reference chains are paired with the unused target chains whose sequences align
    best; when several align equally well (a homo-oligomer whose chains were renamed), the
    ambiguity is resolved by structure: each candidate partner of the first ambiguous chain is
    tried, the models are superposed on that pair, the remaining chains take the unused
    target chains nearest to them, and the assignment with the lowest overall RMSD wins.
    Within a chain pair, residues are matched by number when at least 70 % of the numbered
    matches have the same residue type, otherwise by global sequence alignment
    (gemmi.align_string_sequences).

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
    assignment = {}  # reference chain -> (target chain, residue pairs)
    for name, res in ref_chains.items():
        if name in tgt_chains:
            pairs, same = _chain_pairs(res, tgt_chains[name])
            if pairs and same >= 0.3 * len(pairs):
                assignment[name] = (name, pairs)
    open_ref = [n for n in ref_chains if n not in assignment]
    open_tgt = [n for n in tgt_chains if n not in {t for t, _ in assignment.values()}]
    if open_ref and open_tgt:
        assignment.update(_assign_by_sequence_and_structure(
            {n: ref_chains[n] for n in open_ref}, {n: tgt_chains[n] for n in open_tgt},
            assignment))
    ref_xyz, tgt_xyz, labels = [], [], []
    for name in ref_chains:
        if name not in assignment:
            continue
        for a, b in assignment[name][1]:
            ref_xyz.append(a)
            tgt_xyz.append(b)
            labels.append(name)
    return np.array(ref_xyz).reshape(-1, 3), np.array(tgt_xyz).reshape(-1, 3), labels


def _assign_by_sequence_and_structure(ref_chains: dict, tgt_chains: dict, fixed: dict) -> dict:
    """One-to-one pairing of the remaining chains (see :func:`residue_pairs`)."""
    candidates = {}  # ref chain -> {target chain: (pairs, identical residues)}
    for r_name, r_res in ref_chains.items():
        options = {t_name: _pairs_by_alignment(r_res, t_res) for t_name, t_res in tgt_chains.items()}
        best = max(same for _, same in options.values())
        if best < 1:
            continue
        candidates[r_name] = {t: o for t, o in options.items() if o[1] >= 0.9 * best}
    if not candidates:
        return {}

    def greedy(superposition, seed):
        """Assign chains to unused target chains by RMSD after `superposition`."""
        chosen = dict(seed)
        used = {t for t, _ in chosen.values()} | {t for t, _ in fixed.values()}
        scored = []
        for r_name, options in candidates.items():
            if r_name in chosen:
                continue
            for t_name, (pairs, _) in options.items():
                a = np.array([p[0] for p in pairs])
                b = _apply(superposition, np.array([p[1] for p in pairs]))
                scored.append((float(np.sqrt(((a - b) ** 2).sum(axis=1).mean())), r_name,
                               t_name, pairs))
        for rmsd, r_name, t_name, pairs in sorted(scored, key=lambda x: x[0]):
            if r_name not in chosen and t_name not in used:
                chosen[r_name] = (t_name, pairs)
                used.add(t_name)
        return chosen

    ambiguous = [r for r, opts in candidates.items() if len(opts) > 1]
    if not ambiguous:
        return {r: (next(iter(o)), next(iter(o.values()))[0]) for r, o in candidates.items()
                if next(iter(o)) not in {t for t, _ in fixed.values()}}
    first = ambiguous[0]
    best_total, best_choice = np.inf, {}
    for t_name, (pairs, _) in candidates[first].items():
        if t_name in {t for t, _ in fixed.values()}:
            continue
        seed = {first: (t_name, pairs)}
        all_pairs = pairs + [p for _, ps in fixed.values() for p in ps]
        superposition, _ = _superpose(np.array([p[0] for p in all_pairs]),
                                      np.array([p[1] for p in all_pairs]))
        choice = greedy(superposition, seed)
        every = [p for _, ps in choice.values() for p in ps] + all_pairs[len(pairs):]
        a = np.array([p[0] for p in every])
        b = _apply(superposition, np.array([p[1] for p in every]))
        total = float(((a - b) ** 2).sum(axis=1).mean())
        if total < best_total:
            best_total, best_choice = total, choice
    return best_choice


def _apply(transform: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    return xyz @ transform[:3, :3].T + transform[:3, 3]


def _superpose(ref_xyz: np.ndarray, tgt_xyz: np.ndarray):
    """Least-squares rigid transform (4x4) taking tgt_xyz onto ref_xyz, and the RMSD.

    Kabsch's SVD solution in numpy. (gemmi 0.7.5's superpose_positions returns a wrong
    rotation, with a near-zero reported RMSD, for some exact 180° rotations.)
    """
    ref_xyz = np.asarray(ref_xyz, dtype=np.float64)
    tgt_xyz = np.asarray(tgt_xyz, dtype=np.float64)
    c_ref, c_tgt = ref_xyz.mean(axis=0), tgt_xyz.mean(axis=0)
    h = (tgt_xyz - c_tgt).T @ (ref_xyz - c_ref)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = c_ref - rot @ c_tgt
    rmsd = float(np.sqrt(((_apply(m, tgt_xyz) - ref_xyz) ** 2).sum(axis=1).mean()))
    return m, rmsd


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
    ref_pts = fit_points(ref, ref_contour, max_points=4000, role="reference")
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
