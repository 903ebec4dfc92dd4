"""Local realignment: a chain rotated by 5° in the target."""
import json

import gemmi
import numpy as np
import pytest

import voxscale
from voxscale.cli import main
from voxscale.fit import rotation_angle_deg, rotation_from_vector
from voxscale.analysis.local import domain_mask, local_realignment, parse_domain
from voxscale.testing.molecules import helix_bundle
from voxscale.reciprocal.model_map import model_map
def test_parse_domain():
    assert parse_domain("A") == ("A", None, None)
    assert parse_domain("B:10-50") == ("B", 10, 50)
    assert parse_domain("C:-3-12") == ("C", -3, 12)
    for bad in ("", "A:10", "A:50-10", "A B"):
        with pytest.raises(ValueError):
            parse_domain(bad)


def test_domain_mask_against_brute_force():
    m = voxscale.Map(np.zeros((20, 22, 24), np.float32), (1.0, 1.1, 0.9), (2.0, -1.0, 0.5))
    atoms = np.array([[10.0, 9.0, 8.0], [12.5, 10.0, 9.0]])
    others = np.array([[12.0, 12.0, 9.0]])
    mask = domain_mask(m, atoms, 3.0, other_atoms=others)
    iz, iy, ix = np.indices(m.shape)
    xyz = m.origin + np.stack([ix, iy, iz], axis=-1) * m.voxel_size
    d_own = np.min(np.linalg.norm(xyz[..., None, :] - atoms, axis=-1), axis=-1)
    d_other = np.linalg.norm(xyz - others[0], axis=-1)
    np.testing.assert_array_equal(mask, (d_own <= 3.0) & (d_own < np.where(d_other <= 3.0, d_other, np.inf)))


@pytest.fixture(scope="module")
def rotated_chain():
    """The helix bundle with chain B rotated by 5° about its centre in the target."""
    st = helix_bundle()
    st_t = st.clone()
    chain = st_t[0]["B"]
    xyz = np.array([a.pos.tolist() for r in chain for a in r])
    centre = xyz.mean(axis=0)
    rot = rotation_from_vector(np.radians(5.0) * np.array([0.6, 0.0, 0.8]))
    for r in chain:
        for a in r:
            a.pos = gemmi.Position(*(rot @ (np.array(a.pos.tolist()) - centre) + centre))
    ref = model_map(st, voxel_size=1.0, shape=(56, 56, 64), origin=(-27.5, -27.5, -31.5),
                    d_min=3.0)
    tgt = model_map(st_t, voxel_size=1.0, shape=(56, 56, 64), origin=(-27.5, -27.5, -31.5),
                    d_min=3.0)
    return ref, tgt, st, rot


def test_local_realignment_removes_the_domain_difference(rotated_chain):
    ref, tgt, st, rot = rotated_chain
    result = local_realignment(ref, tgt, st, ["B"], d_min=3.0)
    (fit,) = result.domains
    # The local transform undoes the applied rotation (maps the target back onto the reference).
    assert rotation_angle_deg(fit.transform[:3, :3] @ rot) < 0.5
    assert abs(fit.rotation_deg - 5.0) < 0.5
    assert fit.cc_after > fit.cc_before
    # Before: chain B dominates the difference map; after: it is at the level of the rest.
    assert fit.rms_before > 5 * result.rms_rest
    assert fit.rms_after < 0.2 * fit.rms_before
    # What remains is interpolation of the resampled part (~0.5 σ here) and the spill of the
    # rotated chain into its neighbours, which the unchanged rest of the map also carries.
    assert fit.rms_after < 3.0 * result.rms_rest


def test_diff_cli_domains(rotated_chain, tmp_path):
    ref, tgt, st, _ = rotated_chain
    ref.write(tmp_path / "ref.mrc")
    tgt.write(tmp_path / "tgt.mrc")
    st.write_pdb(str(tmp_path / "ref.pdb"))
    out = tmp_path / "out"
    assert main(["diff", str(tmp_path / "ref.mrc"), str(tmp_path / "tgt.mrc"), "--resolution",
                 "30", "3", "--ref-model", str(tmp_path / "ref.pdb"), "--domains", "B", "A:1-10",
                 "--quiet", "--out", str(out)]) == 0
    report = json.loads((out / "domains.json").read_text())
    assert [d["domain"] for d in report["domains"]] == ["B", "A:1-10"]
    assert voxscale.read_map(out / "difference_local.mrc").shape == ref.shape
    assert main(["diff", str(tmp_path / "ref.mrc"), str(tmp_path / "tgt.mrc"), "--domains",
                 "B", "--quiet", "--out", str(tmp_path / "o2")]) == 2
