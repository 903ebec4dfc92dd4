"""Amplitude scaling by resolution (voxscale.reciprocal.scaling; docs/method.md §1 step 5, §2).

Every expectation comes from outside the code under test:

* blurred and scaled copies are made here with numpy.fft (F·k·exp(−¼ sᵀBs) on numpy's own
  frequency grid), so the k and B the fit must return are known by construction; note the
  convention F_tgt' = k·exp(−B s²/4)·F_tgt puts the *target* on the reference, so a target
  that is k₀× the reference blurred by B₀ must give k = 1/k₀ and B = −B₀;
* the Wilson limit 2 − √2 of unrelated acentric data is checked by Monte Carlo here, and then
  on two independent random atom clouds built with gemmi (model maps via
  voxscale.reciprocal.model_map.model_map);
* per-shell R, FSC, ⟨F_ref²⟩/⟨F_tgt'²⟩ and reflection counts are recomputed by brute force
  from numpy.fft.fftn of the maps with the unique half-space chosen here.
"""
from __future__ import annotations

import gemmi
import numpy as np
import pytest

import voxscale
from voxscale.reciprocal.model_map import model_map
WILSON_R = 100.0 * (2.0 - np.sqrt(2.0))  # 58.58 %


# -- helpers (numpy only) ---------------------------------------------------------------------

def rfft_frequencies(shape, voxel):
    """s_x, s_y, s_z (Å⁻¹) of numpy.fft.rfftn's output for a (nz, ny, nx) map."""
    nz, ny, nx = shape
    vx, vy, vz = np.broadcast_to(np.asarray(voxel, dtype=np.float64), (3,))
    sx = np.fft.rfftfreq(nx, d=vx)[None, None, :]
    sy = np.fft.fftfreq(ny, d=vy)[None, :, None]
    sz = np.fft.fftfreq(nz, d=vz)[:, None, None]
    return sx, sy, sz


def b_tensor(b):
    b = np.asarray(b, dtype=np.float64)
    return np.eye(3) * float(b) if b.ndim == 0 else b


def blurred(data, voxel, k, b):
    """k × the map blurred by B (scalar or symmetric 3x3 in Å², x, y, z), via numpy.fft."""
    sx, sy, sz = rfft_frequencies(data.shape, voxel)
    t = b_tensor(b)
    quad = (t[0, 0] * sx**2 + t[1, 1] * sy**2 + t[2, 2] * sz**2
            + 2 * (t[0, 1] * sx * sy + t[0, 2] * sx * sz + t[1, 2] * sy * sz))
    f = np.fft.rfftn(data.astype(np.float64)) * k * np.exp(-0.25 * quad)
    return np.fft.irfftn(f, s=data.shape, axes=(0, 1, 2)).astype(np.float32)


def smooth_random_map(rng, shape, voxel, b=30.0, origin=(0.0, 0.0, 0.0)):
    """White noise blurred by B (numpy): a map with a Wilson-like fall-off."""
    return voxscale.Map(blurred(rng.standard_normal(shape), voxel, 1.0, b), voxel, origin)


def cloud_structure(rng, n_atoms, radius, centre):
    """gemmi.Structure of n carbon atoms uniformly inside a sphere (one residue per atom)."""
    pts = rng.uniform(-radius, radius, (4 * n_atoms, 3))
    pts = pts[(pts**2).sum(axis=1) <= radius**2][:n_atoms] + np.asarray(centre)
    assert len(pts) == n_atoms
    st = gemmi.Structure()
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    for i, p in enumerate(pts):
        res = gemmi.Residue()
        res.name = "UNK"
        res.seqid = gemmi.SeqId(i + 1, " ")
        atom = gemmi.Atom()
        atom.name = "C"
        atom.element = gemmi.Element("C")
        atom.pos = gemmi.Position(*p)
        atom.b_iso = 20.0
        atom.occ = 1.0
        res.add_atom(atom)
        chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    return st


def cloud_map(seed, n_atoms, radius, *, n=96, voxel=1.0, resolution=3.0):
    rng = np.random.default_rng(seed)
    centre = np.full(3, n * voxel / 2.0)
    st = cloud_structure(rng, n_atoms, radius, centre)
    return model_map(st, voxel_size=voxel, shape=(n, n, n), origin=(0, 0, 0),
                     d_min=resolution)


def brute_force_shells(ref, tgt, k, b, d_max, d_min, n_shells):
    """Per-shell n, R (%), FSC and ⟨F_ref²⟩/⟨F_tgt'²⟩ from numpy.fft.fftn, unique half-space.

    F = (V/N)·conj(fftn(ρ)) (docs/method.md §2); the conjugate and V/N do not change R or FSC but are
    kept for fidelity. Shells: equal steps in s³ between 1/d_max and 1/d_min (as documented).
    """
    nz, ny, nx = ref.shape
    vol_per = float(np.prod(ref.cell)) / ref.data.size
    f1 = vol_per * np.conj(np.fft.fftn(ref.data.astype(np.float64)))
    f2 = vol_per * np.conj(np.fft.fftn(tgt.data.astype(np.float64)))
    h = np.fft.fftfreq(nx, 1.0 / nx)[None, None, :]
    kk = np.fft.fftfreq(ny, 1.0 / ny)[None, :, None]
    ll = np.fft.fftfreq(nz, 1.0 / nz)[:, None, None]
    h, kk, ll = np.broadcast_arrays(h, kk, ll)
    unique = (h > 0) | ((h == 0) & (kk > 0)) | ((h == 0) & (kk == 0) & (ll > 0))
    sx, sy, sz = h / ref.cell[0], kk / ref.cell[1], ll / ref.cell[2]
    s = np.sqrt(sx**2 + sy**2 + sz**2)
    s_lo = 0.0 if d_max is None else 1.0 / d_max
    s_hi = 1.0 / d_min
    sel = unique & (s >= s_lo) & (s <= s_hi * (1 + 1e-9)) & (s > 0)
    t = b_tensor(b)
    svec = np.stack([sx[sel], sy[sel], sz[sel]], axis=1)
    g = k * np.exp(-0.25 * np.einsum("ni,ij,nj->n", svec, t, svec))
    a, c = f1[sel], f2[sel] * g
    edges = np.cbrt(np.linspace(s_lo**3, s_hi**3, n_shells + 1))
    edges[-1] = s_hi * (1 + 1e-9)
    shell = np.clip(np.searchsorted(edges, s[sel], side="right") - 1, 0, n_shells - 1)
    cnt = np.bincount(shell, minlength=n_shells)
    sa = np.bincount(shell, np.abs(a), n_shells)
    sd = np.bincount(shell, np.abs(np.abs(a) - np.abs(c)), n_shells)
    s11 = np.bincount(shell, np.abs(a) ** 2, n_shells)
    s22 = np.bincount(shell, np.abs(c) ** 2, n_shells)
    cross = np.bincount(shell, (a * np.conj(c)).real, n_shells)
    return dict(edges=edges, n=cnt, r=100 * sd / sa, fsc=cross / np.sqrt(s11 * s22),
                ratio=s11 / s22)


# -- the Wilson limit itself ----------------------------------------------------------------

def test_wilson_limit_of_unrelated_acentric_amplitudes_is_two_minus_root_two():
    """docs/method.md §1/§2 claim R = 2 − √2 for two unrelated acentric data sets: check by Monte Carlo
    (|F| of a complex Gaussian is Rayleigh-distributed)."""
    rng = np.random.default_rng(7)
    n = 2_000_000
    f1 = np.abs(rng.standard_normal(n) + 1j * rng.standard_normal(n))
    f2 = np.abs(rng.standard_normal(n) + 1j * rng.standard_normal(n))
    r = 100 * np.abs(f1 - f2).sum() / f1.sum()
    assert abs(r - WILSON_R) < 0.15, r
    assert voxscale.reciprocal.scaling.WILSON_R_ACENTRIC == pytest.approx(2 - np.sqrt(2))


# -- 1. identical maps -------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["isotropic", "anisotropic", "scale"])
@pytest.mark.parametrize("target", ["wilson", "lsq"])
def test_identical_maps_give_unit_scale_zero_b_and_zero_r(model, target):
    rng = np.random.default_rng(1)
    m = smooth_random_map(rng, (40, 36, 32), (1.0, 1.1, 0.9))
    sf = voxscale.structure_factors(m, d_min=2.5)
    res = voxscale.scale_amplitudes(sf, sf, None, 2.5, model=model, target=target, n_shells=8)
    assert res.k == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(res.b_tensor, 0.0, atol=1e-5)
    assert res.r_overall == pytest.approx(0.0, abs=1e-4)
    assert res.r_overall_before == 0.0
    for row in res.shells:
        assert row["n"] > 0
        assert row["r"] == pytest.approx(0.0, abs=1e-4)
        assert row["r_before"] == 0.0
        assert row["fsc"] == pytest.approx(1.0, abs=1e-6)
        assert row["intensity_ratio"] == pytest.approx(1.0, abs=1e-5)


# -- 2. known k and B ---------------------------------------------------------------------------

SHAPE = (48, 56, 64)             # nz, ny, nx: non-cubic, to catch axis mix-ups
VOXEL = (0.9, 1.1, 1.0)          # x, y, z
D_MIN = 3.0
K_TRUE = 1.7
B_ISO = 25.0
B_ANISO = np.array([[10.0, 5.0, 0.0],
                    [5.0, 30.0, 0.0],
                    [0.0, 0.0, 20.0]])


@pytest.fixture(scope="module")
def reference_map():
    return smooth_random_map(np.random.default_rng(11), SHAPE, VOXEL, b=20.0,
                             origin=(3.0, -7.0, 12.5))


@pytest.mark.parametrize("target", ["wilson", "lsq"])
@pytest.mark.parametrize("model", ["isotropic", "anisotropic"])
def test_recovers_known_isotropic_k_and_b(reference_map, model, target):
    tgt = voxscale.Map(blurred(reference_map.data, VOXEL, K_TRUE, B_ISO), VOXEL,
                       reference_map.origin)
    sf_r = voxscale.structure_factors(reference_map, D_MIN)
    sf_t = voxscale.structure_factors(tgt, D_MIN)
    res = voxscale.scale_amplitudes(sf_r, sf_t, None, D_MIN, model=model, target=target)
    k_err = res.k * K_TRUE - 1.0
    b_err = np.abs(res.b_tensor + B_ISO * np.eye(3)).max()
    print(f"\n{model}/{target}: k = {res.k:.6f} (true {1 / K_TRUE:.6f}, rel. err {k_err:.1e}), "
          f"max |B err| = {b_err:.2e} Å², R {res.r_overall_before:.1f} % -> {res.r_overall:.2e} %")
    assert abs(k_err) < 1e-3
    assert b_err < 0.5
    if model == "isotropic":
        assert isinstance(res.B, float) and res.B == pytest.approx(-B_ISO, abs=0.5)
    assert res.r_overall < 1.0
    assert res.r_overall_before > 10.0
    assert all(row["r"] < 1.0 for row in res.shells)
    # apply() puts the target on the reference: amplitudes agree reflection by reflection
    scaled = res.apply(sf_t)
    assert np.allclose(np.abs(scaled.f), np.abs(sf_r.f), rtol=1e-3,
                       atol=1e-3 * np.abs(sf_r.f).max())


@pytest.mark.parametrize("target", ["wilson", "lsq"])
def test_recovers_known_anisotropic_b_tensor(reference_map, target):
    tgt = voxscale.Map(blurred(reference_map.data, VOXEL, K_TRUE, B_ANISO), VOXEL,
                       reference_map.origin)
    sf_r = voxscale.structure_factors(reference_map, D_MIN)
    sf_t = voxscale.structure_factors(tgt, D_MIN)
    aniso = voxscale.scale_amplitudes(sf_r, sf_t, None, D_MIN, model="anisotropic",
                                      target=target)
    err = np.abs(aniso.b_tensor + B_ANISO).max()
    print(f"\nanisotropic/{target}: k rel. err {aniso.k * K_TRUE - 1:.1e}, "
          f"max |B err| {err:.2e} Å²; B =\n{np.round(aniso.b_tensor, 3)}")
    assert np.allclose(aniso.b_tensor, aniso.b_tensor.T)
    assert err < 1.0
    assert abs(aniso.k * K_TRUE - 1) < 1e-3
    assert aniso.r_overall < 1.0
    six = aniso.b_six
    assert six == pytest.approx([-10, -30, -20, -5, 0, 0], abs=1.0)
    # An isotropic model cannot absorb the anisotropy: clearly worse R.
    iso = voxscale.scale_amplitudes(sf_r, sf_t, None, D_MIN, model="isotropic", target=target)
    assert iso.r_overall > 3.0 and iso.r_overall > 10 * aniso.r_overall


def test_scale_model_fits_only_k(reference_map):
    tgt = voxscale.Map(reference_map.data * 2.5, VOXEL, reference_map.origin)
    sf_r = voxscale.structure_factors(reference_map, D_MIN)
    sf_t = voxscale.structure_factors(tgt, D_MIN)
    for target in ("wilson", "lsq"):
        res = voxscale.scale_amplitudes(sf_r, sf_t, None, D_MIN, model="scale", target=target)
        assert res.k == pytest.approx(1 / 2.5, rel=1e-5)
        assert res.B == 0.0
        assert res.r_overall < 1e-3


# -- 3. unrelated maps: the Wilson limit --------------------------------------------------------

def _shell_table(res, finer_than=8.5):
    return [row for row in res.shells if row["d_max"] <= finer_than]


def _print_shells(title, res):
    print(f"\n{title}: k = {res.k:.4f}, B = {res.B:.2f} Å², R overall {res.r_overall:.2f} %")
    print("  " + "  ".join(f"{row['d_max']:.2f}-{row['d_min']:.2f}:{row['r']:.1f}"
                           for row in res.shells))


@pytest.fixture(scope="module")
def cloud_pair_brief():
    """The brief's setting: 2000 atoms in a sphere of radius 25 Å, 96³ box, 1 Å voxels, 3 Å."""
    return cloud_map(101, 2000, 25.0), cloud_map(202, 2000, 25.0)


@pytest.fixture(scope="module")
def cloud_pair_wide():
    """12000 atoms in a sphere of radius 45 Å at 2 Å resolution (96³, 1 Å voxels): about the
    same atom density, less oversampling of the molecular transform and ~28000 reflections per
    shell, so that the statistical spread of a shell's R (~0.25 %) is well inside ±1.5 %.
    (With 3 Å and a sphere of 40 Å, ~5000 reflections per shell, the spread is ~0.7 % and a
    shell 1.5 % off the limit happens by chance.)"""
    return (cloud_map(303, 12000, 45.0, resolution=2.0),
            cloud_map(404, 12000, 45.0, resolution=2.0))


def test_unrelated_clouds_brief_setting(cloud_pair_brief):
    """Per-shell R fluctuates by a few % in this setting (the sphere fills 1/7 of the box, so
    each shell holds only a few hundred independent reflections); the mean over the shells
    finer than 8 Å is at the Wilson limit, and every shell is within the statistical spread."""
    sf1, sf2 = (voxscale.structure_factors(m, 3.0) for m in cloud_pair_brief)
    wil = voxscale.scale_amplitudes(sf1, sf2, None, 3.0, target="wilson")
    lsq = voxscale.scale_amplitudes(sf1, sf2, None, 3.0, target="lsq")
    _print_shells("unrelated r=25 Å, wilson", wil)
    _print_shells("unrelated r=25 Å, lsq", lsq)
    rw = np.array([row["r"] for row in _shell_table(wil)])
    rl = np.array([row["r"] for row in _shell_table(lsq)])
    assert len(rw) >= 15
    assert abs(rw.mean() - WILSON_R) < 1.0, rw.mean()
    assert np.all(np.abs(rw - WILSON_R) < 4.0), rw
    assert rl.mean() < rw.mean() - 1.5
    assert abs(rl.mean() - 55.5) < 1.5, rl.mean()


def test_unrelated_clouds_every_shell_at_wilson_limit(cloud_pair_wide):
    """R = 58.6 % ± 1.5 % in every shell between 8 and 2 Å after Wilson scaling; lsq lower
    (~55 %) in every shell."""
    sf1, sf2 = (voxscale.structure_factors(m, 2.0) for m in cloud_pair_wide)
    wil = voxscale.scale_amplitudes(sf1, sf2, 8.0, 2.0, target="wilson", n_shells=8)
    lsq = voxscale.scale_amplitudes(sf1, sf2, 8.0, 2.0, target="lsq", n_shells=8)
    _print_shells("unrelated r=45 Å, 8-2 Å, wilson", wil)
    _print_shells("unrelated r=45 Å, 8-2 Å, lsq", lsq)
    rw = np.array([row["r"] for row in wil.shells])
    rl = np.array([row["r"] for row in lsq.shells])
    assert np.all(np.abs(rw - WILSON_R) < 1.5), rw
    assert abs(rw.mean() - WILSON_R) < 0.5
    assert np.all(rl < rw), (rl, rw)
    assert abs(rl.mean() - 55.0) < 1.5, rl.mean()
    # unrelated: FSC near 0 in every shell
    assert all(abs(row["fsc"]) < 0.1 for row in wil.shells)


# -- 4. scaleit's check and brute-force per-shell statistics -------------------------------------

def test_intensity_ratio_near_one_after_wilson_scaling(cloud_pair_wide):
    sf1 = voxscale.structure_factors(cloud_pair_wide[0], 2.0)
    tgt = voxscale.Map(blurred(cloud_pair_wide[1].data, 1.0, 0.3, 15.0), 1.0)
    sf2b = voxscale.structure_factors(tgt, 2.0)
    res = voxscale.scale_amplitudes(sf1, sf2b, 8.0, 2.0, target="wilson", n_shells=8)
    ratios = np.array([row["intensity_ratio"] for row in res.shells])
    print(f"\n<F_ref^2>/<F_tgt'^2> per shell (unrelated, wilson): {np.round(ratios, 3)}")
    assert np.all(np.abs(ratios - 1) < 0.05), ratios
    assert abs(np.exp(np.log(ratios).mean()) - 1) < 0.01
    assert res.k == pytest.approx(1 / 0.3, rel=0.05)
    assert res.B == pytest.approx(-15.0, abs=2.0)
    # Before scaling the ratio is far from 1 (the target is 0.3× and blurred).
    sf2b_raw = np.abs(sf2b.f) ** 2
    assert (np.abs(sf1.f) ** 2).sum() / sf2b_raw.sum() > 5


@pytest.mark.parametrize("d_max, n_shells", [(None, 12), (10.0, 7)])
@pytest.mark.parametrize("model", ["isotropic", "anisotropic"])
def test_shell_statistics_match_brute_force(reference_map, d_max, n_shells, model):
    rng = np.random.default_rng(5)
    noisy = blurred(reference_map.data, VOXEL, 1.3, B_ANISO) + \
        0.3 * smooth_random_map(rng, SHAPE, VOXEL, b=20.0).data
    tgt = voxscale.Map(noisy, VOXEL, reference_map.origin)
    sf_r = voxscale.structure_factors(reference_map, D_MIN)
    sf_t = voxscale.structure_factors(tgt, D_MIN)
    res = voxscale.scale_amplitudes(sf_r, sf_t, d_max, D_MIN, model=model, n_shells=n_shells)
    bf = brute_force_shells(reference_map, tgt, res.k, res.b_tensor, d_max, D_MIN, n_shells)
    assert np.allclose(res.edges, bf["edges"], rtol=1e-12)
    got = {key: np.array([row[key] for row in res.shells]) for key in
           ("n", "r", "fsc", "intensity_ratio", "d_max", "d_min")}
    assert np.array_equal(got["n"], bf["n"])
    assert np.allclose(got["r"], bf["r"], rtol=1e-4)
    assert np.allclose(got["fsc"], bf["fsc"], rtol=1e-5, atol=1e-6)
    assert np.allclose(got["intensity_ratio"], bf["ratio"], rtol=1e-4)
    assert np.allclose(got["d_min"], 1 / bf["edges"][1:], rtol=1e-8)
    assert got["d_min"][-1] == pytest.approx(D_MIN)
    assert got["d_max"][0] == (np.inf if d_max is None else pytest.approx(d_max))
    # R before scaling, from k = 1 and B = 0
    raw = brute_force_shells(reference_map, tgt, 1.0, 0.0, d_max, D_MIN, n_shells)
    assert np.allclose([row["r_before"] for row in res.shells], raw["r"], rtol=1e-4)


@pytest.mark.parametrize("model", ["isotropic", "anisotropic", "scale"])
def test_chunked_fit_and_squared_frequencies_agree_with_one_pass(reference_map, model,
                                                                 monkeypatch):
    """The Wilson fit and the sums after scaling go through the reflections a chunk at a
    time, and scale_reflections takes |s|² instead of the vectors: neither may change the
    result. One chunk (the plain sums) against chunks of 997 reflections (not a divisor)."""
    from voxscale.reciprocal import scaling
    rng = np.random.default_rng(8)
    tgt = voxscale.Map(blurred(reference_map.data, VOXEL, K_TRUE, B_ANISO) +
                       0.2 * smooth_random_map(rng, SHAPE, VOXEL, b=20.0).data, VOXEL,
                       reference_map.origin)
    sf_r = voxscale.structure_factors(reference_map, D_MIN)
    sf_t = voxscale.structure_factors(tgt, D_MIN)
    s_vec = sf_r.hkl / sf_r.cell
    monkeypatch.setattr(scaling, "CHUNK", 1 << 30)
    one = voxscale.reciprocal.scale_arrays(sf_r.f, sf_t.f, s_vec, d_min=D_MIN, model=model)
    monkeypatch.setattr(scaling, "CHUNK", 997)
    assert len(sf_r) > 10 * 997
    chunked = scaling.scale_reflections(sf_r.f, sf_t.f, np.einsum("ij,ij->i", s_vec, s_vec),
                                        s_vec if model == "anisotropic" else None,
                                        d_min=D_MIN, model=model)
    assert chunked.k == pytest.approx(one.k, rel=1e-9)
    np.testing.assert_allclose(chunked.b_tensor, one.b_tensor, rtol=1e-8, atol=1e-9)
    for a, b in zip(chunked.shells, one.shells):
        assert a["n"] == b["n"]
        for key in ("r", "r_before", "fsc", "intensity_ratio"):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12)


def test_anisotropic_bins_beyond_the_kernels_shell_limit():
    """Shells × 13 directions may exceed shell_sums' MAX_SHELLS (n_shells >= 7693): the bins
    are summed a direction at a time, to numpy.bincount's sums over shell × 13 + direction;
    and such a fit runs."""
    from voxscale.reciprocal import scaling
    rng = np.random.default_rng(3)
    n, n_shells, n_dir = 5000, 50, len(scaling._DIRECTIONS)
    f1 = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    f2 = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    shell = rng.integers(0, n_shells, n).astype(np.int32)
    direction = rng.integers(0, n_dir, n)
    got = scaling._direction_sums(f1, f2, shell, direction, n_shells, 1)
    bins = shell * n_dir + direction
    a, b = f1.astype(np.complex128), f2.astype(np.complex128)
    count = lambda w: np.bincount(bins, w, n_shells * n_dir)  # noqa: E731
    np.testing.assert_array_equal(got.count, np.bincount(bins, minlength=n_shells * n_dir))
    for name, w in (("sum_f1", np.abs(a)), ("sum_f2", np.abs(b)), ("sum_f1_sq", np.abs(a) ** 2),
                    ("sum_f2_sq", np.abs(b) ** 2), ("sum_abs_diff", np.abs(np.abs(a) - np.abs(b))),
                    ("sum_re_cross", (a * np.conj(b)).real)):
        np.testing.assert_allclose(getattr(got, name), count(w), rtol=1e-9, atol=1e-9)
    s_vec = rng.uniform(-0.3, 0.3, (40000, 3))
    g1 = (rng.standard_normal(40000) + 1j * rng.standard_normal(40000)).astype(np.complex64)
    res = voxscale.reciprocal.scale_arrays(g1, g1, s_vec, d_min=1.0 / 0.52,
                                           model="anisotropic", n_shells=8000)
    assert len(res.shells) == 8000 and res.k == pytest.approx(1.0, abs=1e-6)


def test_anisotropic_scaling_needs_the_vectors():
    from voxscale.reciprocal.scaling import scale_reflections
    f = np.ones(100, np.complex64)
    with pytest.raises(ValueError, match="s_vectors"):
        scale_reflections(f, f, np.linspace(0.01, 0.1, 100), d_min=3.0, model="anisotropic")


def test_rejects_mismatched_inputs(reference_map):
    sf = voxscale.structure_factors(reference_map, D_MIN)
    other = voxscale.structure_factors(voxscale.Map(reference_map.data[:, :, :-2], VOXEL), D_MIN)
    with pytest.raises(ValueError, match="same"):
        voxscale.scale_amplitudes(sf, other, None, D_MIN)
    with pytest.raises(ValueError, match="model"):
        voxscale.scale_amplitudes(sf, sf, None, D_MIN, model="quadratic")
    with pytest.raises(ValueError, match="target"):
        voxscale.scale_amplitudes(sf, sf, None, D_MIN, target="ml")
