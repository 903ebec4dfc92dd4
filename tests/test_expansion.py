"""Expansion coefficients between superposed models (issue 5, part 1)."""
import json

import gemmi
import numpy as np
import pytest

import voxscale.cli
from voxscale.errors import ModelFormatError, ModelMismatchError
from voxscale.analysis.expansion import expansion, fit_line
from voxscale.fit import rotation_from_vector


def make_model(chains=(("A", 120), ("B", 60), ("C", 40)), seed=0, atoms=("CA",)):
    """A structure of alanines: a random walk of Cα atoms (3.8 Å steps) per chain."""
    rng = np.random.default_rng(seed)
    st = gemmi.Structure()
    model = gemmi.Model("1")
    start = np.zeros(3)
    for name, n in chains:
        chain = gemmi.Chain(name)
        pos = start.copy()
        for i in range(n):
            step = rng.normal(size=3)
            pos = pos + 3.8 * step / np.linalg.norm(step)
            pos = pos - 0.02 * (pos - start)  # keep the walk compact
            res = gemmi.Residue()
            res.name = "ALA"
            res.seqid = gemmi.SeqId(i + 1, " ")
            for k, atom_name in enumerate(atoms):
                atom = gemmi.Atom()
                atom.name = atom_name
                atom.element = gemmi.Element(atom_name[0])
                atom.pos = gemmi.Position(*(pos + 0.5 * k))
                atom.b_iso = 20.0
                atom.occ = 1.0
                res.add_atom(atom)
            chain.add_residue(res)
        model.add_chain(chain)
        start = start + rng.normal(scale=15.0, size=3)
    st.add_model(model)
    st.setup_entities()
    return st


def ca_positions(st):
    return np.array([r[0].pos.tolist() for ch in st[0] for r in ch])


def moved_copy(st, factor, center, rotvec, shift):
    """Copy expanded by ``factor`` about ``center``, then rotated and shifted."""
    out = st.clone()
    rot = rotation_from_vector(rotvec)
    for ch in out[0]:
        for res in ch:
            for atom in res:
                x = np.array(atom.pos.tolist())
                atom.pos = gemmi.Position(*(rot @ (center + factor * (x - center)) + shift))
    return out


@pytest.mark.parametrize("factor", [1.024, 0.97])
@pytest.mark.parametrize("center", [(0.0, 0.0, 0.0), (100.0, -40.0, 7.0)])
def test_known_expansion_about_any_centre_is_exact(factor, center):
    ref = make_model()
    tgt = moved_copy(ref, factor, np.array(center), np.radians(35.0) * np.array([0.3, -0.8, 0.5]),
                     np.array([12.0, -3.0, 40.0]))
    res = expansion(ref, tgt)
    expected = 100.0 * (factor - 1.0)
    assert res.n_pairs == 220
    assert res.slope_radial == pytest.approx(expected, abs=1e-9)
    assert res.slope_total == pytest.approx(abs(expected), abs=1e-9)
    for q, sign in (("radial", 1.0), ("total", np.sign(expected))):
        for variant in ("origin", "intercept", "robust_origin", "robust_intercept"):
            fit = res.fits[q][variant]
            assert fit.slope == pytest.approx(sign * expected, abs=1e-7), (q, variant)
            assert abs(fit.intercept) < 1e-7
            assert fit.slope_se < 1e-6
    # Per chain (global superposition and centre): every chain shows the same factor.
    assert set(res.per_chain) == {"A", "B", "C"}
    for fits in res.per_chain.values():
        assert fits["radial"]["origin"].slope == pytest.approx(expected, abs=1e-9)
        assert fits["radial"]["intercept"].slope == pytest.approx(expected, abs=1e-7)
    # The similarity transform's scale is the factor exactly, with no error.
    similarity, similarity_se = res.similarity
    assert similarity == pytest.approx(expected, abs=1e-9) and similarity_se < 1e-7
    assert res.to_dict()["similarity_scale_percent"] == pytest.approx(expected, abs=1e-9)
    # The shifts are exactly radial: (f - 1)(x - c).
    np.testing.assert_allclose(res.shift, (factor - 1) * (res.ref_xyz - res.center), atol=1e-9)


def test_rigid_copy_gives_zero():
    ref = make_model(seed=3)
    tgt = moved_copy(ref, 1.0, np.zeros(3), np.array([0.5, 1.0, -2.0]), np.array([5.0, 6.0, 7.0]))
    res = expansion(ref, tgt)
    assert res.rmsd < 1e-9
    for q in ("total", "radial"):
        for fit in res.fits[q].values():
            assert abs(fit.slope) < 1e-9
    report = res.to_dict()
    assert abs(report["slope_total"]) < 1e-9 and abs(report["slope_radial"]) < 1e-9


def test_per_chain_subset_and_chain_selection():
    ref = make_model(seed=5)
    tgt = moved_copy(ref, 1.03, np.array([3.0, 4.0, 5.0]), np.zeros(3), np.zeros(3))
    res = expansion(ref, tgt, chains=["A", "C"])
    assert res.n_pairs == 160 and set(res.per_chain) == {"A", "C"}
    assert res.slope_radial == pytest.approx(3.0, abs=1e-9)
    report = res.to_dict()
    assert report["per_chain"]["A"]["n_pairs"] == 120
    assert report["per_chain"]["C"]["slope_radial"] == pytest.approx(3.0, abs=1e-9)
    with pytest.raises(ModelFormatError, match="no chain"):
        expansion(ref, tgt, chains=["Z"])


def test_robust_fit_ignores_a_few_outliers():
    ref = make_model(seed=7)
    tgt = moved_copy(ref, 1.02, np.zeros(3), np.zeros(3), np.zeros(3))
    rng = np.random.default_rng(1)
    residues = [res for ch in tgt[0] for res in ch]
    for i in rng.choice(len(residues), 6, replace=False):  # six loops moved by 6 Å
        atom = residues[i][0]
        atom.pos = gemmi.Position(*(np.array(atom.pos.tolist()) + 6.0 * rng.normal(size=3)))
    res = expansion(ref, tgt)
    robust = res.fits["radial"]["robust_origin"]
    assert abs(res.fits["radial"]["origin"].slope - 2.0) > 0.01  # least squares is pulled
    # The outliers also perturb the superposition slightly; the robust slope stays within a
    # few hundredths of a per cent and rejects about the six moved residues.
    assert robust.slope == pytest.approx(2.0, abs=0.05)
    assert 5 <= robust.n_outliers <= 12


def test_fit_line_exact_and_noisy():
    r = np.linspace(1, 50, 200)
    fit = fit_line(r, 0.02 * r + 0.3, intercept=True)
    assert fit.slope == pytest.approx(2.0, abs=1e-10) and fit.intercept == pytest.approx(0.3)
    rng = np.random.default_rng(0)
    y = 0.02 * r + rng.normal(scale=0.2, size=r.size)
    ls, rb = fit_line(r, y), fit_line(r, y, robust=True)
    assert abs(ls.slope - 2.0) < 4 * ls.slope_se and abs(rb.slope - 2.0) < 4 * rb.slope_se
    assert rb.slope_se == pytest.approx(ls.slope_se, rel=0.3)  # ~95 % efficiency
    y[:5] += 30.0
    assert fit_line(r, y, robust=True).slope == pytest.approx(rb.slope, abs=0.02)
    assert np.isnan(fit_line(r[:1], y[:1]).slope)


def test_errors_name_the_file(tmp_path):
    ref = make_model(seed=1)
    ref.write_pdb(str(tmp_path / "ref.pdb"))
    water = gemmi.read_structure(str(tmp_path / "ref.pdb"))
    for ch in water[0]:
        for res in ch:
            res.name = "HOH"
            res[0].name = "O"
            res[0].element = gemmi.Element("O")
    water.write_pdb(str(tmp_path / "water.pdb"))
    with pytest.raises(ModelFormatError, match="water.pdb: no protein"):
        expansion(tmp_path / "ref.pdb", tmp_path / "water.pdb")
    with pytest.raises(ModelFormatError, match="water.pdb: no protein"):
        expansion(tmp_path / "water.pdb", tmp_path / "ref.pdb")
    tiny = make_model(chains=(("A", 2),), seed=2)
    tiny.write_pdb(str(tmp_path / "tiny.pdb"))
    with pytest.raises(ModelFormatError, match=r"tiny.pdb.*only 2 paired"):
        expansion(tmp_path / "tiny.pdb", tmp_path / "tiny.pdb")
    with pytest.raises(FileNotFoundError):
        expansion(tmp_path / "missing.pdb", tmp_path / "ref.pdb")


@pytest.fixture
def cli(monkeypatch):
    return voxscale.cli.main


def test_cli_writes_json_and_png(cli, tmp_path, capsys):
    ref = make_model(seed=11)
    tgt = moved_copy(ref, 1.015, np.array([20.0, 0.0, 0.0]), np.array([0.0, 0.4, 0.0]),
                     np.array([1.0, 2.0, 3.0]))
    ref.write_pdb(str(tmp_path / "ref.pdb"))
    tgt.write_pdb(str(tmp_path / "tgt.pdb"))
    out = tmp_path / "out"
    assert cli(["expansion", str(tmp_path / "ref.pdb"), str(tmp_path / "tgt.pdb"),
                "--out", str(out), "--chains", "A", "B"]) == 0
    assert "expansion" in capsys.readouterr().out
    report = json.loads((out / "expansion.json").read_text())
    for key in ("slope_total", "slope_radial", "n_pairs", "per_chain", "slope_total_se",
                "slope_radial_with_intercept", "intercept_radial", "robust", "rmsd_A"):
        assert key in report
    # PDB coordinates have 3 decimals: the factor is recovered to ~1e-4 %.
    assert report["slope_radial"] == pytest.approx(1.5, abs=1e-3)
    assert report["n_pairs"] == 180 and set(report["per_chain"]) == {"A", "B"}
    assert report["robust"]["slope_radial"] == pytest.approx(1.5, abs=1e-3)
    assert (out / "expansion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Existing outputs are refused (exit 2, one line) unless --force.
    assert cli(["expansion", str(tmp_path / "ref.pdb"), str(tmp_path / "tgt.pdb"),
                "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err
    assert cli(["expansion", str(tmp_path / "ref.pdb"), str(tmp_path / "tgt.pdb"),
                "--out", str(out), "--quiet", "--force"]) == 0
    assert capsys.readouterr().out == ""
    # A bad model is one line on stderr, exit 2, and nothing is written.
    (tmp_path / "bad.pdb").write_text("nonsense\n")
    assert cli(["expansion", str(tmp_path / "bad.pdb"), str(tmp_path / "tgt.pdb"),
                "--out", str(tmp_path / "none")]) == 2
    assert "bad.pdb" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_rdrp_pair(shared_file, capsys):
    """6XEZ against 7BV2, Cα of chains A–C; the seed paper reports 2.4 %."""
    ref = shared_file("models/pdb7bv2_CA_P.pdb")
    tgt = shared_file("models/pdb6xez_CA_P.pdb")
    res = expansion(ref, tgt, chains=["A", "B", "C"])
    report = res.to_dict()
    with capsys.disabled():
        print(f"\nRdRp 6XEZ vs 7BV2: {res.n_pairs} pairs, RMSD {res.rmsd:.3f} Å; "
              f"total {report['slope_total']:.3f} ± {report['slope_total_se']:.3f} %, "
              f"radial {report['slope_radial']:.3f} ± {report['slope_radial_se']:.3f} %; "
              f"with intercept total {report['slope_total_with_intercept']:.3f}, radial "
              f"{report['slope_radial_with_intercept']:.3f} %; robust radial "
              f"{report['robust']['slope_radial']:.3f} %; per chain radial "
              + ", ".join(f"{c} {v['slope_radial']:.2f}" for c, v in report["per_chain"].items()))
    assert res.n_pairs > 900 and set(res.per_chain) == {"A", "B", "C"}
    assert 0.5 < res.rmsd < 2.0
    # The target is the larger one: every estimate is clearly positive, 1.5-3.5 %.
    for key in ("slope_total", "slope_radial", "slope_radial_with_intercept"):
        assert 1.5 < report[key] < 3.5, key
        assert 1.5 < report["robust"][key] < 3.5, key
    assert report["slope_total"] > report["slope_radial"]  # noise adds to the length only
    for chain in ("A", "B", "C"):
        assert 1.0 < report["per_chain"][chain]["slope_radial"] < 3.5
    # issue 14: the headline is the similarity scale (radial or similarity: 1.9-2.0 %), not
    # the shift-length slope (2.72 %), which non-radial differences inflate
    similarity, similarity_se = res.similarity
    assert 1.85 < similarity < 2.0 and 0 < similarity_se < 0.1
    assert report["slope_total"] - similarity > 0.5
    # Same answer with the chains left to the default (7BV2 has no other protein chains).
    assert expansion(ref, tgt).slope_radial == pytest.approx(res.slope_radial, abs=1e-9)


def test_unrelated_models_are_refused(cli, shared_file, tmp_path, capsys):
    """Haemoglobin against actin: residues pair by chain and number, but the RMSD after
    superposition is 22 Å: exit 2 with one line, nothing written (issue 14: it reported
    +138.5 % and exited 0)."""
    ref = str(shared_file("models/pdb5me2_haemoglobin.pdb"))
    tgt = str(shared_file("models/pdb3mfp_actin_modeller_tempy.pdb"))
    with pytest.raises(ModelMismatchError, match="RMSD"):
        expansion(ref, tgt)
    assert cli(["expansion", ref, tgt, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RMSD" in err and not (tmp_path / "o").exists()
    # a looser limit is the user's choice
    assert cli(["expansion", ref, tgt, "--out", str(tmp_path / "o"), "--quiet",
                "--max-rmsd", "30"]) == 0
