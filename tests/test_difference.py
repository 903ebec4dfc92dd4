"""Difference maps (voxscale.reciprocal.difference; docs/method.md §1 steps 6 and 8, §2 difference sign).

Expectations are built here independently of the code under test: Gaussian blobs placed at
known positions, blurs and low-passes done with numpy.fft, the power spectrum of the result
inspected with numpy.fft.rfftn, and σ recomputed with numpy. The haemoglobin case (5ME2 from
../shared/data) removes known side chains from the target model and checks that the strongest
negative peaks name exactly those residues; it is skipped when the data folder is absent.
"""
from __future__ import annotations

import gemmi
import numpy as np
import pytest

import voxscale
from voxscale.reciprocal.model_map import model_map
HAEMOGLOBIN = "models/pdb5me2_haemoglobin.pdb"
SHAPE = (48, 52, 56)            # nz, ny, nx
VOXEL = (1.0, 0.9, 1.1)         # x, y, z
ORIGIN = (10.0, -20.0, 5.0)
BACKBONE_CB = ("N", "CA", "C", "O", "CB")


# -- helpers ----------------------------------------------------------------------------------

def frequencies(shape, voxel):
    nz, ny, nx = shape
    vx, vy, vz = np.broadcast_to(np.asarray(voxel, dtype=np.float64), (3,))
    return (np.fft.rfftfreq(nx, d=vx)[None, None, :], np.fft.fftfreq(ny, d=vy)[None, :, None],
            np.fft.fftfreq(nz, d=vz)[:, None, None])


def s_grid(shape, voxel):
    sx, sy, sz = frequencies(shape, voxel)
    return np.sqrt(sx**2 + sy**2 + sz**2)


def fourier_filter(data, voxel, *, k=1.0, b=0.0, d_min=None):
    """numpy.fft: k·exp(−B s²/4), optionally cut at d_min (inclusive); F(000) kept."""
    s = s_grid(data.shape, voxel)
    f = np.fft.rfftn(data.astype(np.float64)) * k * np.exp(-0.25 * b * s**2)
    if d_min is not None:
        f *= s <= 1.0 / d_min * (1 + 1e-9)
    return np.fft.irfftn(f, s=data.shape, axes=(0, 1, 2)).astype(np.float32)


def gaussian_blob(shape, voxel, origin, centre, height, sigma):
    nz, ny, nx = shape
    vx, vy, vz = voxel
    x = origin[0] + np.arange(nx) * vx
    y = origin[1] + np.arange(ny) * vy
    z = origin[2] + np.arange(nz) * vz
    r2 = ((x[None, None, :] - centre[0]) ** 2 + (y[None, :, None] - centre[1]) ** 2
          + (z[:, None, None] - centre[2]) ** 2)
    return (height * np.exp(-r2 / (2 * sigma**2))).astype(np.float32)


def voxel_position(m, index_zyx):
    iz, iy, ix = index_zyx
    return m.origin + np.array([ix, iy, iz]) * m.voxel_size


@pytest.fixture(scope="module")
def base_map():
    rng = np.random.default_rng(3)
    data = fourier_filter(rng.standard_normal(SHAPE), VOXEL, b=40.0)
    return voxscale.Map(data / data.std(), VOXEL, ORIGIN)


# -- 1. identical maps ------------------------------------------------------------------------

def test_identical_maps_give_an_all_zero_difference(base_map):
    res = voxscale.vector_difference(base_map, base_map, None, 3.0)
    assert res.sigma == 0.0
    assert not np.any(res.map.data)
    assert res.scaling.k == pytest.approx(1.0, abs=1e-7)
    assert res.scaling.B == pytest.approx(0.0, abs=1e-5)
    assert all(row["r"] == pytest.approx(0.0, abs=1e-5) for row in res.scaling.shells)
    d = voxscale.difference_map(base_map, base_map, 20.0, 3.0, scaling="anisotropic")
    assert not np.any(d.data)
    assert d.shape == base_map.shape
    assert np.array_equal(d.voxel_size, base_map.voxel_size)
    assert np.array_equal(d.origin, base_map.origin)


# -- 5. sign, σ units, resolution range --------------------------------------------------------

BLOB_AT = np.array([37.3, 3.1, 28.6])   # Å, inside the box, off-grid


def test_sign_is_target_minus_reference(base_map):
    blob = gaussian_blob(SHAPE, VOXEL, ORIGIN, BLOB_AT, 8.0, 1.2)
    target = voxscale.Map(base_map.data + blob, VOXEL, ORIGIN)
    d = voxscale.difference_map(base_map, target, None, 2.5)
    imax = np.unravel_index(np.argmax(d.data), d.shape)
    imin = np.unravel_index(np.argmin(d.data), d.shape)
    assert d.data[imax] > -d.data[imin]          # the strongest feature is positive
    assert d.data[imax] > 10
    assert np.linalg.norm(voxel_position(d, imax) - BLOB_AT) < 1.0
    # swapping the maps flips the sign
    e = voxscale.difference_map(target, base_map, None, 2.5)
    jmin = np.unravel_index(np.argmin(e.data), e.shape)
    assert e.data[jmin] < -10 and np.linalg.norm(voxel_position(e, jmin) - BLOB_AT) < 1.0
    # the peak finder reports it as positive at that place
    peaks = voxscale.find_peaks(d, 6.0)
    assert peaks[0].height_sigma > 0
    assert np.linalg.norm([peaks[0].x - BLOB_AT[0], peaks[0].y - BLOB_AT[1],
                           peaks[0].z - BLOB_AT[2]]) < 0.5


def test_sigma_units_over_box_and_over_mask(base_map):
    rng = np.random.default_rng(9)
    noise = fourier_filter(rng.standard_normal(SHAPE), VOXEL, b=40.0)
    target = voxscale.Map(1.3 * base_map.data + 0.4 * noise / noise.std(), VOXEL, ORIGIN)
    res = voxscale.vector_difference(base_map, target, 30.0, 3.0)
    assert float(np.std(res.map.data, dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)
    assert res.sigma > 0
    mask = np.zeros(SHAPE, dtype=bool)
    mask[10:30, 5:40, 20:50] = True
    masked = voxscale.vector_difference(base_map, target, 30.0, 3.0, mask=mask)
    assert float(np.std(masked.map.data[mask], dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)
    # the same synthesis, only divided by another σ
    assert np.allclose(masked.map.data * masked.sigma, res.map.data * res.sigma,
                       atol=1e-5 * res.sigma * np.abs(res.map.data).max())
    # a Map mask (values > 0.5) works the same; a wrong shape is refused
    as_map = voxscale.Map(mask.astype(np.float32), VOXEL, ORIGIN)
    d2 = voxscale.difference_map(base_map, target, 30.0, 3.0, mask=as_map)
    assert np.allclose(d2.data, masked.map.data, atol=1e-6)
    with pytest.raises(ValueError, match="mask"):
        voxscale.difference_map(base_map, target, 30.0, 3.0, mask=mask[:, :, :-1])


@pytest.mark.parametrize("d_max, d_min", [(None, 3.0), (15.0, 2.5), (8.0, 4.0)])
def test_resolution_range_is_honoured(base_map, d_max, d_min):
    rng = np.random.default_rng(4)
    white = rng.standard_normal(SHAPE).astype(np.float32)  # power at every resolution
    target = voxscale.Map(base_map.data + 0.5 * white, VOXEL, ORIGIN)
    d = voxscale.difference_map(base_map, target, d_max, d_min)
    power = np.abs(np.fft.rfftn(d.data.astype(np.float64))) ** 2
    s = s_grid(SHAPE, VOXEL)
    lo = 0.0 if d_max is None else 1.0 / d_max
    inside = (s <= 1.0 / d_min * (1 + 1e-9)) & (s >= lo) & (s > 0)
    outside_power = power[~inside].sum() / power.sum()
    assert outside_power < 1e-9, outside_power
    # every shell inside the range carries power (nothing else was cut)
    edges = np.linspace(max(lo, 1 / 40), 1 / d_min, 6)
    for a, b in zip(edges[:-1], edges[1:]):
        assert power[(s >= a) & (s < b) & inside].mean() > 1e-3 * power[inside].mean()


def test_rejects_bad_ranges_and_grids(base_map):
    with pytest.raises(ValueError, match="larger"):
        voxscale.difference_map(base_map, base_map, 3.0, 4.0)
    other = voxscale.Map(base_map.data, VOXEL, np.array(ORIGIN) + 0.5)
    with pytest.raises(ValueError, match="not on the reference grid"):
        voxscale.difference_map(base_map, other, None, 3.0)
    with pytest.raises(ValueError, match="not on the reference grid"):
        voxscale.real_space_difference(base_map, other)


# -- why scaling matters --------------------------------------------------------------------------

def test_vector_difference_of_scaled_blurred_copy_vanishes_real_space_does_not(base_map):
    d_max, d_min = 30.0, 3.0
    target = voxscale.Map(fourier_filter(base_map.data, VOXEL, k=1.7, b=25.0), VOXEL, ORIGIN)
    res = voxscale.vector_difference(base_map, target, d_max, d_min)
    # the reference's own size in the same band, from numpy
    s = s_grid(SHAPE, VOXEL)
    band = (s <= 1 / d_min) & (s >= 1 / d_max)
    f = np.fft.rfftn(base_map.data.astype(np.float64)) * band
    band_sd = np.fft.irfftn(f, s=SHAPE, axes=(0, 1, 2)).std()
    rel_vector = res.sigma / band_sd
    assert res.scaling.k == pytest.approx(1 / 1.7, rel=1e-3)
    assert res.scaling.B == pytest.approx(-25.0, abs=0.5)
    # unscaled (k only): clearly not zero
    k_only = voxscale.vector_difference(base_map, target, d_max, d_min, scaling="scale")
    rel_k_only = k_only.sigma / band_sd
    # the real-space difference of the σ-normalised maps
    rs = voxscale.real_space_difference(base_map, target)
    rs_sd = float(rs.data.std())
    print(f"\nσ(vector diff)/σ(ref band) = {rel_vector:.2e} (isotropic scaling), "
          f"{rel_k_only:.3f} (k only); σ(real-space diff) = {rs_sd:.3f} (units of map σ)")
    assert rel_vector < 1e-3
    assert rel_k_only > 0.05
    assert rs_sd > 0.1
    assert rs_sd > 100 * rel_vector


def aniso_filter(data, voxel, k, b):
    sx, sy, sz = frequencies(data.shape, voxel)
    quad = (b[0, 0] * sx**2 + b[1, 1] * sy**2 + b[2, 2] * sz**2
            + 2 * (b[0, 1] * sx * sy + b[0, 2] * sx * sz + b[1, 2] * sy * sz))
    f = np.fft.rfftn(data.astype(np.float64)) * k * np.exp(-0.25 * quad)
    return np.fft.irfftn(f, s=data.shape, axes=(0, 1, 2)).astype(np.float32)


@pytest.mark.parametrize("scaling_target", ["wilson", "lsq"])
def test_anisotropic_scaling_inside_the_vector_difference(base_map, scaling_target):
    """The synthesis applies the fitted tensor on the half grid itself (its own code path):
    a copy blurred by a full symmetric tensor must leave ~nothing."""
    b = np.array([[10.0, 5.0, -3.0], [5.0, 30.0, 4.0], [-3.0, 4.0, 20.0]])
    target = voxscale.Map(aniso_filter(base_map.data, VOXEL, 0.6, b), VOXEL, ORIGIN)
    res = voxscale.vector_difference(base_map, target, 30.0, 3.0, scaling="anisotropic",
                                     scaling_target=scaling_target)
    assert np.abs(res.scaling.b_tensor + b).max() < 1.0
    iso = voxscale.vector_difference(base_map, target, 30.0, 3.0)
    print(f"\nanisotropic blur: σ(diff) {res.sigma:.2e} (anisotropic scaling) vs "
          f"{iso.sigma:.2e} (isotropic)")
    assert res.sigma < 1e-3 * iso.sigma


def test_default_range_is_nyquist(base_map):
    rng = np.random.default_rng(8)
    target = voxscale.Map(base_map.data + rng.standard_normal(SHAPE).astype(np.float32),
                          VOXEL, ORIGIN)
    res = voxscale.vector_difference(base_map, target)
    assert res.scaling.d_min == pytest.approx(2 * max(VOXEL))
    assert res.scaling.d_max == np.inf
    power = np.abs(np.fft.rfftn(res.map.data.astype(np.float64))) ** 2
    s = s_grid(SHAPE, VOXEL)
    assert power[s > 1 / (2 * max(VOXEL)) * (1 + 1e-9)].sum() < 1e-9 * power.sum()


def test_real_space_difference_matches_numpy_with_low_pass(base_map):
    rng = np.random.default_rng(12)
    target_data = 2.0 * base_map.data + 0.5 + 0.3 * rng.standard_normal(SHAPE).astype(np.float32)
    target = voxscale.Map(target_data, VOXEL, ORIGIN)

    def normalised(a, region=None):
        v = a if region is None else a[region]
        return (a - v.mean(dtype=np.float64)) / v.std(dtype=np.float64)

    for resolution in (None, 4.0):
        got = voxscale.real_space_difference(base_map, target, d_min=resolution)
        if resolution is None:
            r, t = base_map.data, target_data
        else:
            r = fourier_filter(base_map.data, VOXEL, d_min=resolution)
            t = fourier_filter(target_data, VOXEL, d_min=resolution)
        expected = normalised(t) - normalised(r)
        assert np.allclose(got.data, expected, atol=2e-4), np.abs(got.data - expected).max()
        assert np.array_equal(got.origin, base_map.origin)
        if resolution is not None:
            # given transforms, read or (overwrite=True) low-passed in place: the same map
            f = (voxscale.half_transform(base_map), voxscale.half_transform(target))
            kept = [x.copy() for x in f]
            read = voxscale.real_space_difference(base_map, target, d_min=resolution,
                                                  transforms=f)
            assert all(np.array_equal(a, b) for a, b in zip(f, kept))
            consumed = voxscale.real_space_difference(base_map, target, d_min=resolution,
                                                      transforms=f, overwrite=True)
            assert not np.array_equal(f[0], kept[0])
            for other in (read, consumed):
                assert np.allclose(other.data, got.data, atol=1e-5)
    # sign: target − reference
    blob = gaussian_blob(SHAPE, VOXEL, ORIGIN, BLOB_AT, 5.0, 1.5)
    plus = voxscale.real_space_difference(base_map, voxscale.Map(base_map.data + blob, VOXEL,
                                                                 ORIGIN))
    imax = np.unravel_index(np.argmax(plus.data), SHAPE)
    assert np.linalg.norm(voxel_position(plus, imax) - BLOB_AT) < 1.0
    # with a mask the mean and σ come from the mask
    mask = np.zeros(SHAPE, dtype=bool)
    mask[5:40, 10:45, 8:30] = True
    got = voxscale.real_space_difference(base_map, target, mask=mask)
    expected = normalised(target_data, mask) - normalised(base_map.data, mask)
    assert np.allclose(got.data, expected, atol=2e-4)


def test_real_space_low_pass_removes_differences_beyond_the_resolution(base_map):
    """A target that differs from the reference only by terms finer than 4 Å: the low-passed
    real-space difference vanishes, the plain one does not."""
    rng = np.random.default_rng(2)
    s = s_grid(SHAPE, VOXEL)
    f = np.fft.rfftn(rng.standard_normal(SHAPE)) * (s > 1 / 3.5)
    fine = np.fft.irfftn(f, s=SHAPE, axes=(0, 1, 2)).astype(np.float32)
    target = voxscale.Map(base_map.data + fine / fine.std(), VOXEL, ORIGIN)
    plain = voxscale.real_space_difference(base_map, target)
    low = voxscale.real_space_difference(base_map, target, d_min=4.0)
    assert plain.data.std() > 0.3
    assert np.abs(low.data).max() < 1e-3


# -- 6. model pairs: missing side chains and an extra ligand --------------------------------------

REMOVED = [("A", 42), ("B", 63), ("C", 87), ("D", 99)]


def _atom_xyz(st):
    return np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r])


@pytest.fixture(scope="module")
def haemoglobin_case(shared_file):
    st = voxscale.read_model(shared_file(HAEMOGLOBIN))
    st.setup_entities()
    cen = _atom_xyz(st).mean(axis=0)
    truncated = st.clone()
    removed_atoms = []
    for ch in truncated[0]:
        for res in ch:
            if (ch.name, res.seqid.num) in REMOVED:
                for atom in list(res)[::-1]:
                    if atom.name not in BACKBONE_CB:
                        removed_atoms.append((ch.name, res.seqid.num, atom.name))
                        res.remove_atom(atom.name, atom.altloc)
    assert {(c, n) for c, n, _ in removed_atoms} == set(REMOVED)
    # a ligand-like ring of 6 carbons, 4-5 Å from the nearest protein atom
    xyz = _atom_xyz(st)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        c = cen + rng.uniform(-25, 25, 3)
        dist = np.sqrt(((xyz - c) ** 2).sum(axis=1)).min()
        if 4.5 < dist < 5.5:
            break
    else:  # pragma: no cover
        raise AssertionError("no ligand site found")
    ligand_centre = c
    with_ligand = st.clone()
    res = gemmi.Residue()
    res.name = "LIG"
    res.seqid = gemmi.SeqId(901, " ")
    res.het_flag = "H"
    for i in range(6):
        a = gemmi.Atom()
        a.name = f"C{i + 1}"
        a.element = gemmi.Element("C")
        ang = np.pi / 3 * i
        a.pos = gemmi.Position(*(c + 1.4 * np.array([np.cos(ang), np.sin(ang), 0.0])))
        a.b_iso = 20.0
        a.occ = 1.0
        res.add_atom(a)
    with_ligand[0].add_chain(gemmi.Chain("L"))
    with_ligand[0]["L"].add_residue(res)

    grid = dict(voxel_size=1.0, shape=(96, 96, 96), origin=cen - 47.5, d_min=3.0)
    ref = model_map(st, **grid)
    sd = float(ref.data.std())

    def noisy(m, seed, k):
        n = rng_noise(seed, m)
        return voxscale.Map(k * (m.data + 0.3 * sd * n), m.voxel_size, m.origin)

    def rng_noise(seed, m):
        r = np.random.default_rng(seed)
        n = voxscale.low_pass(voxscale.Map(r.standard_normal(m.shape).astype(np.float32),
                                           m.voxel_size), 3.0).data
        return n / n.std()

    return dict(st=st, truncated=truncated, with_ligand=with_ligand,
                ligand_centre=ligand_centre, ref=noisy(ref, 1, 1.0),
                tgt_truncated=noisy(model_map(truncated, **grid), 2, 1.7),
                tgt_ligand=noisy(model_map(with_ligand, **grid), 3, 0.8))


def test_missing_side_chains_are_the_strongest_negative_peaks(haemoglobin_case):
    case = haemoglobin_case
    res = voxscale.vector_difference(case["ref"], case["tgt_truncated"], 20.0, 3.0)
    peaks = voxscale.find_peaks(res.map, 4.0, {"ref": case["st"], "target": case["truncated"]})
    negative = [p for p in peaks if p.height_sigma < 0]
    print(f"\nk = {res.scaling.k:.4f} (true {1 / 1.7:.4f}), B = {res.scaling.B:.2f}, "
          f"R = {res.scaling.r_overall:.1f} %, {len(peaks)} peaks")
    for p in peaks[:8]:
        a, b = p.nearest["ref"], p.nearest["target"]
        print(f"  {p.height_sigma:+7.1f} σ  ref {a['chain']}/{a['residue_name']}"
              f"{a['residue_number']} {a['atom']} {a['distance']:.2f} Å   target "
              f"{b['chain']}/{b['residue_name']}{b['residue_number']} {b['atom']} "
              f"{b['distance']:.2f} Å")
    top = negative[:len(REMOVED)]
    named = {(p.nearest["ref"]["chain"], p.nearest["ref"]["residue_number"]) for p in top}
    assert named == set(REMOVED)
    for p in top:
        assert p.nearest["ref"]["atom"] not in BACKBONE_CB   # on the side chain itself
        assert p.nearest["ref"]["distance"] < 1.6
        assert 8 < -p.height_sigma < 60
    # they are the strongest features of the map, well above the noise peaks
    others = [abs(p.height_sigma) for p in peaks if p not in top]
    assert min(-p.height_sigma for p in top) > 1.5 * max(others, default=0)
    assert peaks[:len(REMOVED)] == top


def test_extra_ligand_is_the_strongest_positive_peak(haemoglobin_case):
    case = haemoglobin_case
    d = voxscale.difference_map(case["ref"], case["tgt_ligand"], 20.0, 3.0)
    peaks = voxscale.find_peaks(d, 4.0, {"ref": case["st"], "target": case["with_ligand"]})
    best = peaks[0]
    print(f"\nligand peak {best.height_sigma:+.1f} σ at "
          f"{np.linalg.norm(np.array([best.x, best.y, best.z]) - case['ligand_centre']):.2f} Å "
          f"from the ring centre; nearest target atom {best.nearest['target']}")
    assert best.height_sigma > 8
    assert np.linalg.norm(np.array([best.x, best.y, best.z]) - case["ligand_centre"]) < 1.6
    assert best.nearest["target"]["residue_name"] == "LIG"
    assert best.nearest["ref"]["distance"] > 3.0
    second = max((abs(p.height_sigma) for p in peaks[1:]), default=0.0)
    assert best.height_sigma > 1.5 * second
