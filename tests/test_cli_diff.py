"""The ``voxscale diff`` command: outputs, their keys and contents, exit codes.

The main case is the haemoglobin model pair (5ME2 from ../shared/data; skipped without it):
the target model lacks the side chains of four residues of different chains, the target map is
1.7× the reference's scale and both carry independent low-pass-filtered noise. The error cases
use small synthetic maps and always run.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import gemmi
import numpy as np
import pytest

import voxscale
from voxscale.reciprocal.model_map import model_map
HAEMOGLOBIN = "models/pdb5me2_haemoglobin.pdb"
REMOVED = {("A", 42), ("B", 63), ("C", 87), ("D", 99)}
OUTPUTS = ["shells.json", "difference.mrc", "peaks.csv", "peaks.json", "peaks.cmm",
           "structure_factors.mtz", "shells.png"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "voxscale", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def noise_like(m, seed, d_min):
    rng = np.random.default_rng(seed)
    n = voxscale.low_pass(voxscale.Map(rng.standard_normal(m.shape).astype(np.float32),
                                       m.voxel_size), d_min).data
    return n / n.std()


@pytest.fixture(scope="module")
def pair(shared_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("diffpair")
    model_path = shared_file(HAEMOGLOBIN)
    st = voxscale.read_model(model_path)
    cen = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r]).mean(axis=0)
    truncated = st.clone()
    for ch in truncated[0]:
        for res in ch:
            if (ch.name, res.seqid.num) in REMOVED:
                for atom in list(res)[::-1]:
                    if atom.name not in ("N", "CA", "C", "O", "CB"):
                        res.remove_atom(atom.name, atom.altloc)
    grid = dict(voxel_size=1.0, shape=(96, 96, 96), origin=cen - 47.5, d_min=3.0)
    ref = model_map(st, **grid)
    tgt = model_map(truncated, **grid)
    sd = float(ref.data.std())
    ref = voxscale.Map(ref.data + 0.3 * sd * noise_like(ref, 1, 3.0), 1.0, ref.origin)
    tgt = voxscale.Map(1.7 * (tgt.data + 0.3 * sd * noise_like(tgt, 2, 3.0)), 1.0, tgt.origin)
    ref.write(folder / "ref.mrc")
    tgt.write(folder / "target.mrc")
    truncated.write_pdb(str(folder / "target.pdb"))
    return folder, model_path


@pytest.fixture(scope="module")
def diff_run(pair, tmp_path_factory):
    folder, model_path = pair
    out = tmp_path_factory.mktemp("diffout") / "out"
    proc = run_cli("diff", folder / "ref.mrc", folder / "target.mrc", "--resolution", 20, 3,
                   "--ref-model", model_path, "--target-model", folder / "target.pdb",
                   "--sigma", 4, "--threads", 2, "--out", out)
    return proc, out


def test_diff_exit_status_and_files(diff_run):
    proc, out = diff_run
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)   # no temporary files
    assert (out / "shells.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "k = " in proc.stdout


def test_diff_shells_json(diff_run):
    _, out = diff_run
    report = json.loads((out / "shells.json").read_text())
    for key in ("k", "B", "r_overall", "shells"):
        assert key in report
    assert report["k"] == pytest.approx(1 / 1.7, rel=0.01)
    assert abs(report["B"]) < 1.0
    assert report["d_max"] == 20.0 and report["d_min"] == 3.0
    assert report["r_overall"] < report["r_overall_before"]
    rows = report["shells"]
    assert len(rows) >= 5
    for row in rows:
        for key in ("d_max", "d_min", "n", "r", "fsc"):
            assert key in row
        assert row["d_max"] > row["d_min"] and row["n"] > 0
        assert 0 <= row["r"] < 100 and -1 <= row["fsc"] <= 1
    assert rows[0]["d_max"] == pytest.approx(20.0)
    assert rows[-1]["d_min"] == pytest.approx(3.0)
    assert all(a["d_min"] == pytest.approx(b["d_max"]) for a, b in zip(rows, rows[1:]))


def test_diff_difference_map(diff_run, pair):
    _, out = diff_run
    folder, _ = pair
    d = voxscale.read_map(out / "difference.mrc")
    ref = voxscale.read_map(folder / "ref.mrc")
    assert d.shape == ref.shape
    assert np.allclose(d.voxel_size, ref.voxel_size) and np.allclose(d.origin, ref.origin,
                                                                     atol=1e-3)
    # σ is that of the solvent (issue 14), not of the difference itself: 1 over the voxels
    # farther than 8 Å from every atom of the model
    report = json.loads((out / "shells.json").read_text())
    assert report["sigma_source"] == "solvent"
    from scipy.spatial import cKDTree
    st = voxscale.read_model(pair[1])
    atoms = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r])
    zz, yy, xx = np.indices(d.shape)
    xyz = d.origin + np.stack([xx, yy, zz], axis=-1).reshape(-1, 3) * d.voxel_size
    far = cKDTree(atoms).query(xyz, distance_upper_bound=8.0)[0] > 8.0
    assert float(d.data.ravel()[far].std(dtype=np.float64)) == pytest.approx(1.0, abs=0.1)


def test_diff_peaks_name_the_removed_side_chains(diff_run):
    _, out = diff_run
    peaks = json.loads((out / "peaks.json").read_text())
    assert isinstance(peaks, list) and len(peaks) >= 4
    for p in peaks:
        for key in ("x", "y", "z", "height_sigma", "volume_A3", "ref", "target"):
            assert key in p
        assert abs(p["height_sigma"]) >= 4.0 - 0.5
    heights = [abs(p["height_sigma"]) for p in peaks]
    assert heights[:4] == sorted(heights[:4], reverse=True) or max(heights[4:]) < min(heights[:4])
    top = peaks[:4]
    assert all(p["height_sigma"] < 0 for p in top)
    assert {(p["ref"]["chain"], p["ref"]["residue_number"]) for p in top} == REMOVED
    print("\nCLI top peaks: " + "; ".join(
        f"{p['height_sigma']:+.1f} σ {p['ref']['chain']}/{p['ref']['residue_name']}"
        f"{p['ref']['residue_number']} {p['ref']['atom']}" for p in top))
    # CSV: same peaks, documented columns
    with open(out / "peaks.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(peaks)
    for key in ("rank", "x", "y", "z", "height_sigma", "volume_A3", "integral", "ref_chain",
                "ref_residue_name", "ref_residue_number", "ref_atom", "ref_distance",
                "target_chain", "target_residue_number", "target_distance"):
        assert key in rows[0]
    for row, p in zip(rows, peaks):
        assert float(row["x"]) == pytest.approx(p["x"], abs=1e-3)
        assert row["ref_chain"] == p["ref"]["chain"]
    # CMM: one marker per peak at the same place
    markers = ET.parse(out / "peaks.cmm").getroot().findall("marker")
    assert len(markers) == len(peaks)
    assert float(markers[0].get("x")) == pytest.approx(peaks[0]["x"], abs=1e-3)


def test_diff_mtz(diff_run):
    _, out = diff_run
    mtz = gemmi.read_mtz_file(str(out / "structure_factors.mtz"))
    types = {c.label: c.type for c in mtz.columns}
    for label, kind in (("FREF", "F"), ("PHIREF", "P"), ("FTGT", "F"), ("PHITGT", "P"),
                        ("DELFWT", "F"), ("PHDELWT", "P")):
        assert types.get(label) == kind
    assert mtz.resolution_high() == pytest.approx(3.0, rel=0.02)


def test_diff_mtz_difference_coefficients_match_difference_map(diff_run):
    _, out = diff_run
    mtz = gemmi.read_mtz_file(str(out / "structure_factors.mtz"))
    d = voxscale.read_map(out / "difference.mrc")
    sigma = json.loads((out / "shells.json").read_text())["sigma"]
    nz, ny, nx = d.shape
    grid = mtz.transform_f_phi_to_map("DELFWT", "PHDELWT", exact_size=[nx, ny, nz])
    # The MTZ phases place the density in absolute coordinates (P1 cell from 0), the map has
    # its origin: compare at the map's voxel positions, interpolating gemmi's synthesis.
    rng = np.random.default_rng(3)
    idx = rng.integers(0, [nz, ny, nx], size=(3000, 3))
    xyz = d.origin + idx[:, ::-1] * d.voxel_size
    synth = np.array([grid.tricubic_interpolation(gemmi.Position(*p)) for p in xyz]) / sigma
    ours = d.data[idx[:, 0], idx[:, 1], idx[:, 2]]
    assert np.corrcoef(synth, ours)[0, 1] > 0.995
    assert np.abs(synth - ours).max() < 0.1 * np.abs(ours).max()


# -- error cases (synthetic maps, always run) -------------------------------------------------

@pytest.fixture(scope="module")
def small_maps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(0)
    data = voxscale.low_pass(voxscale.Map(rng.standard_normal((40, 40, 40)).astype(np.float32),
                                          1.0), 3.0).data
    ref = voxscale.Map(data, 1.0, (10.0, 20.0, 30.0))
    ref.write(folder / "ref.mrc")
    blob = np.zeros_like(data)
    blob[20, 18, 22] = 30.0
    voxscale.Map(data + voxscale.low_pass(voxscale.Map(blob, 1.0), 3.0).data, 1.0,
                 (10.0, 20.0, 30.0)).write(folder / "target.mrc")
    voxscale.Map(data[:, :, :36], 1.0, (10.0, 20.0, 30.0)).write(folder / "cropped.mrc")
    voxscale.Map(data, 1.0, (10.5, 20.0, 30.0)).write(folder / "shifted.mrc")
    voxscale.Map(data, 1.05, (10.0, 20.0, 30.0)).write(folder / "rescaled.mrc")
    return folder


def test_diff_without_models(small_maps, tmp_path):
    out = tmp_path / "o"
    proc = run_cli("diff", small_maps / "ref.mrc", small_maps / "target.mrc", "--out", out,
                   "--quiet", "--threads", 2)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    peaks = json.loads((out / "peaks.json").read_text())
    assert peaks and peaks[0]["height_sigma"] > 0
    assert peaks[0]["ref"] is None and peaks[0]["target"] is None
    # the blob was put at voxel (x, y, z) = (22, 18, 20)
    assert np.allclose([peaks[0]["x"], peaks[0]["y"], peaks[0]["z"]], [32.0, 38.0, 50.0],
                       atol=0.5)
    report = json.loads((out / "shells.json").read_text())
    # both maps are low-passed at 3 Å: their own signal ends there (not at Nyquist, 2 Å)
    assert report["d_max"] is None and 2.9 < report["d_min"] < 3.2
    # an existing output is not replaced without --force
    again = run_cli("diff", small_maps / "ref.mrc", small_maps / "target.mrc", "--out", out,
                    "--quiet")
    assert again.returncode == 2 and "--force" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("target", ["cropped.mrc", "shifted.mrc", "rescaled.mrc"])
def test_target_not_on_reference_grid(small_maps, tmp_path, target):
    out = tmp_path / "never"
    proc = run_cli("diff", small_maps / "ref.mrc", small_maps / target, "--out", out, "--quiet")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("voxscale diff: error:") and "reference grid" in lines[0]
    assert not out.exists()


def test_target_not_on_grid_without_quiet_still_one_error_line(small_maps, tmp_path):
    out = tmp_path / "never"
    proc = run_cli("diff", small_maps / "ref.mrc", small_maps / "cropped.mrc", "--out", out)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1
    assert not out.exists()


def test_grid_mismatch_message_is_readable(small_maps, tmp_path):
    proc = run_cli("diff", small_maps / "ref.mrc", small_maps / "cropped.mrc", "--out",
                   tmp_path / "o", "--quiet")
    assert proc.returncode == 2
    assert "np.float64" not in proc.stderr, proc.stderr


def test_bad_resolution_range(small_maps, tmp_path):
    out = tmp_path / "never"
    proc = run_cli("diff", small_maps / "ref.mrc", small_maps / "target.mrc", "--resolution",
                   3, 20, "--out", out, "--quiet")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists()
