"""Peaks of difference maps (voxscale.peaks.find_peaks and the PeakTable writers).

The maps are analytic Gaussian blobs placed off-grid at known positions on a grid with
non-cubic voxels and a non-zero origin; volumes and integrals are checked against a brute-force
count (scipy.ndimage.label, 6-connected); nearest atoms against a tiny gemmi model built here;
the CSV/JSON/CMM outputs are parsed with csv, json and xml.etree.
"""
from __future__ import annotations

import csv
import io
import json
import time
import xml.etree.ElementTree as ET

import gemmi
import numpy as np
import pytest
import scipy.ndimage as ndi

import voxscale

SHAPE = (40, 44, 48)             # nz, ny, nx
VOXEL = np.array([0.8, 1.0, 1.2])  # x, y, z
ORIGIN = np.array([5.0, -3.0, 2.0])


def coords():
    nz, ny, nx = SHAPE
    x = ORIGIN[0] + np.arange(nx) * VOXEL[0]
    y = ORIGIN[1] + np.arange(ny) * VOXEL[1]
    z = ORIGIN[2] + np.arange(nz) * VOXEL[2]
    return x[None, None, :], y[None, :, None], z[:, None, None]


def blobs(*specs):
    """Sum of Gaussians: each spec (centre (x, y, z) Å, height, sigma Å)."""
    x, y, z = coords()
    out = np.zeros(SHAPE)
    for centre, height, sigma in specs:
        r2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
        out = out + height * np.exp(-r2 / (2 * sigma**2))
    return voxscale.Map(out.astype(np.float32), VOXEL, ORIGIN)


def pos(p):
    return np.array([p.x, p.y, p.z])


P1 = np.array([20.33, 18.71, 26.47])
P2 = np.array([15.10, 30.20, 20.90])


# -- 7. sub-voxel refinement, sign, height ----------------------------------------------------

@pytest.mark.parametrize("sigma_A", [1.2, 1.6, 2.0])
def test_sub_voxel_position_of_off_grid_blobs(sigma_A):
    m = blobs((P1, 10.0, sigma_A), (P2, -8.0, sigma_A))
    peaks = voxscale.find_peaks(m, 3.0)
    assert len(peaks) == 2
    pos_peak = next(p for p in peaks if p.height_sigma > 0)
    neg_peak = next(p for p in peaks if p.height_sigma < 0)
    err_pos = np.abs(pos(pos_peak) - P1) / VOXEL
    err_neg = np.abs(pos(neg_peak) - P2) / VOXEL
    print(f"\nσ={sigma_A} Å: position error (voxels) +{np.round(err_pos, 3)} "
          f"−{np.round(err_neg, 3)}; heights {pos_peak.height_sigma:.3f} "
          f"{neg_peak.height_sigma:.3f}")
    assert np.all(err_pos < 0.1) and np.all(err_neg < 0.1)
    # 3-point parabolas underestimate a narrow Gaussian's height (σ = 1 voxel: ~5 %)
    tol = 0.06 if sigma_A < 1.5 else 0.03
    assert pos_peak.height_sigma == pytest.approx(10.0, rel=tol)
    assert neg_peak.height_sigma == pytest.approx(-8.0, rel=tol)
    # the refined height is at least the best grid value (the vertex of the parabolas)
    assert pos_peak.height_sigma >= m.data.max() - 1e-6
    assert neg_peak.height_sigma <= m.data.min() + 1e-6


def test_blob_centred_between_voxels_gives_one_peak_at_the_midpoint():
    """Two voxels with equal values (a plateau) are both local maxima; they must merge into one
    peak at the midpoint."""
    centre = ORIGIN + np.array([20.5, 22.0, 15.5]) * VOXEL   # half-way along x and z
    m = blobs((centre, 6.0, 1.5))
    peaks = voxscale.find_peaks(m, 2.0)
    assert len(peaks) == 1
    assert np.all(np.abs(pos(peaks[0]) - centre) / VOXEL < 0.1)


def test_threshold_is_in_map_units_and_both_signs():
    m = blobs((P1, 5.0, 1.5), (P2, -3.0, 1.5))
    assert [round(p.height_sigma) for p in voxscale.find_peaks(m, 2.0)] == [5, -3]
    assert [round(p.height_sigma) for p in voxscale.find_peaks(m, 4.0)] == [5]
    assert len(voxscale.find_peaks(m, 6.0)) == 0
    flat = voxscale.Map(np.zeros(SHAPE, np.float32), VOXEL, ORIGIN)
    assert len(voxscale.find_peaks(flat, 1.0)) == 0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            voxscale.find_peaks(m, bad)


# -- merge radius, max_peaks, order -----------------------------------------------------------

def test_merge_radius():
    a = np.array([20.0, 20.0, 25.0])
    b = a + np.array([3.5, 0.0, 0.0])          # 3.5 Å apart, narrow: two separate maxima
    m = blobs((a, 9.0, 0.8), (b, 7.0, 0.8))
    assert len(voxscale.find_peaks(m, 2.0, merge_radius=2.0)) == 2
    merged = voxscale.find_peaks(m, 2.0, merge_radius=5.0)
    assert len(merged) == 1
    assert np.linalg.norm(pos(merged[0]) - a) < 0.3          # the stronger one survives
    # peaks of opposite sign are never merged
    m2 = blobs((a, 9.0, 0.8), (b, -7.0, 0.8))
    both = voxscale.find_peaks(m2, 2.0, merge_radius=5.0)
    assert sorted(np.sign([p.height_sigma for p in both])) == [-1, 1]
    # the default radius (max(1.5 Å, 1.5 × voxel) = 1.8 Å here) keeps them apart
    assert len(voxscale.find_peaks(m, 2.0)) == 2


def test_max_peaks_keeps_the_strongest():
    rng = np.random.default_rng(0)
    heights = [12.0, -11.0, 10.0, -9.0, 8.0, 7.0, -6.0, 5.0]
    centres = []
    while len(centres) < len(heights):
        c = ORIGIN + rng.uniform(6, 30, 3)
        if all(np.linalg.norm(c - o) > 8 for o in centres):
            centres.append(c)
    m = blobs(*[(c, h, 1.5) for c, h in zip(centres, heights)])
    full = voxscale.find_peaks(m, 3.0, max_peaks=None)
    assert [round(p.height_sigma) for p in full] == [12, -11, 10, -9, 8, 7, -6, 5]
    top = voxscale.find_peaks(m, 3.0, max_peaks=3)
    assert [round(p.height_sigma) for p in top] == [12, -11, 10]
    for p, c in zip(full, centres):
        assert np.linalg.norm(pos(p) - c) < 0.15


def test_table_is_ordered_by_the_reported_height():
    """peaks.json is documented 'strongest first'; the reported height_sigma is the refined
    one. A blob exactly on a voxel (grid value = height 10) and a stronger one (10.8) centred
    half-way between voxels on every axis (grid value ~9.1, refined ~10.3)."""
    on_grid = ORIGIN + np.array([10, 12, 10]) * VOXEL
    off_grid = ORIGIN + np.array([30.5, 30.5, 28.5]) * VOXEL
    m = blobs((on_grid, 10.0, 1.5), (off_grid, 10.8, 1.5))
    peaks = voxscale.find_peaks(m, 3.0)
    heights = [p.height_sigma for p in peaks]
    assert len(heights) == 2 and heights[0] > 9.9 and heights[1] > 9.9
    assert abs(heights[0]) >= abs(heights[1]), heights


# -- volume and integral -------------------------------------------------------------------------

def test_volume_and_integral_against_brute_force():
    threshold = 3.0
    m = blobs((P1, 10.0, 1.5), (P2, -8.0, 2.0))
    peaks = voxscale.find_peaks(m, threshold)
    voxel_volume = float(np.prod(VOXEL))
    cross = ndi.generate_binary_structure(3, 1)  # 6-connected
    for p in peaks:
        sign = np.sign(p.height_sigma)
        labels, _ = ndi.label(sign * m.data >= threshold, structure=cross)
        ix, iy, iz = np.round((pos(p) - ORIGIN) / VOXEL).astype(int)
        region = labels == labels[iz, iy, ix]
        assert labels[iz, iy, ix] > 0
        assert p.volume_A3 == pytest.approx(region.sum() * voxel_volume, rel=1e-9)
        assert p.integral == pytest.approx(m.data[region].sum(dtype=np.float64) * voxel_volume,
                                           rel=1e-5)
        assert np.sign(p.integral) == sign
    # analytic check for the positive blob: the volume of {r : 10 exp(−r²/2σ²) >= 3}
    r = 1.5 * np.sqrt(2 * np.log(10 / 3))
    assert peaks[0].volume_A3 == pytest.approx(4 / 3 * np.pi * r**3, rel=0.1)


def test_two_peaks_in_one_region_report_the_whole_region():
    a = np.array([20.0, 20.0, 25.0])
    b = a + np.array([3.6, 0.0, 0.0])
    m = blobs((a, 9.0, 1.0), (b, 8.0, 1.0))
    peaks = voxscale.find_peaks(m, 2.0, merge_radius=1.0)
    assert len(peaks) == 2
    labels, n = ndi.label(m.data >= 2.0)
    assert n == 1
    expected = (labels > 0).sum() * float(np.prod(VOXEL))
    assert all(p.volume_A3 == pytest.approx(expected) for p in peaks)


# -- nearest atoms ---------------------------------------------------------------------------

def tiny_model(atoms):
    """atoms: list of (chain, residue name, number, atom name, (x, y, z))."""
    st = gemmi.Structure()
    model = gemmi.Model("1")
    chains = {}
    for chain, resname, num, name, xyz in atoms:
        if chain not in chains:
            model.add_chain(gemmi.Chain(chain))
            chains[chain] = model[chain]
        ch = chains[chain]
        res = next((r for r in ch if r.seqid.num == num), None)
        if res is None:
            r = gemmi.Residue()
            r.name = resname
            r.seqid = gemmi.SeqId(num, " ")
            ch.add_residue(r)
            res = ch[len(ch) - 1]
        a = gemmi.Atom()
        a.name = name
        a.element = gemmi.Element(name[0])
        a.pos = gemmi.Position(*xyz)
        res.add_atom(a)
    st.add_model(model)
    return st


@pytest.fixture
def two_blob_map():
    return blobs((P1, 10.0, 1.5), (P2, -8.0, 1.5))


@pytest.fixture
def models():
    ref = tiny_model([("A", "TYR", 42, "OH", P1 + [0.6, 0, 0]),
                      ("A", "TYR", 42, "CZ", P1 + [2.0, 0, 0]),
                      ("B", "HIS", 63, "NE2", P2 + [0, -1.1, 0]),
                      ("B", "GLY", 64, "CA", P2 + [0, 5.0, 0])])
    target = tiny_model([("C", "LYS", 7, "NZ", P2 + [0, 0, 0.4])])
    return {"ref": ref, "target": target}


def test_nearest_atoms(two_blob_map, models):
    peaks = voxscale.find_peaks(two_blob_map, 3.0, models)
    first, second = peaks
    assert first.nearest["ref"]["chain"] == "A"
    assert first.nearest["ref"]["residue_name"] == "TYR"
    assert first.nearest["ref"]["residue_number"] == 42
    assert first.nearest["ref"]["atom"] == "OH"
    assert first.nearest["ref"]["distance"] == pytest.approx(
        np.linalg.norm(pos(first) - (P1 + [0.6, 0, 0])))
    assert second.nearest["ref"]["atom"] == "NE2"
    assert second.nearest["target"]["chain"] == "C"
    assert second.nearest["target"]["distance"] == pytest.approx(0.4, abs=0.1)
    assert first.nearest["target"]["atom"] == "NZ"   # the only atom, far away
    assert first.nearest["target"]["distance"] > 10


# -- outputs -----------------------------------------------------------------------------------

CSV_BASE = ["rank", "x", "y", "z", "height_sigma", "volume_A3", "integral"]
ATOM_FIELDS = ["chain", "residue_name", "residue_number", "atom", "distance"]


def test_csv_output(two_blob_map, models):
    peaks = voxscale.find_peaks(two_blob_map, 3.0, models)
    rows = list(csv.DictReader(io.StringIO(peaks.to_csv())))
    header = next(csv.reader(io.StringIO(peaks.to_csv())))
    assert header == CSV_BASE + [f"{lab}_{f}" for lab in ("ref", "target") for f in ATOM_FIELDS]
    assert len(rows) == len(peaks) == 2
    for rank, (row, p) in enumerate(zip(rows, peaks), start=1):
        assert int(row["rank"]) == rank
        for key in ("x", "y", "z", "height_sigma", "volume_A3", "integral"):
            assert float(row[key]) == pytest.approx(getattr(p, key), abs=0.01)
        assert row["ref_chain"] == p.nearest["ref"]["chain"]
        assert int(row["ref_residue_number"]) == p.nearest["ref"]["residue_number"]
        assert float(row["target_distance"]) == pytest.approx(p.nearest["target"]["distance"],
                                                              abs=1e-3)
    plain = voxscale.find_peaks(two_blob_map, 3.0)
    assert next(csv.reader(io.StringIO(plain.to_csv()))) == CSV_BASE


def test_json_output(two_blob_map, models):
    peaks = voxscale.find_peaks(two_blob_map, 3.0, models)
    data = json.loads(peaks.to_json())
    assert isinstance(data, list) and len(data) == 2
    for entry, p in zip(data, peaks):
        for key in ("x", "y", "z", "height_sigma", "volume_A3", "ref", "target"):
            assert key in entry
        assert entry["x"] == pytest.approx(p.x) and entry["height_sigma"] == pytest.approx(
            p.height_sigma)
        assert set(entry["ref"]) == set(ATOM_FIELDS)
    heights = [abs(e["height_sigma"]) for e in data]
    assert heights == sorted(heights, reverse=True)


def test_cmm_output(two_blob_map, models):
    peaks = voxscale.find_peaks(two_blob_map, 3.0, models)
    root = ET.fromstring(peaks.to_cmm(name="my peaks"))
    assert root.tag == "marker_set" and root.get("name") == "my peaks"
    markers = root.findall("marker")
    assert len(markers) == len(peaks)
    for mk, p in zip(markers, peaks):
        xyz = np.array([float(mk.get(a)) for a in ("x", "y", "z")])
        assert np.allclose(xyz, pos(p), atol=1e-3)
        r, g, b = (float(mk.get(c)) for c in ("r", "g", "b"))
        assert (g > r) == (p.height_sigma > 0)       # green positive, red negative
        assert float(mk.get("radius")) > 0
        assert p.nearest["ref"]["residue_name"] in mk.get("note")


def test_empty_table_outputs():
    flat = voxscale.Map(np.zeros(SHAPE, np.float32), VOXEL, ORIGIN)
    peaks = voxscale.find_peaks(flat, 3.0)
    assert json.loads(peaks.to_json()) == []
    assert list(csv.reader(io.StringIO(peaks.to_csv()))) == [CSV_BASE]
    assert ET.fromstring(peaks.to_cmm()).findall("marker") == []


# -- cost -----------------------------------------------------------------------------------------

def test_many_peaks_are_listed():
    """A noise difference map at 3σ has ~900 extrema in 80³; listing them must not take
    seconds (a grid/KD-tree merge does it in tens of milliseconds; the Python loop over peaks
    with refinement alone costs ~50 ms)."""
    rng = np.random.default_rng(0)
    noise = voxscale.low_pass(voxscale.Map(rng.standard_normal((80, 80, 80)).astype(np.float32),
                                           1.0), 3.0)
    m = voxscale.Map(noise.data / noise.data.std(), 1.0)
    t0 = time.perf_counter()
    peaks = voxscale.find_peaks(m, 3.0, max_peaks=None, nthreads=2)
    print(f"\n{len(peaks)} peaks in {time.perf_counter() - t0:.2f} s")  # no timing assertion
    assert len(peaks) > 600
    heights = np.abs([p.height_sigma for p in peaks])
    assert np.all(np.diff(heights) <= 0)
