"""The resampling floor under σ and the target's coverage (issue 14: two maps of the same data
give no peak above 4.5 σ without half maps; the masked EMD-3488 against relabelled, rotated
copies of itself is in test_difference_trust.py).

Independent facts: scipy's ``affine_transform`` and ``gaussian_filter``, brute-force index
arithmetic for the coverage, identities (a round trip through the identity is exact; a zero
floor changes nothing; the floor's definition evaluated by hand), and real maps with a known
answer built in (EMD-3488, masked, and EMD-11007, unmasked, against relabelled, rotated copies
of themselves; density cut out of a copy at known places).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

import voxscale
from voxscale.fit.rotations import rotation_from_vector
from voxscale.fit.scan import (ScanResult, correction_index_map, resampling_round_trip,
                               target_coverage)
from voxscale.maps.interpolation import index_map, resample_by_index
from voxscale.maps.map import Map, relabel_voxel_size
from voxscale.pipeline.compare import difference_verdict, floor_region
from voxscale.reciprocal.residue_scores import residue_scores
from voxscale.reciprocal.difference import (FLOOR_WIDTH, _radial_derivative, floor_summary,
                                           resampling_floor, vector_difference)
from voxscale.reciprocal.transform import (fast_length, gaussian_smooth, half_grid_frequencies,
                                           half_transform, map_from_half_transform,
                                           resolution_mask)
from voxscale.testing.variants import moved

MAP_3488 = "maps/emd_3488_haemoglobin_ccpemutils.mrc"
MAP_11007 = "maps/emd_11007_ccpemutils.map.gz"
FACTOR = 1.02
SHIFT = (2.0, -1.0, 1.5)


def _random_map(shape, voxel, seed, d=3.0):
    rng = np.random.default_rng(seed)
    m = Map(rng.standard_normal(shape).astype(np.float32), voxel)
    return voxscale.low_pass(m, d)


def _scan_like(transform, scale) -> ScanResult:
    """A ScanResult carrying only what the correction reads (transform, factor)."""
    r = ScanResult.__new__(ScanResult)
    r.transform, r.best_scale, r.anisotropic = np.asarray(transform, float), float(scale), None
    return r


def _scipy_affine(data, matrix, shape):
    """scipy's cubic affine_transform (mirror) with an (x, y, z) index map, on (z, y, x)."""
    rev = np.eye(3)[::-1]
    return ndi.affine_transform(data.astype(np.float64), rev @ matrix[:, :3] @ rev,
                                rev @ matrix[:, 3], output_shape=shape, order=3, mode="mirror")


def _source_indices(matrix, shape):
    """x, y, z source indices, shape (3, nz, ny, nx), of every voxel of a grid of ``shape``."""
    iz, iy, ix = np.indices(shape)
    return np.einsum("ij,jzyx->izyx", matrix, np.stack([ix, iy, iz, np.ones_like(ix)]))


def _within(idx, shape, tol=0.0):
    """Where indices (3, ...) lie in the domain [−tol, n − 1 + tol] of a grid of ``shape``
    (z, y, x)."""
    top = np.array(shape[::-1])[:, None, None, None] - 1
    return np.all((idx >= -tol) & (idx <= top + tol), axis=0)


#: voxscale's resampling counts points within this (voxels) of the domain as inside.
EDGE = 0.01


def test_gaussian_smooth_matches_scipy():
    rng = np.random.default_rng(4)
    a = rng.random((30, 36, 28)).astype(np.float32)
    m = Map(a, (1.1, 1.0, 0.9))  # x, y, z
    fwhm = 3.0
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    expected = ndi.gaussian_filter(a.astype(np.float64), (sigma / 0.9, sigma / 1.0, sigma / 1.1),
                                   mode="wrap", truncate=8.0)
    got = gaussian_smooth(m, fwhm).data
    assert np.max(np.abs(got - expected)) < 2e-3 * a.std()
    assert abs(got.mean() - a.mean()) < 1e-6


def test_resample_by_index_matches_scipy_and_resample():
    m = _random_map((20, 22, 24), (1.0, 1.1, 0.9), seed=1)
    onto = Map(np.zeros((18, 20, 21), np.float32), 1.05, origin=(1.0, -2.0, 0.5))
    rot = rotation_from_vector(np.radians(20) * np.array([0.3, 0.5, 0.8]) /
                                        np.linalg.norm([0.3, 0.5, 0.8]))
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = rot, (1.0, 0.5, -1.5)
    matrix = index_map(m, onto, t, 1.03)
    got = resample_by_index(m, onto, matrix, 3).data
    assert np.array_equal(got, voxscale.resample(m, onto, t, 1.03, order=3).data)
    expected = _scipy_affine(m.data, matrix, onto.shape)
    idx = _source_indices(matrix, onto.shape)
    inside = _within(idx, m.shape)
    assert inside.mean() > 0.3
    assert np.max(np.abs(got[inside] - expected[inside])) < 1e-4 * m.data.std()
    assert np.all(got[~_within(idx, m.shape, EDGE)] == 0.0)
    with pytest.raises(ValueError, match="3x4"):
        resample_by_index(m, onto, np.eye(4), 3)


def test_round_trip_through_the_identity_is_exact():
    m = _random_map((16, 18, 20), 1.2, seed=2)
    r = resampling_round_trip(m, m, _scan_like(np.eye(4), 1.0), nthreads=2)
    assert np.max(np.abs(r.data - m.data)) < 1e-5 * m.data.std()


def test_round_trip_error_is_that_of_resampling_twice():
    """The round trip equals scipy's two cubic resamplings, through the inverse index map and
    back."""
    ref = _random_map((40, 40, 40), 1.0, seed=3, d=4.0)
    target = Map(np.zeros((38, 39, 41), np.float32), 1.04)
    t = np.eye(4)
    t[:3, :3] = rotation_from_vector(np.radians(30) * np.array([0.0, 0.6, 0.8]))
    scan = _scan_like(t, 0.99)
    forward = correction_index_map(ref, target, scan)
    backward = np.linalg.inv(np.vstack([forward, [0, 0, 0, 1]]))[:3]
    there = _scipy_affine(ref.data, backward, target.shape)
    # voxscale fills 0 beyond the source box (and clamps within EDGE of it); scipy mirrors:
    # compare where the back leg's taps see neither difference
    back_idx = _source_indices(backward, target.shape)
    there[~_within(back_idx, ref.shape)] = 0.0
    band = _within(back_idx, ref.shape, EDGE) & ~_within(back_idx, ref.shape)
    expected = _scipy_affine(there, forward, ref.shape)
    got = resampling_round_trip(ref, target, scan, nthreads=2).data
    idx = _source_indices(forward, ref.shape)
    deep = _within(idx, target.shape)
    # ... and away from the target voxels in the band (through the spline prefilter)
    near_band = ndi.binary_dilation(band, iterations=8)  # the prefilter decays as 0.268^k
    top = np.array(target.shape[::-1])[:, None, None, None] - 1
    tap = np.clip(np.rint(idx).astype(int), 0, top)
    deep &= ~near_band[tap[2], tap[1], tap[0]]
    assert deep.mean() > 0.3
    assert np.max(np.abs(got[deep] - expected[deep])) < 1e-4 * ref.data.std()
    # and it is an error of resampling: small against the map (away from the boxes' faces,
    # where the zero fill enters), not zero
    inner = (slice(12, 28),) * 3
    error = np.std(got[inner] - ref.data[inner]) / ref.data[inner].std()
    assert 1e-3 < error < 0.03, error


@pytest.mark.parametrize("margin", [0.0, 2.5])
def test_target_coverage_brute_force(margin):
    ref = Map(np.zeros((20, 24, 22), np.float32), 1.0, origin=(0.5, 0.0, -1.0))
    target = Map(np.zeros((16, 18, 17), np.float32), (1.1, 0.95, 1.25))  # x, y, z
    t = np.eye(4)
    t[:3, :3] = rotation_from_vector(np.radians(35) * np.array([0.6, 0.0, 0.8]))
    t[:3, 3] = (3.0, 2.0, 1.0)
    scan = _scan_like(t, 1.02)
    got = target_coverage(ref, target, scan, margin, nthreads=2)
    idx = _source_indices(correction_index_map(ref, target, scan), ref.shape)
    lo = np.ceil(margin / (target.voxel_size * 1.02))[:, None, None, None]  # x, y, z
    hi = np.array(target.shape[::-1])[:, None, None, None] - lo - 1
    if margin == 0:  # the resampling counts EDGE beyond the box as inside
        lo, hi = lo - EDGE, hi + EDGE
    inside = np.all((idx >= lo) & (idx <= hi), axis=0)
    # every voxel but those within rounding of a face
    exact = ~np.any((np.abs(idx - lo) < 1e-4) | (np.abs(idx - hi) < 1e-4), axis=0)
    assert 0.05 < inside.mean() < 0.95
    assert np.array_equal(got[exact], inside[exact])


def test_floor_known_answers():
    """No error, no floor; a pure change of scale and B (what the amplitude scaling absorbs)
    gives none either; an added error field e uncorrelated with the map gives G ∗ e² (G the
    Gaussian of FWHM d_min) and the map becomes Δ / √(σ² + G ∗ e²)."""
    shape, d_min = (32, 32, 32), 3.5
    ref = _random_map(shape, 1.0, seed=5, d=3.0)
    target = Map(ref.data + 0.2 * _random_map(shape, 1.0, seed=7).data, 1.0)
    plain = vector_difference(ref, target, None, d_min, nthreads=2)
    same = vector_difference(ref, target, None, d_min, nthreads=2,
                             floor=resampling_floor(ref, ref, None, d_min))
    assert np.allclose(same.map.data, plain.map.data, atol=1e-5)
    assert same.resampling_floor["rms_over_sigma_max"] < 1e-3
    # k·exp(−B s²/4) applied exactly: absorbed by the fitted scale
    f = half_transform(ref)
    sx, sy, sz = half_grid_frequencies(ref.shape, ref.cell)
    f *= (0.8 * np.exp(-0.25 * 15.0 * (sx ** 2 + sy ** 2 + sz ** 2))).astype(np.float32)
    blurred = map_from_half_transform(f, ref)
    scaled = vector_difference(ref, target, None, d_min, nthreads=2,
                               floor=resampling_floor(ref, blurred, None, d_min))
    assert scaled.resampling_floor["rms_over_sigma_max"] < 0.05 * np.sqrt(
        same.resampling_floor["rms_over_sigma_max"] ** 2 + 1) + 0.02
    # an error field of known size, localised about voxel (10, 10, 10), within the range
    centre = np.sum((np.indices(shape) - 10.0) ** 2, axis=0)
    error = 0.5 * _random_map(shape, 1.0, seed=8, d=4.0).data * np.exp(-centre / 50.0)
    error = voxscale.low_pass(Map(error.astype(np.float32), 1.0), d_min).data
    trip = Map(ref.data + error, 1.0)
    floored = vector_difference(ref, target, None, d_min, nthreads=2,
                                floor=resampling_floor(ref, trip, None, d_min))
    v = gaussian_smooth(Map(error ** 2, 1.0), FLOOR_WIDTH * d_min).data
    delta = plain.map.data * plain.sigma
    expected = delta / np.sqrt(plain.sigma ** 2 + v)
    near = centre < 25
    assert floored.resampling_floor["rms_over_sigma_max"] > 1.0  # the test field matters
    assert np.max(np.abs(floored.map.data - expected)) < 0.03 * np.max(np.abs(expected))
    assert np.abs(floored.map.data[near]).mean() < 0.8 * np.abs(plain.map.data[near]).mean()


@pytest.fixture(scope="module")
def haemoglobin(shared_file):
    return voxscale.read_map(shared_file(MAP_3488))


def _copy(m: Map, angle: float, *, order: int = 3, n_cut: int = 0):
    """A relabelled, rotated, shifted copy; with ``n_cut``, balls (radius 2 voxels) at that
    many of the copy's strongest voxels cut to 30 %. Returns the copy, the transform
    x_m = T·x_copy and the cut voxels (z, y, x of the copy's grid)."""
    copy, transform = moved(m, angle, (1, 2, 3), SHIFT, order=order)
    cut = np.zeros((0, 3), int)
    if n_cut:
        data = copy.data.copy()
        strong = np.argwhere(data > np.percentile(data, 99.5))
        cut = strong[np.random.default_rng(0).choice(len(strong), n_cut, replace=False)]
        iz, iy, ix = np.indices(data.shape)
        for z, y, x in cut:
            data[(iz - z) ** 2 + (iy - y) ** 2 + (ix - x) ** 2 <= 4] *= 0.3
        copy = Map(data, copy.voxel_size, copy.origin)
    return relabel_voxel_size(copy, m.voxel_size * FACTOR), transform, cut


def test_masked_map_cut_density_still_found(haemoglobin):
    """The floor does not hide a real change: four balls of density cut to 30 % in the copy
    are the four strongest peaks, negative, at the cut places."""
    target, _, cut = _copy(haemoglobin, 25.0, n_cut=4)
    r = voxscale.compare(haemoglobin, target, nthreads=2)
    # the cut voxels of the copy in the reference frame, through the correction found
    to_ref = np.linalg.inv(np.vstack([correction_index_map(haemoglobin, target, r.scan),
                                      [0, 0, 0, 1]]))
    places = [haemoglobin.origin + haemoglobin.voxel_size * (to_ref @ np.append(p[::-1], 1))[:3]
              for p in cut]
    top = r.peaks[:4]
    print(f"\nMEASURED masked cut: peaks {r.peaks.n_found}, top "
          f"{[round(p.height_sigma, 1) for p in r.peaks[:6]]}")
    assert all(p.height_sigma < -20 for p in top)

    def to_cut(p):
        return min(np.linalg.norm(np.array([p.x, p.y, p.z]) - q) for q in places)
    assert all(to_cut(p) < 2.0 for p in top)
    # and every other peak is the cut's own edge, none elsewhere (no interpolation error)
    assert all(to_cut(p) < 6.0 for p in r.peaks)
    assert abs(r.peaks[4].height_sigma) < 0.5 * abs(top[-1].height_sigma)


def test_trilinear_copy_is_flagged(haemoglobin):
    """A copy resampled with trilinear interpolation carries more error than the floor (which
    is the cubic resampling's): its peaks stay, and the verdict says they are not measured
    against the noise."""
    target, _, _ = _copy(haemoglobin, 25.0, order=1)
    r = voxscale.compare(haemoglobin, target, nthreads=2)
    print(f"\nMEASURED trilinear copy: peaks {r.peaks.n_found}; {r.quality.codes}")
    assert "flat_solvent" in r.quality.codes and r.peaks.n_found > 100
    assert "not the noise" in difference_verdict(r.difference, r.peaks, 4.0)


def test_unmasked_map_same_data_no_peak(shared_file):
    """EMD-11007 (a full 240³ map, its solvent noise kept) against itself relabelled and
    rotated by 25°: the copy loses the box corners, which lie outside the target's coverage;
    nothing beyond 4.5 σ, no flag."""
    m = voxscale.read_map(shared_file(MAP_11007))
    target, _, _ = _copy(m, 25.0)
    r = voxscale.compare(m, target, nthreads=2, sigma=4.5)
    print(f"\nMEASURED unmasked same data: R {r.before.r_overall:.2f} -> "
          f"{r.after.r_overall:.2f} %; σ {r.difference.sigma_source}; floor "
          f"{r.difference.resampling_floor}; coverage {r.target_coverage}; peaks "
          f"{r.peaks.n_found}; {r.quality.status} {r.quality.codes}")
    assert r.difference.sigma_source == "solvent"
    # the corners the copy lost are box, hardly molecule: not flagged
    assert r.target_coverage["box"] < 0.9 <= r.target_coverage["molecule"]
    assert r.peaks.n_found == 0
    # the same noise in both: said in words, the one reason
    assert r.solvent_noise_ratio < 0.25 and r.quality.codes == ["shared_noise"], r.quality.codes


def test_residue_scores_only_where_the_mask_is(shared_file):
    """Residues with no atom in the mask (where the corrected target has no data) are not
    scored (and get occupancy 0 in the scored model)."""
    grid = voxscale.read_map(shared_file(MAP_3488))
    model = voxscale.read_model(shared_file("models/pdb5me2_haemoglobin.pdb"))
    diff = Map(np.ones(grid.shape, np.float32), grid.voxel_size, grid.origin)
    half = np.zeros(grid.shape, bool)
    half[:, :, : grid.shape[2] // 2] = True  # x below the middle
    edge = grid.origin[0] + grid.voxel_size[0] * (grid.shape[2] // 2 - 0.5)
    scored = {(r.chain, r.residue_number) for r in residue_scores(diff, model, mask=half)}
    expected = set()
    for chain in model[0]:
        for res in chain:
            xs = [a.pos.x for a in res if a.element.name != "H"]
            if xs and min(xs) < edge - 1e-6:
                expected.add((chain.name, res.seqid.num))
    assert 0 < len(scored) < len(residue_scores(diff, model))
    assert scored == expected


def test_floor_is_read_not_changed_and_refused_with_noise():
    ref = _random_map((20, 20, 20), 1.0, seed=9)
    target = Map(ref.data + 0.3 * _random_map((20, 20, 20), 1.0, seed=10).data, 1.0)
    floor = np.full(ref.shape, 0.01, np.float32)
    vector_difference(ref, target, None, 3.5, floor=floor, nthreads=2)
    assert np.all(floor == np.float32(0.01))
    with pytest.raises(voxscale.errors.GridMismatchError, match="floor has shape"):
        vector_difference(ref, target, None, 3.5, floor=floor[:-1], nthreads=2)
    with pytest.raises(voxscale.errors.VoxscaleError, match="without noise"):
        vector_difference(ref, target, None, 3.5, floor=floor, noise=(ref, ref), nthreads=2)


def test_round_trip_and_floor_on_a_box_match_the_whole_grid(haemoglobin):
    """Over a box of the grid (what compare does when the molecule leaves much of the box
    empty) the round trip equals the whole grid's (SPLINE_MARGIN) and the floor stays within
    a few % of the whole grid's where it matters."""
    target, _, _ = _copy(haemoglobin, 25.0)
    scan = voxscale.compare(haemoglobin, target, nthreads=2, difference=False).scan
    whole = resampling_round_trip(haemoglobin, target, scan, nthreads=2)
    box = (slice(20, 80), slice(15, 70), slice(30, 90))
    part = resampling_round_trip(haemoglobin, target, scan, region=box, nthreads=2)
    error = np.std(whole.data[box] - haemoglobin.data[box])
    assert part.shape == (60, 55, 60)
    assert np.allclose(part.origin, haemoglobin.origin + haemoglobin.voxel_size * (30, 15, 20))
    assert np.max(np.abs(part.data - whole.data[box])) < 0.01 * error
    d_min = 3.5
    f_whole = resampling_floor(haemoglobin, whole, None, d_min, nthreads=2).data
    f_part = resampling_floor(haemoglobin, part, None, d_min, nthreads=2).data
    assert np.all(f_part[:20] == 0) and np.all(f_part[80:] == 0)  # nothing beyond the box
    inner = (slice(35, 65), slice(30, 55), slice(45, 75))  # 4 d_min inside the box
    strong = f_whole[inner] > np.percentile(f_whole[inner], 50)
    ratio = f_part[inner][strong] / f_whole[inner][strong]
    print(f"\nMEASURED box floor / whole: {np.percentile(ratio, [1, 50, 99]).round(3)}")
    assert 0.85 < np.median(ratio) < 1.15 and np.percentile(ratio, 1) > 0.6


def test_floor_region_is_the_molecule_box_with_margins():
    ref = Map(np.zeros((120, 100, 90), np.float32), (1.0, 1.2, 1.5))  # x, y, z Å
    inside = np.zeros(ref.shape, bool)
    inside[40:50, 30:60, 35:50] = True  # z, y, x
    d_min = 3.0
    box = floor_region(ref, inside, d_min)
    # margins of 4 d_min = 12 Å: 8 voxels along z (1.5 Å), 10 along y, 12 along x
    for b, lo, hi, pad, n in zip(box, (40, 30, 35), (50, 60, 50), (8, 10, 12), ref.shape):
        assert b.start <= lo - pad and b.stop >= hi + pad
        assert b.stop - b.start == fast_length(hi + pad - (lo - pad)) or b.stop == n
    assert floor_region(ref, np.zeros(ref.shape, bool), d_min) is None
    # atoms (x, y, z Å) widen it by their reach: residue scores and peaks near atoms
    atoms = np.array([[70.0, 30.0, 20.0], [75.0, 40.0, 30.0]])
    box = floor_region(ref, np.zeros(ref.shape, bool), d_min, points=atoms, reach=5.0)
    for b, lo, hi, v, n in zip(box, (20, 30, 70), (30, 40, 75), (1.5, 1.2, 1.0), ref.shape):
        assert b.start * v <= max(lo - 5 - 12, 0)
        assert b.stop * v >= min(hi + 5 + 12 - v, (n - 1) * v)
    full = np.zeros(ref.shape, bool)
    full[10:110, 10:90, 10:80] = True
    assert floor_region(ref, full, d_min) is None  # most of the grid: the whole grid


def test_radial_derivative_is_the_first_order_change_under_a_scale():
    """(x − c)·∇ρ against finite differences of an analytic Gaussian scaled about c, on an
    anisotropic grid with an origin."""
    shape, v, o = (40, 36, 44), np.array([1.1, 0.9, 1.0]), np.array([2.0, -3.0, 1.0])
    iz, iy, ix = np.indices(shape)
    x = np.stack([o[0] + v[0] * ix, o[1] + v[1] * iy, o[2] + v[2] * iz])
    x0 = np.array([24.0, 14.0, 21.0])[:, None, None, None]

    def rho(points):
        return np.exp(-np.sum((points - x0) ** 2, axis=0) / 18.0)

    m = Map(rho(x).astype(np.float32), v, o)
    c = np.array([20.0, 12.0, 22.0])[:, None, None, None]
    got = _radial_derivative(half_transform(m), resolution_mask(m.shape, m.cell, None, 2.2), m,
                             c.ravel(), 2)
    eps = 1e-4
    expected = (rho(c + (1 + eps) * (x - c)) - rho(x)) / eps
    assert np.max(np.abs(got - expected)) < 1e-3 * np.max(np.abs(expected))


def test_scale_uncertainty_floor_silences_a_pose_error():
    """A map against a copy scaled by a factor within its stated uncertainty, σ taken where
    the scale moves little (about its centre): with the floor of that uncertainty nothing
    stands out; without it, the displacement at the periphery is many σ."""
    ref = _random_map((40, 40, 40), 1.0, seed=12, d=3.0)
    scan = _scan_like(np.eye(4), 1.0 + 5e-5)
    moved_copy = voxscale.resample(ref, ref, None, 1.0 + 5e-5, order=3)
    d_min = 3.5
    centre = np.sum((np.indices(ref.shape) - 19.5) ** 2, axis=0) < 16
    trip = resampling_round_trip(ref, ref, scan, nthreads=2)
    plain = vector_difference(ref, moved_copy, None, d_min, nthreads=2, mask=centre,
                              floor=resampling_floor(ref, trip, None, d_min))
    floored = vector_difference(ref, moved_copy, None, d_min, nthreads=2, mask=centre,
                                floor=resampling_floor(ref, trip, None, d_min,
                                                       scale_uncertainty=2e-4))
    inner = (slice(6, 34),) * 3
    print(f"\nMEASURED pose error: largest |value| {np.max(np.abs(plain.map.data[inner])):.2f} "
          f"without the uncertainty's floor, {np.max(np.abs(floored.map.data[inner])):.2f} with")
    assert np.max(np.abs(plain.map.data[inner])) > 6.0
    assert np.max(np.abs(floored.map.data[inner])) < 2.0


def test_boxed_floor_gives_the_same_difference_as_the_embedded_one():
    """resampling_floor(boxed=True) keeps only its box (0 beyond it, memory); the vector
    difference and the floor's summary are the same, to the bit, as with the floor embedded
    in the whole grid, for regions inside, across and outside the box, and none."""
    shape, d_min = (40, 36, 44), 3.5
    ref = _random_map(shape, 1.0, seed=15, d=3.0)
    target = Map(ref.data + 0.3 * _random_map(shape, 1.0, seed=16).data, 1.0)
    round_trip = Map._on_grid_of_box(
        (ref.data[6:30, 5:31, 8:40] + 0.05 * _random_map((24, 26, 32), 1.0, seed=17).data)
        .astype(np.float32), ref, (8, 5, 6))
    whole = resampling_floor(ref, round_trip, None, d_min, nthreads=2)
    boxed = resampling_floor(ref, round_trip, None, d_min, boxed=True, nthreads=2)
    assert boxed.shape == (24, 26, 32) and np.allclose(boxed.origin, ref.origin + (8, 5, 6))
    np.testing.assert_array_equal(whole.data[6:30, 5:31, 8:40], boxed.data)
    assert np.all(whole.data[:6] == 0) and np.all(whole.data[:, :, 40:] == 0)
    inside = np.zeros(shape, bool)
    inside[10:20, 10:20, 10:20] = True
    across = np.zeros(shape, bool)
    across[20:38, 2:30, 30:44] = True
    for region in (inside, across, ~inside, None):
        a = vector_difference(ref, target, None, d_min, floor=whole, floor_region=region,
                              nthreads=2)
        b = vector_difference(ref, target, None, d_min, floor=boxed, floor_region=region,
                              nthreads=2)
        np.testing.assert_array_equal(a.map.data, b.map.data)
        assert a.resampling_floor == b.resampling_floor
    box = (slice(6, 30), slice(5, 31), slice(8, 40))
    for region in (inside, across, None, np.zeros(shape, bool)):
        assert floor_summary(boxed, 0.7, region, box, shape) == floor_summary(whole, 0.7,
                                                                              region)
    with pytest.raises(ValueError, match="grid's shape"):
        floor_summary(boxed, 0.7, None, box)
    with pytest.raises(voxscale.errors.GridMismatchError, match="the floor"):
        vector_difference(ref, target, None, d_min, nthreads=2, floor=Map._on_grid_of_box(
            boxed.data, Map(np.zeros((10, 10, 10), np.float32), 1.3), (0, 0, 0)))
