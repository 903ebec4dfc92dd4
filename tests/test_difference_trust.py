"""Difference maps you can believe (issue 14): signal-based resolution, noise-calibrated
difference maps from half maps, peaks inside the molecule only, per-residue scores.

Known answers built into real data: the EMD-3488 haemoglobin grid with its model 5ME2 (side
chains of four residues cut back to alanine in the target, half maps with independent noise),
the real EMD-3488 map against a relabelled and rotated copy of itself (the same data), and two
independent noisy copies of one model map (the false-positive rate).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import map_coordinates
from scipy.stats import norm

import voxscale
from voxscale.maps.map import Map, relabel_voxel_size
from voxscale.pipeline.compare import difference_verdict
from voxscale.reciprocal.model_map import model_map
from voxscale.reciprocal.noise import half_map_noise
from voxscale.reciprocal.peaks import find_peaks
from voxscale.reciprocal.residue_scores import residue_scores
from voxscale.testing.variants import blurred, moved, truncated, with_half_maps

MAP_3488 = "maps/emd_3488_haemoglobin_ccpemutils.mrc"
MODEL_5ME2 = "models/pdb5me2_haemoglobin.pdb"
#: Residues whose side chains the target lacks: Tyr, His, Phe, Tyr.
CUT = [("A", 42), ("B", 63), ("C", 98), ("D", 130)]
FACTOR = 1.02


@pytest.fixture(scope="module")
def grid(shared_file):
    return voxscale.read_map(shared_file(MAP_3488))


@pytest.fixture(scope="module")
def model(shared_file):
    return voxscale.read_model(shared_file(MODEL_5ME2))


def _relabelled_copy(m: Map, angle: float = 25.0) -> Map:
    copy, _ = moved(m, angle, (1, 2, 3), (2.0, -1.0, 1.5))
    return relabel_voxel_size(copy, m.voxel_size * FACTOR)


def _model_pair(grid, model, *, cut, level=0.7):
    kw = dict(voxel_size=grid.voxel_size, shape=grid.shape, origin=grid.origin, d_min=3.2)
    ref = with_half_maps(model_map(model, **kw), level, seed=1, d_min=3.0)
    tgt = with_half_maps(model_map(truncated(model, cut), **kw), level, seed=11, d_min=3.0)
    return ref, tuple(_relabelled_copy(m) for m in tgt)


@pytest.fixture(scope="module")
def cut_result(grid, model):
    (ref, r1, r2), (tgt, t1, t2) = _model_pair(grid, model, cut=CUT)
    return voxscale.compare(ref, tgt, model, None, ref_halves=(r1, r2),
                            target_halves=(t1, t2), nthreads=2)


def test_cut_side_chains_rank_at_the_top(cut_result):
    r = cut_result
    print(f"\nMEASURED cut side chains: s {r.scan.best_scale:.5f}; {r.resolution.reason}; "
          f"k {r.after.k:.3f} B {r.after.B:.1f}; top residues "
          f"{[(x.chain, x.residue_number, round(x.score, 2)) for x in r.residue_scores[:6]]}; "
          f"peaks {[round(p.height_sigma, 1) for p in r.peaks[:6]]}")
    assert abs(r.scan.best_scale - 1 / FACTOR) < 5e-4
    assert r.resolution.source == "half_maps"
    assert r.difference.sigma_source == "half_maps"
    top = {(x.chain, x.residue_number) for x in r.residue_scores[:len(CUT)]}
    assert top == set(CUT)
    assert all(x.score < 0 for x in r.residue_scores[:len(CUT)])  # density lost in the target
    # the four strongest peaks are negative and next to the cut residues
    for p in r.peaks[:len(CUT)]:
        assert p.height_sigma < -8
        atom = p.nearest["ref"]
        assert (atom["chain"], atom["residue_number"]) in CUT
    # a fifth residue scores far below the cut ones
    assert r.residue_scores[len(CUT)].abs_score < 0.5 * r.residue_scores[len(CUT) - 1].abs_score
    assert r.quality.status == "ok", r.quality.to_dict()


def test_half_map_noise_known_answer(grid, model):
    """The half-map noise of a plain average has transfer 1 and the injected noise power;
    a sharpened full map has the transfer of its sharpening."""
    kw = dict(voxel_size=grid.voxel_size, shape=grid.shape, origin=grid.origin, d_min=3.2)
    full, h1, h2 = with_half_maps(model_map(model, **kw), 0.7, seed=3)
    n = half_map_noise(full, h1, h2, nthreads=2)
    inner = slice(2, 40)
    assert np.allclose(n.transfer[inner], 1.0, atol=1e-5)
    # (H1 − H2)/2 is the noise of the average exactly: its σ is that of the injected noise/√2
    injected = 0.5 * ((h1.data - full.data) - (h2.data - full.data))
    assert abs(n.noise.data.std() - injected.std()) < 1e-3 * injected.std()
    sharp = blurred(full, -40.0)
    t = half_map_noise(sharp, h1, h2, nthreads=2).transfer
    centres = 0.5 * (n.edges[:-1] + n.edges[1:])
    expected = np.exp(40.0 * centres ** 2 / 4.0)
    assert np.allclose(t[inner], expected[inner], rtol=0.02)


def test_same_data_with_half_maps_gives_no_peak(grid):
    """The real EMD-3488 with half maps (its own noise), against a relabelled and rotated
    copy of the same data and halves: nothing beyond 4.5 z, R below 1 %."""
    _, h1, h2 = with_half_maps(grid, 0.3, seed=5, d_min=3.2)
    # the noise inside a soft sphere that the relabelled, rotated copy's box still covers
    # (beyond it the copy has no data, a difference of its own)
    n = grid.shape[0]
    r = np.linalg.norm(np.indices(grid.shape) - (n - 1) / 2, axis=0) / n
    sphere = (0.5 * (1 + np.cos(np.pi * np.clip((r - 0.3) / 0.1, 0, 1)))).astype(np.float32)
    h1, h2 = (Map(grid.data + sphere * (h.data - grid.data), grid.voxel_size, grid.origin)
              for h in (h1, h2))
    full = Map(0.5 * (h1.data + h2.data), grid.voxel_size, grid.origin)
    copies = [_relabelled_copy(m) for m in (full, h1, h2)]
    r = voxscale.compare(full, copies[0], ref_halves=(h1, h2),
                         target_halves=tuple(copies[1:]), nthreads=2)
    extreme = float(np.max(np.abs(r.difference.map.data)))
    print(f"\nMEASURED same data with halves: {r.resolution.reason}; R {r.before.r_overall:.2f}"
          f" -> {r.after.r_overall:.2f} %; k {r.after.k:.3f} B {r.after.B:.1f}; largest |z| "
          f"{extreme:.2f}; peaks {len(r.peaks)}")
    assert r.after.r_overall < 1.0 and r.after.r_overall < r.before.r_overall
    assert extreme < 4.5 and not len(r.peaks)
    assert difference_verdict(r.difference, r.peaks, 4.0).startswith(
        "no difference beyond the noise")


@pytest.mark.parametrize("angle", [0.0, 25.0, 70.0])
def test_same_data_without_half_maps(grid, angle):
    """EMD-3488 against itself relabelled and rotated: R after below 1 %, a plausible B, and
    no peak (issue 14: none above 4.5 σ; none even above 4): its solvent is masked flat, so σ
    is the difference's own spread (flagged), and the resampling floor keeps interpolation
    error from passing for peaks."""
    r = voxscale.compare(grid, _relabelled_copy(grid, angle), nthreads=2)
    print(f"\nMEASURED same data {angle:.0f}°: {r.resolution.reason}; R "
          f"{r.before.r_overall:.2f} -> {r.after.r_overall:.2f} %; k {r.after.k:.3f} "
          f"B {r.after.B:.1f}; peaks {r.peaks.n_found}; largest |value| "
          f"{np.max(np.abs(r.difference.map.data)):.2f}; floor "
          f"{r.difference.resampling_floor}; {r.quality.status} {r.quality.codes}")
    # issue 14 asks for below 1 % at any rotation
    assert r.after.r_overall < 1.0 and r.after.r_overall < 0.1 * r.before.r_overall
    assert abs(r.after.B) < 20 and abs(r.after.k - 1) < 0.05
    assert r.resolution.source in ("map_fsc", "signal_power", "resampling")
    assert r.peaks.n_found == 0
    assert r.difference.sigma_source == "molecule" and "flat_solvent" in r.quality.codes
    assert r.difference.resampling_floor["rms_over_sigma_median"] > 0.2
    # the verdict says against what the peaks stand out (here not the noise: flagged)
    verdict = difference_verdict(r.difference, r.peaks, 4.0)
    assert "not the noise" in verdict and "resampling error" in verdict, verdict


def test_same_data_relabelled_only_is_not_placed_on_its_mate(grid):
    """EMD-3488 (haemoglobin, C2) relabelled ×1.02 and nothing else: at s = 1 the search's
    pose and its 180° mate score 0.9346222 and 0.9346218 and the mate won (18 peaks up to
    7.9 σ before the fix); refitted at the factor, the copy's own pose (the identity) wins:
    R after about 1e-3 %, no peak."""
    from voxscale.fit.rotations import rotation_angle_deg
    r = voxscale.compare(grid, relabel_voxel_size(grid, grid.voxel_size * FACTOR), nthreads=2)
    p = r.scan.placement
    print(f"\nMEASURED relabelled only: placement {p.to_dict()}; R {r.before.r_overall:.2f} -> "
          f"{r.after.r_overall:.4f} %; peaks {r.peaks.n_found}; {r.quality.codes}")
    assert p.symmetry_mate and p.symmetry_operators == 1 and p.mate_cc_gain > 0
    assert rotation_angle_deg(r.scan.transform[:3, :3]) < 0.01
    assert np.linalg.norm(r.scan.transform[:3, 3]) < 0.01
    assert r.after.r_overall < 0.01 and r.peaks.n_found == 0


def test_symmetric_same_data_rotated_gives_no_peak(shared_file):
    """EMD-1997 (GroEL, D7) against itself relabelled and rotated 70°: the search lands on a
    mate (142-165 peaks before the mates were refitted at the factor); now no peak."""
    m = voxscale.read_map(shared_file("maps/emd_1997_groel_powerfit.map"))
    r = voxscale.compare(m, _relabelled_copy(m, 70.0), nthreads=2)
    print(f"\nMEASURED GroEL same data 70°: mate gain {r.scan.placement.mate_cc_gain:.2e}; R "
          f"{r.before.r_overall:.2f} -> {r.after.r_overall:.3f} %; peaks {r.peaks.n_found}")
    assert r.scan.placement.symmetry_operators == 13
    assert r.after.r_overall < 1.0 and r.peaks.n_found == 0


def test_map_against_itself_is_zero(grid):
    r = voxscale.compare(grid, grid, nthreads=2)
    assert r.after.r_overall < 1e-3 and not len(r.peaks)
    assert float(np.max(np.abs(r.difference.map.data))) == 0.0
    assert "do not differ" in difference_verdict(r.difference, r.peaks, 4.0)
    assert r.target_coverage == {"box": 1.0, "molecule": 1.0}


@pytest.mark.parametrize("name", ["maps/emd_2566_mitoribosome_seg_daq.mrc",
                                  "maps/emd_5170_tempy.map"])
def test_map_against_itself_is_fully_covered(shared_file, name):
    """A segment whose density reaches its box faces, and a filament: against itself the
    target covers everything (no partial_coverage)."""
    m = voxscale.read_map(shared_file(name))
    r = voxscale.compare(m, m, nthreads=2)
    assert r.target_coverage["molecule"] > 0.99
    assert "partial_coverage" not in r.quality.codes



@pytest.mark.parametrize("halves", [True, False])
def test_false_positive_rate_of_independent_copies(grid, model, halves):
    """Two independent noisy copies of one model map, with half maps (z-scores of their
    noise) and without (σ of the solvent, the resampling floor under it): the voxels beyond
    ±4.5 are within 3× what a Gaussian predicts."""
    (ref, r1, r2), (tgt, t1, t2) = _model_pair(grid, model, cut=[])
    kw = dict(ref_halves=(r1, r2), target_halves=(t1, t2)) if halves else {}
    r = voxscale.compare(ref, tgt, nthreads=2, **kw)
    assert r.difference.sigma_source == ("half_maps" if halves else "solvent")
    if not halves:  # independent noise: not taken for shared
        print(f"\nMEASURED solvent noise ratio of independent copies {r.solvent_noise_ratio:.2f}")
        assert r.solvent_noise_ratio > 1.0 and "shared_noise" not in r.quality.codes
    z = r.difference.map.data
    beyond = int(np.count_nonzero(np.abs(z) > 4.5))
    expected = 2 * norm.sf(4.5) * z.size
    print(f"\nMEASURED independent copies ({'with' if halves else 'without'} half maps): "
          f"voxels beyond 4.5 {beyond} (Gaussian {expected:.1f}); sd {z.std():.3f}; peaks "
          f"{len(r.peaks)}")
    assert beyond <= 3 * expected
    assert 0.5 < z.std() < 1.5 or z.std() == 0.0


def test_implausible_b_is_flagged(grid):
    r = voxscale.compare(grid, blurred(grid, 400.0), nthreads=2, d_min=4.0)
    assert "implausible_b" in r.quality.codes and r.quality.status == "unreliable"


def test_peaks_edge_mask_and_cap():
    """Peaks at the box edge and outside the mask are dropped; a cut list says so."""
    data = np.zeros((40, 40, 40), np.float32)
    data[1, 20, 20] = 10.0     # one voxel from the z face
    data[20, 20, 20] = 9.0     # in the middle
    data[20, 20, 30] = -8.0    # in the middle, outside the mask below
    m = Map(data, 1.0)
    assert len(find_peaks(m, 4.0)) == 3
    kept = find_peaks(m, 4.0, edge_margin=4.0)
    assert [round(p.height_sigma) for p in kept] == [9, -8]
    mask = np.zeros(data.shape, bool)
    mask[10:30, 10:30, 10:25] = True
    kept = find_peaks(m, 4.0, edge_margin=4.0, mask=mask)
    assert [round(p.height_sigma) for p in kept] == [9]
    capped = find_peaks(m, 4.0, max_peaks=2)
    assert capped.capped and capped.n_found == 3 and len(capped) == 2


def test_residue_scores_against_scipy(grid, model):
    """Per-residue scores are the mean of the map interpolated (trilinear) at the atoms."""
    rng = np.random.default_rng(0)
    m = Map(rng.standard_normal(grid.shape).astype(np.float32), grid.voxel_size, grid.origin)
    scores = residue_scores(m, model, nthreads=2)
    chain = model[0]["A"]
    residue = chain[10]
    xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for a in residue if a.element.name != "H"])
    index = ((xyz - m.origin) / m.voxel_size)[:, ::-1].T  # z, y, x
    expected = map_coordinates(m.data.astype(np.float64), index, order=1)
    row = next(r for r in scores if r.chain == "A" and r.residue_number == residue.seqid.num)
    assert row.n_atoms == len(xyz)
    assert abs(row.score - expected.mean()) < 1e-5
    assert abs(row.abs_score - np.abs(expected).mean()) < 1e-5
    assert [r.abs_score for r in scores] == sorted((r.abs_score for r in scores), reverse=True)


def test_scored_model_marks_residues_outside_the_map(grid, model):
    """A residue with no atom in the map is not scored: B 0 and occupancy 0 in the scored
    model, so that it does not read as "no change"; scored residues keep their occupancy."""
    half = grid.shape[0] // 2  # a map of only the lower half of the box in z
    m = Map(np.ones((half,) + grid.shape[1:], np.float32), grid.voxel_size, grid.origin)
    scores = residue_scores(m, model, nthreads=2)
    scored = {(r.chain, r.residue_number, r.insertion_code) for r in scores}
    out = scores.scored_model(model)
    n_scored = n_outside = 0
    for chain in out[0]:
        for residue in chain:
            key = (chain.name, residue.seqid.num, residue.seqid.icode.strip())
            atoms = list(residue)
            if key in scored:
                n_scored += 1
                assert all(a.occ > 0 and a.b_iso == pytest.approx(1.0, abs=1e-6) for a in atoms)
            else:
                n_outside += 1
                assert all(a.occ == 0.0 and a.b_iso == 0.0 for a in atoms)
    assert n_scored > 10 and n_outside > 10


def test_cli_half_maps_must_come_in_pairs(tmp_path, shared_file, capsys):
    from voxscale.cli import main
    ref = str(shared_file(MAP_3488))
    code = main(["compare", ref, ref, "--ref-halves", ref, ref, "--out", str(tmp_path / "o"),
                 "--quiet"])
    assert code == 2 and "--target-halves" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_half_map_on_another_grid_is_refused(tmp_path, shared_file, capsys):
    from voxscale.cli import main
    ref = str(shared_file(MAP_3488))
    other = str(shared_file("maps/emd_1997_groel_powerfit.map"))
    code = main(["compare", ref, ref, "--ref-halves", ref, other, "--target-halves", ref, ref,
                 "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "emd_1997_groel_powerfit.map" in err and "grid" in err
    assert not (tmp_path / "o").exists()
