"""Residue pairs of two models and their least-squares superposition (Kabsch).

Residues are matched by chain name and residue number when the two models agree, and by
per-chain sequence alignment otherwise (homologues, renumbered or renamed chains); chains are
paired one to one. The superposition is Kabsch's SVD solution in numpy (gemmi 0.7.5's
``superpose_positions`` returns a wrong rotation, with a near-zero RMSD, for some exact 180°
rotations).
"""
from __future__ import annotations

import gemmi
import numpy as np

from ..errors import ModelFormatError
from ..maps.models import calpha_residues

__all__ = ["residue_pairs", "superpose", "apply_transform"]


def _pairs_by_number(ref_res, tgt_res):
    index = {(r.number, r.icode): r for r in tgt_res}
    pairs, same = [], 0
    for r in ref_res:
        hit = index.get((r.number, r.icode))
        if hit is not None:
            pairs.append((r.xyz, hit.xyz))
            same += r.code == hit.code
    return pairs, same


def _pairs_by_alignment(ref_res, tgt_res):
    seq_ref = [r.code for r in ref_res]
    seq_tgt = [r.code for r in tgt_res]
    result = gemmi.align_string_sequences(seq_ref, seq_tgt, [])
    pairs, i, j, same = [], 0, 0, 0
    for op in result.cigar_str().replace("M", "M ").replace("I", "I ").replace("D", "D ").split():
        count, kind = int(op[:-1]), op[-1]
        if kind == "M":
            for _ in range(count):
                pairs.append((ref_res[i].xyz, tgt_res[j].xyz))
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
    ref_chains = calpha_residues(ref_model, chains=chains)
    tgt_chains = calpha_residues(target_model)
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
                b = apply_transform(superposition, np.array([p[1] for p in pairs]))
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
        superposition, _ = superpose(np.array([p[0] for p in all_pairs]),
                                      np.array([p[1] for p in all_pairs]))
        choice = greedy(superposition, seed)
        every = [p for _, ps in choice.values() for p in ps] + all_pairs[len(pairs):]
        a = np.array([p[0] for p in every])
        b = apply_transform(superposition, np.array([p[1] for p in every]))
        total = float(((a - b) ** 2).sum(axis=1).mean())
        if total < best_total:
            best_total, best_choice = total, choice
    return best_choice


def apply_transform(transform, xyz) -> np.ndarray:
    """x -> R·x + t for the rows of ``xyz`` (n, 3), a 4x4 ``transform``."""
    transform = np.asarray(transform, dtype=np.float64)
    return xyz @ transform[:3, :3].T + transform[:3, 3]


def superpose(ref_xyz: np.ndarray, tgt_xyz: np.ndarray):
    """Least-squares rigid transform taking ``tgt_xyz`` onto ``ref_xyz`` (Kabsch).

    Parameters
    ----------
    ref_xyz, tgt_xyz : array_like, shape (n, 3)
        Paired positions in Å, n >= 3.

    Returns
    -------
    transform : numpy.ndarray, shape (4, 4)
        x_ref = R·x_tgt + t, R a proper rotation.
    rmsd : float
        Root-mean-square distance after superposition, Å.
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
    rmsd = float(np.sqrt(((apply_transform(m, tgt_xyz) - ref_xyz) ** 2).sum(axis=1).mean()))
    return m, rmsd


