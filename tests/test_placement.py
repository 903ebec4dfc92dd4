"""Tests of the initial placement (voxscale.fit.placement) and of the rigid fit (voxscale.fit).

Every expected value is a fact built into the data, never voxscale's own output: the target
model is the reference model moved by a known rigid transform T, so the placement must return
T⁻¹ (x_ref = R·x_tgt + t, docs/method.md §2); model maps are computed from those models on grids of
different box, voxel size and origin (see ``_pairs.py``). Transforms are compared by the angle
of R_found·R_trueᵀ and, for translations, by where the two transforms put a point inside the
molecule (its centroid), which does not depend on the coordinate origin.

The tests need the models in ``../shared/data`` and skip, with a reason, without them.
"""
import gemmi
import numpy as np
import pytest

import voxscale
from voxscale.errors import ModelFormatError
from voxscale.fit import ReferenceGrid, fit_points, rigid_fit
from voxscale.fit.placement import place_by_maps, residue_pairs, superpose_models
from voxscale.maps import transform_structure
from _pairs import (ACTIN, HAEMOGLOBIN, SPIKE_NTD, apply, ca_positions, centroid,
                    haemoglobin_twofold, make_pair, position_error, rigid, rotation,
                    rotation_error_deg)

AMINO_ACIDS = ["ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU",
               "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL"]


@pytest.fixture(scope="module")
def load(shared_file):
    cache = {}

    def get(relative):
        if relative not in cache:
            cache[relative] = voxscale.read_model(shared_file(relative))
        return cache[relative]
    return get


def n_ca(structure) -> int:
    return sum(len(v) for v in ca_positions(structure).values())


def moved_copy(structure, degrees=70.0, axis=(1, -2, 0.5), shift=(5.0, -7.0, 3.0)):
    applied = rigid(rotation(axis, degrees), centroid(structure), shift)
    return transform_structure(structure, applied), applied


def as_homologue(structure, seed, *, rename=True, renumber=100, mutate=0.10):
    """Copy with residues renumbered, chains renamed (W, X, Y, Z, ...) and ~10 % of the
    amino-acid residues given another residue name (a sequence that needs alignment)."""
    rng = np.random.default_rng(seed)
    out = structure.clone()
    new_names = iter("WXYZVU")
    for ch in out[0]:
        if rename:
            ch.name = next(new_names)
        for res in ch:
            res.seqid = gemmi.SeqId(res.seqid.num + renumber, res.seqid.icode)
            if res.find_atom("CA", "*") is not None and rng.random() < mutate:
                res.name = str(rng.choice([a for a in AMINO_ACIDS if a != res.name]))
    out.setup_entities()
    return out


def assert_same_transform(found, truth, point, rot_deg, pos_A):
    assert rotation_error_deg(found, truth) < rot_deg
    assert position_error(found, truth, point) < pos_A


# ---------------------------------------------------------------------------------------------
# superpose_models
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("degrees, axis", [
    (25.0, (1, 1, 0)), (70.0, (1, -2, 0.5)), (135.0, (0.2, 1, -0.7)), (179.0, (1, 2, 3)),
    # Exactly 180°: a 2-fold-related copy (e.g. a symmetry mate) is a natural input.
    # (gemmi's QCP superposition returns a wrong matrix with RMSD ~1e-6 for these.)
    (180.0, (0, 0, 1)), (180.0, (1, 1, 0)), (180.0, (1, 2, 3)),
])
def test_superpose_recovers_inverse_of_applied_transform(load, degrees, axis):
    st = load(HAEMOGLOBIN)
    moved, applied = moved_copy(st, degrees, axis)
    p = superpose_models(st, moved)
    truth = np.linalg.inv(applied)
    assert p.method == "models"
    assert p.n_pairs == n_ca(st) == 566
    # rotation matrices agree to ~1e-6 rad, translations to 1e-4 Å
    assert np.abs(p.transform[:3, :3] - truth[:3, :3]).max() < 1e-6, \
        f"rotation off by {rotation_error_deg(p.transform, truth):.4g}°"
    assert np.abs(p.transform[:3, 3] - truth[:3, 3]).max() < 1e-4
    assert np.array_equal(p.transform[3], [0, 0, 0, 1])
    assert p.rmsd < 1e-3
    # the reported RMSD is the real one
    ca_ref = np.concatenate([list(v.values()) for v in ca_positions(st).values()])
    ca_tgt = np.concatenate([list(v.values()) for v in ca_positions(moved).values()])
    real = np.sqrt(((apply(p.transform, ca_tgt) - ca_ref) ** 2).sum(axis=1).mean())
    assert real < 1e-3


def test_residue_pairs_of_identical_models(load):
    st = load(HAEMOGLOBIN)
    moved, applied = moved_copy(st)
    ref_xyz, tgt_xyz, labels = residue_pairs(st, moved)
    assert len(ref_xyz) == len(tgt_xyz) == len(labels) == 566
    np.testing.assert_allclose(apply(applied, ref_xyz), tgt_xyz, atol=1e-3)
    assert sorted(set(labels)) == ["A", "B", "C", "D"]
    ref_a, _, _ = residue_pairs(st, moved, chains=["A"])
    assert len(ref_a) == 140


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_superpose_homologue_monomer(load, seed):
    """Actin renumbered by +100, chain renamed, ~10 % mutated: the alignment path."""
    st = load(ACTIN)
    moved, applied = moved_copy(st, 110.0, (0.3, 1, -1), (-6.0, 4.0, 9.0))
    homologue = as_homologue(moved, seed)
    assert [ch.name for ch in homologue[0]] == ["W"]
    p = superpose_models(st, homologue)
    truth = np.linalg.inv(applied)
    assert np.abs(p.transform[:3, :3] - truth[:3, :3]).max() < 1e-6
    assert np.abs(p.transform[:3, 3] - truth[:3, 3]).max() < 1e-4
    assert p.n_pairs == n_ca(st) == 369
    assert p.rmsd < 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_superpose_homologue_same_chain_names(load, seed):
    """Haemoglobin renumbered by +100 and ~10 % mutated, chain names kept."""
    st = load(HAEMOGLOBIN)
    moved, applied = moved_copy(st)
    p = superpose_models(st, as_homologue(moved, seed, rename=False))
    truth = np.linalg.inv(applied)
    assert np.abs(p.transform[:3, :3] - truth[:3, :3]).max() < 1e-6
    assert np.abs(p.transform[:3, 3] - truth[:3, 3]).max() < 1e-4
    assert p.n_pairs == 566
    assert p.rmsd < 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_superpose_homologue_renamed_chains_of_homo_oligomer(load, seed):
    """Haemoglobin (α2β2) renumbered, mutated AND with chains renamed A-D -> W-Z.

    Chains A and C (and B and D) have the same sequence, so sequence alone cannot say which
    target chain is which; the tetramer is (NCS-)symmetric, so pairing A with C' etc. is a
    valid answer too: accept the truth or truth composed with the model's own 2-fold. What
    must not happen is two reference chains paired with the same target chain.
    """
    st = load(HAEMOGLOBIN)
    moved, applied = moved_copy(st)
    p = superpose_models(st, as_homologue(moved, seed, rename=True))
    truth = np.linalg.inv(applied)
    alt = haemoglobin_twofold(st) @ truth
    c = apply(applied, [centroid(st)])[0]
    errors = [(rotation_error_deg(p.transform, t), position_error(p.transform, t, c))
              for t in (truth, alt)]
    assert min(e[0] for e in errors) < 0.2 and min(e[1] for e in errors) < 0.2, (
        f"superposition wrong: rotation/position errors vs truth {errors[0]}, vs the "
        f"2-fold mate {errors[1]}; n_pairs {p.n_pairs}, rmsd {p.rmsd:.2f} Å")
    assert p.rmsd < 0.5


@pytest.mark.parametrize("chain", ["A", "B", "D"])
def test_superpose_prunes_moved_domain(load, chain):
    """One chain of the copy rotated 20° about its own centre: the other chains decide."""
    st = load(HAEMOGLOBIN)
    moved, applied = moved_copy(st)
    ch = moved[0][chain]
    xyz = np.array([a.pos.tolist() for r in ch for a in r])
    domain = rigid(rotation((0.3, 1, 0.2), 20.0), xyz.mean(axis=0), (0, 0, 0))
    for r in ch:
        for a in r:
            a.pos = gemmi.Position(*apply(domain, [a.pos.tolist()])[0])
    p = superpose_models(st, moved)
    truth = np.linalg.inv(applied)
    others = [c for c in "ABCD" if c != chain]
    n_others = sum(len(v) for v in ca_positions(st, others).values())
    n_all = n_ca(st)
    assert n_others <= p.n_pairs < n_all  # the moved chain was (mostly) pruned
    # the transform is the applied one for the other chains: their Cα land on the reference
    ca_ref = ca_positions(st, others)
    ca_tgt = ca_positions(moved, others)
    a = np.concatenate([list(ca_ref[c].values()) for c in others])
    b = np.concatenate([list(ca_tgt[c].values()) for c in others])
    resid = np.sqrt(((apply(p.transform, b) - a) ** 2).sum(axis=1).mean())
    rot_err = rotation_error_deg(p.transform, truth)
    pos_err = position_error(p.transform, truth, b.mean(axis=0))
    print(f"\nMEASURED domain {chain} moved 20°: n_pairs {p.n_pairs} (others {n_others}, "
          f"all {n_all}), rmsd {p.rmsd:.3f} Å, rotation error {rot_err:.4f}°, position error "
          f"{pos_err:.4f} Å, others' Cα RMS residual {resid:.4f} Å")
    assert rot_err < 0.2
    assert pos_err < 0.2
    assert resid < 0.25


def _strip_ca(structure):
    out = structure.clone()
    for ch in out[0]:
        for res in ch:
            for i in reversed(range(len(res))):
                if res[i].name == "CA":
                    del res[i]
    return out


def test_superpose_without_ca_raises(load):
    st = load(HAEMOGLOBIN)
    no_ca = _strip_ca(st)
    assert n_ca(no_ca) == 0 and no_ca[0].count_atom_sites() == 4468 - 566
    with pytest.raises(ModelFormatError):
        superpose_models(st, no_ca)
    with pytest.raises(ModelFormatError):
        superpose_models(no_ca, st)
    # only ligands (the haem groups)
    hem = st.clone()
    for ch in hem[0]:
        for i in reversed(range(len(ch))):
            if ch[i].name != "HEM":
                del ch[i]
    assert hem[0].count_atom_sites() > 0
    with pytest.raises(ModelFormatError):
        superpose_models(st, hem)
    with pytest.raises(ModelFormatError):
        residue_pairs(hem, st)


# ---------------------------------------------------------------------------------------------
# place_by_maps
# ---------------------------------------------------------------------------------------------

PLACE_CASES = [
    # model, rotation axis, angle, molecule offset in the target box (Å), box, resolution
    (HAEMOGLOBIN, (0, 0, 1), 90.0, (6.0, -5.0, 4.0), 64, 3.0),
    (HAEMOGLOBIN, (1, 2, 3), 179.0, (4.0, 8.0, -3.0), 64, 3.5),
    (ACTIN, (1, -1, 1), 150.0, (-6.0, 9.0, 12.0), 72, 4.0),
    (SPIKE_NTD, (1, 1, 1), 120.0, (12.0, -10.0, 8.0), 64, 3.5),
]


@pytest.mark.parametrize("model, axis, degrees, offset, box, resolution", PLACE_CASES,
                         ids=["hb-90-z", "hb-179", "actin-150", "ntd-120"])
def test_place_by_maps_large_rotations(load, model, axis, degrees, offset, box, resolution):
    st = load(model)
    pair = make_pair(st, resolution=resolution, axis=axis, degrees=degrees, shift=(3, -2, 1),
                     ref_voxel=1.5, ref_shape=(box,) * 3, tgt_voxel=1.4,
                     tgt_shape=(box - 2,) * 3, box_offset=-np.asarray(offset))
    p = place_by_maps(pair.ref, pair.target)
    assert p.method == "maps"
    candidates = [pair.truth]
    if model == HAEMOGLOBIN:  # the map has the tetramer's 2-fold: either pose is right
        candidates.append(haemoglobin_twofold(st) @ pair.truth)
    errors = [(rotation_error_deg(p.transform, t), position_error(p.transform, t,
                                                                 pair.target_center))
              for t in candidates]
    rot_err, pos_err = min(errors)
    print(f"\nMEASURED place_by_maps {model.split('/')[1][:7]} {degrees:.0f}°: rotation error "
          f"{rot_err:.3f}°, position error {pos_err:.3f} Å, cc {p.cc:.4f}")
    assert rot_err < 3.0
    assert pos_err < 1.5
    assert p.cc > 0.95


# ---------------------------------------------------------------------------------------------
# rigid_fit
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fit_pair(load):
    """Haemoglobin at 3 Å: reference 1.2 Å voxels 80³; target rotated 25°, 1.1 Å voxels 84³
    with a true voxel-size error f = 1.023 (points scaled by 1/f recover the true geometry)."""
    st = load(HAEMOGLOBIN)
    pair = make_pair(st, f=1.023, resolution=3.0, ref_voxel=1.2, ref_shape=(80,) * 3,
                     tgt_voxel=1.1, tgt_shape=(84,) * 3)
    pts = fit_points(pair.target, max_points=15000)
    return pair, pts


@pytest.mark.parametrize("degrees, shift", [(5.0, (3.0, 0.0, 0.0)), (5.0, (-1.7, 1.7, -1.7)),
                                            (6.0, (0.0, -2.0, 2.5))])
def test_rigid_fit_converges_from_perturbed_start(fit_pair, degrees, shift):
    """From ~5° and ~3 Å off (at 3 Å resolution the correlation rises monotonically along
    the straight path from these starts to the truth), order 3 must reach the truth."""
    pair, pts = fit_pair
    xyz = pts.scaled(pair.s_true)
    c = xyz.mean(axis=0)
    start = rigid(rotation((1, -1, 2), degrees), apply(pair.truth, [c])[0], shift) @ pair.truth
    assert abs(rotation_error_deg(start, pair.truth) - degrees) < 1e-6
    fit = rigid_fit(ReferenceGrid(pair.ref, order=3), xyz, pts.values, start)
    rot_err = rotation_error_deg(fit.transform, pair.truth)
    pos_err = position_error(fit.transform, pair.truth, c)
    print(f"\nMEASURED rigid_fit from {degrees}°/{np.linalg.norm(shift):.1f} Å: rotation "
          f"error {rot_err:.5f}°, position error {pos_err:.5f} Å, cc {fit.cc:.6f}, "
          f"{fit.iterations} steps")
    assert rot_err < 0.05
    assert pos_err < 0.05
    assert fit.iterations < 200, "rigid_fit used all max_steps (200) without converging"
    h = np.asarray(fit.history)
    assert len(h) == fit.iterations + 1 or len(h) == fit.iterations
    assert np.all(np.diff(h) >= 0), "correlation decreased during the fit"
    assert h[-1] == pytest.approx(fit.cc)
    assert fit.cc > 0.99 and fit.n_inside == fit.n_points == len(pts)
