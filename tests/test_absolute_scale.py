"""Absolute-scale hints from a map's own model (issue 5, part 2)."""
import json

import gemmi
import numpy as np
import pytest

import voxscale
from voxscale.testing.molecules import make_atom
import voxscale.cli
from voxscale.analysis.absolute_scale import IDEAL_BONDS, absolute_scale, backbone_bonds
from voxscale.errors import ModelFormatError, VoxscaleError
from voxscale.maps import relabel_voxel_size
from voxscale.reciprocal.model_map import model_map
EMD_3488 = "maps/emd_3488_haemoglobin_ccpemutils.mrc"
PDB_5ME2 = "models/pdb5me2_haemoglobin.pdb"


def _unit(rng):
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def synthetic_protein(n_res=160, radius=16.0, seed=0, factor=1.0):
    """Alanines with ideal backbone bond lengths × ``factor``, scattered in a sphere.

    Not a folded protein (angles are random), but every N-CA, CA-C, C-O and CA-CB distance
    is exactly factor × its Engh & Huber value, and the atoms fill a compact blob.
    """
    rng = np.random.default_rng(seed)
    st = gemmi.Structure()
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    for i in range(n_res):
        while True:
            ca = rng.uniform(-radius, radius, 3)
            if np.linalg.norm(ca) < radius:
                break
        c = ca + factor * IDEAL_BONDS["CA-C"] * _unit(rng)
        xyz = {"CA": ca, "N": ca + factor * IDEAL_BONDS["N-CA"] * _unit(rng), "C": c,
               "O": c + factor * IDEAL_BONDS["C-O"] * _unit(rng),
               "CB": ca + factor * IDEAL_BONDS["CA-CB"] * _unit(rng)}
        res = gemmi.Residue()
        res.name = "ALA"
        res.seqid = gemmi.SeqId(i + 1, " ")
        for name, pos in xyz.items():
            res.add_atom(make_atom(name, name[0], pos + 40.0, 15.0))
        chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    return st


@pytest.fixture(scope="module")
def synthetic():
    """A model and its map sampled every 1/1.02 Å but labelled 1 Å (true factor 1/1.02)."""
    st = synthetic_protein()
    f = 1.02
    exact = model_map(st, voxel_size=1.0 / f, shape=(64, 64, 64),
                      origin=np.full(3, 40.0 - 31.5 / f), d_min=3.0)
    return st, relabel_voxel_size(exact, 1.0), 1.0 / f


def test_backbone_bonds_and_their_factor():
    bonds = backbone_bonds(synthetic_protein(n_res=30, factor=1.01))
    for name, ideal in IDEAL_BONDS.items():
        b = bonds[name]
        assert b["n"] == 30 and b["ideal"] == ideal
        assert b["mean"] == pytest.approx(1.01 * ideal, abs=2e-5)  # PDB-free: exact floats
        assert b["median"] == pytest.approx(1.01 * ideal, abs=2e-5)
        assert b["scale"] == pytest.approx(1 / 1.01, abs=2e-5)


def test_curve_finds_a_simulated_voxel_size_error(synthetic):
    st, m, truth = synthetic
    res = absolute_scale(m, st, d_min=3.0, scale_range=(0.95, 1.03), step=0.005,
                         nthreads=1)
    assert res.model_cc_best_scale == pytest.approx(truth, abs=5e-4)
    assert res.model_cc_best > 0.99 and res.model_cc_best > res.model_cc_at_unit
    # the 17 factors of the grid, plus the first pass's peak and the refined best (every
    # factor evaluated is on the curve)
    grid = 0.95 + 0.005 * np.arange(17)
    assert len(res.scales) == len(res.cc) == 19
    assert all(np.min(np.abs(res.scales - g)) < 1e-9 for g in grid)
    assert res.resolution_source == "given" and res.bond_scale == pytest.approx(1.0, abs=1e-4)
    # Without a resolution the estimate 2.5 × voxel is used, and said so.
    est = absolute_scale(m, st, scale_range=(0.95, 1.03), step=0.01, max_points=5000,
                         nthreads=1)
    assert est.resolution_source == "estimated" and est.resolution == pytest.approx(2.5)
    assert est.model_cc_best_scale == pytest.approx(truth, abs=2e-3)


def test_errors(synthetic, tmp_path):
    st, m, _ = synthetic
    water = st.clone()
    for res in water[0]["A"]:
        res.name = "HOH"
    water.write_pdb(str(tmp_path / "water.pdb"))
    with pytest.raises(ModelFormatError, match="water.pdb: no protein"):
        absolute_scale(m, tmp_path / "water.pdb")
    far = voxscale.Map(m.data, m.voxel_size, m.origin + 500.0)
    with pytest.raises(VoxscaleError, match="does not overlap"):
        absolute_scale(far, st, d_min=3.0)
    with pytest.raises(ValueError, match="range"):
        absolute_scale(m, st, scale_range=(1.01, 1.05))
    with pytest.raises(ValueError, match="resolution"):
        absolute_scale(m, st, d_min=-2.0)


def test_cli_writes_json_and_png(synthetic, tmp_path, monkeypatch, capsys):
    st, m, truth = synthetic
    m.write(tmp_path / "map.mrc")
    st.write_pdb(str(tmp_path / "model.pdb"))
    out = tmp_path / "out"
    args = ["absolute", str(tmp_path / "map.mrc"), str(tmp_path / "model.pdb"), "--out",
            str(out), "--resolution", "3", "--range", "0.96", "1.03", "--step", "0.01",
            "--max-points", "8000", "--threads", "1"]
    assert voxscale.cli.main(args) == 0
    assert "model-map correlation peaks" in capsys.readouterr().out
    report = json.loads((out / "absolute.json").read_text())
    for key in ("model_cc_best_scale", "model_cc_scales", "model_cc", "bond_scale", "bonds"):
        assert key in report
    # 8 factors of the grid, the first pass's peak and the refined best
    assert len(report["model_cc_scales"]) == len(report["model_cc"]) == 10
    assert report["model_cc_best_scale"] == pytest.approx(truth, abs=2e-3)
    for name in IDEAL_BONDS:
        assert {"mean", "median", "ideal"} <= set(report["bonds"][name])
    assert (out / "absolute.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert voxscale.cli.main(args + ["--quiet"]) == 2  # refuses to overwrite
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err
    assert voxscale.cli.main(args + ["--quiet", "--force"]) == 0
    assert capsys.readouterr().out == ""


# -- real data: EMD-3488 (haemoglobin, 3.2 Å, 1.05 Å voxels) with its model 5ME2 --------------

@pytest.fixture(scope="module")
def emd3488(shared_file):
    m = voxscale.read_map(shared_file(EMD_3488))
    st = voxscale.read_model(shared_file(PDB_5ME2))
    res = absolute_scale(m, st, d_min=3.2, scale_range=(0.96, 1.04), step=0.005,
                         max_points=30000, nthreads=1)
    return m, st, res


def test_emd3488_curve_peaks_near_one(emd3488, capsys):
    _, _, res = emd3488
    with capsys.disabled():
        print(f"\nEMD-3488/5ME2: model-CC peak s = {res.model_cc_best_scale:.5f} "
              f"(cc {res.model_cc_best:.4f}; at s = 1 {res.model_cc_at_unit:.4f}, unfitted "
              f"{res.model_cc_unfitted:.4f}); bonds imply s = {res.bond_scale:.4f} ± "
              f"{res.bond_scale_se:.4f} ("
              + ", ".join(f"{k} {b['mean']:.4f}/{b['ideal']}" for k, b in res.bonds.items())
              + f"); {res.n_points} points, {res.seconds:.1f} s")
    assert abs(res.model_cc_best_scale - 1.0) < 0.01
    assert res.model_cc_best > 0.6
    i = int(np.argmax(res.cc))
    assert 0 < i < len(res.cc) - 1  # an interior maximum: the curve is bell-shaped
    assert abs(res.bond_scale - 1.0) < 0.01
    assert all(b["n"] > 500 for b in res.bonds.values())


def test_emd3488_relabelled_peak_moves_by_the_factor(emd3488, capsys):
    """Relabel the header voxel size ×1.02 about the box centre: the density expands by 2 %
    about the centre while the model stays, so the map now needs a factor 1/1.02 more."""
    m, st, res = emd3488
    relabelled = relabel_voxel_size(m, 1.02 * m.voxel_size)
    moved = absolute_scale(relabelled, st, d_min=3.2, scale_range=(0.96, 1.04),
                           step=0.005, max_points=30000, nthreads=1)
    expected = res.model_cc_best_scale / 1.02
    with capsys.disabled():
        print(f"\nEMD-3488 relabelled ×1.02: peak s = {moved.model_cc_best_scale:.5f}, expected "
              f"{expected:.5f} (difference {moved.model_cc_best_scale - expected:+.5f})")
    assert abs(moved.model_cc_best_scale - expected) < 0.003
    assert moved.bond_scale == res.bond_scale  # the bonds measure the model, not the map


def test_emd3488_bond_hint_uncertainty_covers_the_types(emd3488):
    """The bond-length hint's uncertainty is the spread between the bond types (issue 14:
    it reported ±0.0009 while the types disagreed by 0.35 %)."""
    _, _, res = emd3488
    factors = np.array([b["scale"] for b in res.bonds.values()])
    assert abs(res.bond_scale_se - factors.std(ddof=1)) < 1e-12
    # every type within 2.5 uncertainties of the hint (4 types: the spread covers them)
    assert np.all(np.abs(factors - res.bond_scale) < 2.5 * res.bond_scale_se)
