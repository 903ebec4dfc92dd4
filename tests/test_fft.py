"""Tests of the map <-> structure-factor transforms (voxscale.reciprocal.transform, _core.map_to_sf/sf_to_map).

The convention (docs/method.md §2) is F(h) = (V/N) Σ_x ρ(x) exp(+2πi h·x), ρ(x) = (1/V) Σ_h F(h)
exp(−2πi h·x), the same as CCP4 sfall and gemmi.transform_map_to_f_phi. It is checked against
numpy.fft (whose forward transform uses exp(−2πi…), so F = (V/N)·conj(rfftn(ρ)) for real ρ),
against a brute-force DFT written out here, against gemmi, and through the Parseval identity.
Miller indices (h, k, l) run along x, y, z; the half-transform is indexed [l mod nz, k mod ny, h].
"""
import itertools

import gemmi
import numpy as np
import pytest

from voxscale import (Map, StructureFactors, _core, half_transform, map_from_half_transform,
                      map_from_structure_factors, structure_factors)

# (nz, ny, nx): even and odd sizes on every axis, non-cubic, and axes of length 1 and 2.
SHAPES = [(8, 10, 12), (7, 9, 11), (6, 5, 9), (9, 8, 1), (1, 4, 5), (2, 3, 2), (5, 6, 16)]
VOXEL = np.array([1.05, 0.85, 1.3])


def random_map(shape, seed=0, voxel=VOXEL, origin=(3.0, -7.0, 11.5), offset=0.0):
    data = np.random.default_rng(seed).standard_normal(shape) + offset
    return Map(data.astype(np.float32), voxel, origin)


def numpy_half(m):
    """(V/N)·conj(rfftn(ρ)) in double precision: our convention computed by numpy."""
    volume = np.prod(m.cell)
    return volume / m.data.size * np.conj(np.fft.rfftn(m.data.astype(np.float64)))


def signed(i, n):
    return np.where(i < (n + 1) // 2, i, i - n)


# --------------------------------------------------------------------------------------------
# half_transform and its inverse
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_half_transform_matches_numpy(shape):
    m = random_map(shape, seed=1)
    f = half_transform(m)
    assert f.dtype == np.complex64
    assert f.shape == (shape[0], shape[1], shape[2] // 2 + 1)
    expected = numpy_half(m)
    err = np.max(np.abs(f - expected)) / np.max(np.abs(expected))
    assert err < 1e-5, err


def test_half_transform_brute_force_dft():
    """F(hkl) = (V/N) Σ ρ(x) exp(+2πi (h·ix/nx + k·iy/ny + l·iz/nz)), summed out in Python."""
    m = random_map((3, 4, 5), seed=2)
    nz, ny, nx = m.shape
    f = half_transform(m)
    iz, iy, ix = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    rho = m.data.astype(np.float64)
    scale = np.prod(m.cell) / rho.size
    for h, k, l in itertools.product(range(nx // 2 + 1), range(-1, ny - 1), range(-1, nz - 1)):
        phase = np.exp(2j * np.pi * (h * ix / nx + k * iy / ny + l * iz / nz))
        expected = scale * np.sum(rho * phase)
        assert abs(f[l % nz, k % ny, h] - expected) < 1e-5 * np.abs(f).max(), (h, k, l)


def test_delta_function_known_answer():
    """A unit spike at voxel (ix, iy, iz) = (2, 1, 3): F(h) = (V/N) exp(+2πi h·x)."""
    shape = (6, 4, 8)
    data = np.zeros(shape, np.float32)
    data[3, 1, 2] = 1.0
    m = Map(data, (1.5, 2.0, 0.5))
    f = half_transform(m)
    volume = 8 * 1.5 * 4 * 2.0 * 6 * 0.5
    l_, k_, h_ = np.meshgrid(signed(np.arange(6), 6), signed(np.arange(4), 4), np.arange(5),
                             indexing="ij")
    expected = volume / data.size * np.exp(2j * np.pi * (h_ * 2 / 8 + k_ * 1 / 4 + l_ * 3 / 6))
    np.testing.assert_allclose(f, expected, atol=1e-6 * volume / data.size)
    # F(000) = V × mean density
    assert abs(f[0, 0, 0] - volume / data.size) < 1e-6


def test_origin_does_not_enter_the_transform():
    """x is the fractional position within the box, first voxel at 0, whatever the origin."""
    a = random_map((5, 6, 7), seed=3, origin=(0.0, 0.0, 0.0))
    b = Map(a.data, a.voxel_size, (100.0, -55.5, 3.25))
    np.testing.assert_array_equal(half_transform(a), half_transform(b))


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_is_exact(shape):
    m = random_map(shape, seed=4, offset=0.5)
    back = map_from_half_transform(half_transform(m), m)
    assert back.shape == m.shape and back.data.dtype == np.float32
    np.testing.assert_array_equal(back.voxel_size, m.voxel_size)
    np.testing.assert_array_equal(back.origin, m.origin)
    err = np.max(np.abs(back.data - m.data)) / np.max(np.abs(m.data))
    assert err < 1e-6, err


def test_inverse_matches_numpy_irfftn():
    """ρ = (1/V) Σ F exp(−2πi h·x) = (N/V)·irfftn(conj F) for a half-transform of a real map."""
    m = random_map((7, 6, 10), seed=5)
    rng = np.random.default_rng(6)
    f = half_transform(m) * (1 + 0.1 * rng.standard_normal(1)[0])  # some other consistent F
    volume = np.prod(m.cell)
    expected = m.data.size / volume * np.fft.irfftn(np.conj(f.astype(np.complex128)),
                                                    s=m.shape, axes=(0, 1, 2))
    out = _core.sf_to_map(np.ascontiguousarray(f, np.complex64), m.shape[2], volume, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6 * np.abs(expected).max())


def test_sf_to_map_does_not_modify_its_input():
    m = random_map((6, 8, 10), seed=7)
    f = half_transform(m)
    keep = f.copy()
    _core.sf_to_map(f, 10, float(np.prod(m.cell)), 1)
    np.testing.assert_array_equal(f, keep)


def test_volume_scaling():
    """F is proportional to V (at fixed samples); the inverse divides it out again."""
    m = random_map((4, 6, 8), seed=8)
    f1 = _core.map_to_sf(m.data, 1.0, 1)
    f7 = _core.map_to_sf(m.data, 7.5, 1)
    np.testing.assert_allclose(f7, 7.5 * f1, rtol=1e-6, atol=1e-6 * np.abs(f7).max())
    np.testing.assert_allclose(_core.sf_to_map(f7, 8, 7.5, 1), m.data, atol=1e-5)


@pytest.mark.parametrize("shape", [(8, 10, 12), (7, 9, 11), (6, 5, 9), (5, 6, 16)])
def test_parseval(shape):
    """(V/N) Σ_x ρ² = (1/V) Σ_{all h} |F(h)|².

    From the half-transform: every h with 0 < h < nx/2 stands for itself and its Friedel mate
    (weight 2); the planes h = 0 and, for even nx, h = nx/2 hold both members of each pair
    already (weight 1)."""
    m = random_map(shape, seed=9, offset=0.3)
    nx = shape[2]
    volume = np.prod(m.cell)
    f = half_transform(m).astype(np.complex128)
    weight = np.full(nx // 2 + 1, 2.0)
    weight[0] = 1.0
    if nx % 2 == 0:
        weight[-1] = 1.0
    lhs = volume / m.data.size * np.sum(m.data.astype(np.float64) ** 2)
    rhs = np.sum(weight * np.abs(f) ** 2) / volume
    np.testing.assert_allclose(rhs, lhs, rtol=1e-5)
    # the same from the full numpy transform
    full = volume / m.data.size * np.fft.fftn(m.data.astype(np.float64))
    np.testing.assert_allclose(np.sum(np.abs(full) ** 2) / volume, lhs, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# structure_factors against gemmi
# --------------------------------------------------------------------------------------------


def gemmi_transform(m):
    """gemmi's F(hkl) on the full reciprocal grid, as a numpy array indexed [h, k, l] mod n."""
    grid = gemmi.FloatGrid(np.ascontiguousarray(m.data.transpose(2, 1, 0)))  # [u, v, w] = x, y, z
    grid.set_unit_cell(gemmi.UnitCell(*m.cell, 90, 90, 90))
    grid.spacegroup = gemmi.SpaceGroup("P1")
    fgrid = gemmi.transform_map_to_f_phi(grid, half_l=False)
    assert (fgrid.nu, fgrid.nv, fgrid.nw) == tuple(m.shape[::-1])
    return fgrid, np.array(fgrid, copy=True)


@pytest.mark.parametrize("shape", [(8, 10, 12), (7, 9, 11), (6, 5, 9), (10, 12, 7)])
def test_structure_factors_match_gemmi(shape):
    m = random_map(shape, seed=10, offset=0.2)
    sf = structure_factors(m)
    fgrid, full = gemmi_transform(m)
    h, k, l = sf.hkl.T
    expected = full[h % shape[2], k % shape[1], l % shape[0]]
    err = np.max(np.abs(sf.f - expected)) / np.max(np.abs(expected))
    assert err < 1e-5, err
    # a few through gemmi's own accessor, with signed indices (it refuses |index| = n/2)
    nyquist = np.any(2 * np.abs(sf.hkl) == np.array(shape[::-1]), axis=1)
    for i in np.flatnonzero(~nyquist)[::max(1, len(sf) // 25)]:
        hh, kk, ll = (int(v) for v in sf.hkl[i])
        assert abs(sf.f[i] - fgrid.get_value(hh, kk, ll)) < 1e-5 * np.abs(expected).max()
    assert abs(sf.f000 - fgrid.get_value(0, 0, 0).real) < 1e-5 * abs(sf.f000)
    assert abs(fgrid.get_value(0, 0, 0).imag) < 1e-3
    # d against gemmi.UnitCell
    cell = gemmi.UnitCell(*m.cell, 90, 90, 90)
    np.testing.assert_allclose(sf.d, cell.calculate_d_array(sf.hkl.astype(np.int32)),
                               rtol=1e-12)
    assert abs(sf.d[0] - cell.calculate_d([int(v) for v in sf.hkl[0]])) < 1e-12 * sf.d[0]


def test_structure_factors_fields():
    m = random_map((6, 7, 8), seed=11)
    sf = structure_factors(m)
    assert sf.hkl.shape == (len(sf), 3) and np.issubdtype(sf.hkl.dtype, np.integer)
    assert sf.f.dtype == np.complex64 and sf.d.dtype == np.float64
    assert sf.grid_shape == (6, 7, 8)
    np.testing.assert_allclose(sf.cell, m.cell)
    np.testing.assert_allclose(sf.amplitudes, np.abs(sf.f))
    np.testing.assert_allclose(sf.phases, np.degrees(np.angle(sf.f)), atol=1e-4)
    np.testing.assert_allclose(sf.f000, np.prod(m.cell) * m.data.astype(np.float64).mean(),
                               rtol=1e-5)


# --------------------------------------------------------------------------------------------
# the reflections kept
# --------------------------------------------------------------------------------------------


def brute_force_unique(shape, cell, d_min):
    """Classes {h, −h} (indices mod n) of the grid's frequencies with d >= d_min, 000 excluded.

    Returns {class: d}, a class being the sorted pair of the two members' (h, k, l) mod n."""
    nz, ny, nx = shape
    hm, km, lm = (g.ravel() for g in np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz),
                                                 indexing="ij"))
    h, k, l = signed(hm, nx), signed(km, ny), signed(lm, nz)
    s = np.sqrt((h / cell[0]) ** 2 + (k / cell[1]) ** 2 + (l / cell[2]) ** 2)
    keep = s > 0
    if d_min is not None:
        with np.errstate(divide="ignore"):
            keep &= 1.0 / s >= d_min
    out = {}
    for a, b, c, si in zip(hm[keep], km[keep], lm[keep], s[keep]):
        mate = ((-a) % nx, (-b) % ny, (-c) % nz)
        out[tuple(sorted([(int(a), int(b), int(c)), mate]))] = 1.0 / si
    return out


@pytest.mark.parametrize("shape,d_min", [((8, 10, 12), None), ((7, 9, 11), None),
                                         ((10, 12, 14), 3.1), ((9, 11, 16), 2.45),
                                         ((6, 6, 6), 2.0), ((1, 8, 9), 3.3)])
def test_structure_factors_keep_exactly_d_at_least_d_min(shape, d_min):
    m = random_map(shape, seed=12)
    sf = structure_factors(m, d_min)
    expected = brute_force_unique(shape, m.cell, d_min)
    if d_min is not None:  # no reflection sits within rounding of the limit
        all_d = np.array(list(brute_force_unique(shape, m.cell, None).values()))
        assert np.min(np.abs(all_d - d_min)) > 1e-6
    assert len(sf) == len(expected)
    nz, ny, nx = shape
    h, k, l = sf.hkl.T
    assert np.all(h >= 0) and np.all(h <= nx // 2)
    assert not np.any((h == 0) & (k == 0) & (l == 0))
    mod = [(int(a) % nx, int(b) % ny, int(c) % nz) for a, b, c in sf.hkl]
    assert len(set(mod)) == len(sf)  # unique
    classes = [tuple(sorted([p, ((-p[0]) % nx, (-p[1]) % ny, (-p[2]) % nz)])) for p in mod]
    assert len(set(classes)) == len(sf)  # one per Friedel pair
    assert set(classes) == set(expected)
    np.testing.assert_allclose(sf.d, [expected[c] for c in classes], rtol=1e-12)
    if d_min is not None:
        assert sf.d.min() >= d_min
    # signed indices in the numpy.fft.fftfreq range
    assert np.all(np.abs(k) <= ny // 2) and np.all(np.abs(l) <= nz // 2)


def test_reflections_exactly_at_d_min_are_included():
    """Box 32 Å (1 Å voxels): (8, 0, 0), (0, 8, 0), (0, 0, 8) and (0, 0, -8) are at d = 4 Å."""
    m = random_map((32, 32, 32), seed=13, voxel=1.0)
    sf = structure_factors(m, 4.0)
    have = {tuple(int(v) for v in r) for r in sf.hkl}
    assert {(8, 0, 0), (0, 8, 0), (0, 0, 8)} <= have
    assert (0, 0, -8) not in have  # Friedel mate of (0, 0, 8)
    assert len(sf) == len(brute_force_unique(m.shape, m.cell, 4.0))


def test_reflections_at_a_decimal_d_min_are_included():
    m = random_map((20, 20, 20), seed=14, voxel=1.1)
    sf = structure_factors(m, 2.2)
    # Nyquist indices are stored as -n/2 along y and z (numpy.fft.fftfreq order): fold signs.
    have = {tuple(abs(int(v)) if abs(v) == 10 else int(v) for v in r) for r in sf.hkl}
    assert (6, 8, 0) in have  # d = 22/10 = 2.2 Å
    assert {(10, 0, 0), (0, 10, 0), (0, 0, 10)} <= have  # d = 22/10 = 2.2 Å as well


def test_structure_factors_d_min_validation():
    m = random_map((6, 6, 6), seed=15)
    for bad in (-1.0, np.nan, -np.inf):
        with pytest.raises(ValueError, match="d_min"):
            structure_factors(m, bad)


def test_structure_factors_zero_d_min_is_a_value_error():
    with pytest.raises(ValueError, match="d_min"):
        structure_factors(random_map((6, 6, 6), seed=16), 0.0)


# --------------------------------------------------------------------------------------------
# synthesis from (a subset of) the reflections
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 10, 12), (7, 9, 11), (6, 5, 16)])
def test_map_from_structure_factors_round_trip(shape):
    m = random_map(shape, seed=17, offset=1.0)
    back = map_from_structure_factors(structure_factors(m), m)
    err = np.max(np.abs(back.data - m.data)) / np.max(np.abs(m.data))
    assert err < 1e-6, err
    # without F(000): the mean is removed
    no_mean = map_from_structure_factors(structure_factors(m), m, include_f000=False)
    np.testing.assert_allclose(no_mean.data, m.data - m.data.astype(np.float64).mean(),
                               atol=1e-5)


@pytest.mark.parametrize("shape,d_min", [((12, 14, 16), 3.0), ((11, 13, 15), 2.6),
                                         ((10, 10, 10), 2.2)])
def test_map_from_resolution_limited_structure_factors_is_a_low_pass(shape, d_min):
    """Same as zeroing every h with d < d_min in the full numpy transform."""
    m = random_map(shape, seed=18)
    sf = structure_factors(m, d_min)
    out = map_from_structure_factors(sf, m).data
    nz, ny, nx = shape
    full = np.fft.fftn(m.data.astype(np.float64))
    l_, k_, h_ = np.meshgrid(np.fft.fftfreq(nz, 1 / nz), np.fft.fftfreq(ny, 1 / ny),
                             np.fft.fftfreq(nx, 1 / nx), indexing="ij")
    s = np.sqrt((h_ / m.cell[0]) ** 2 + (k_ / m.cell[1]) ** 2 + (l_ / m.cell[2]) ** 2)
    with np.errstate(divide="ignore"):
        full[1.0 / s < d_min] = 0.0
    expected = np.fft.ifftn(full).real
    assert np.std(expected) < 0.9 * np.std(m.data)  # the filter does remove something
    np.testing.assert_allclose(out, expected, atol=1e-5 * np.abs(expected).max())


def test_modified_structure_factors_synthesis():
    """Doubling every F (F000 too) doubles the map; negating all but F000 mirrors about the mean."""
    m = random_map((7, 8, 9), seed=19, offset=2.0)
    sf = structure_factors(m)
    sf.f = 2 * sf.f
    sf.f000 = 2 * sf.f000
    np.testing.assert_allclose(map_from_structure_factors(sf, m).data, 2 * m.data, atol=1e-5)
    sf = structure_factors(m)
    sf.f = -sf.f
    mean = m.data.astype(np.float64).mean()
    np.testing.assert_allclose(map_from_structure_factors(sf, m).data, 2 * mean - m.data,
                               atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("d_min", [None, 2.9])
def test_lazy_view_synthesis_equals_the_reflection_list(shape, d_min):
    """An untouched structure_factors view goes straight back through its half-transform; the
    result must be the synthesis from its explicit reflection list (hkl, f), and, with d_min,
    numpy's inverse transform of the reflections with d >= d_min."""
    m = random_map(shape, seed=31, offset=1.0)
    view = structure_factors(m, d_min)
    explicit = structure_factors(m, d_min)
    listed = StructureFactors(explicit.hkl.copy(), explicit.f.copy(), explicit.d.copy(),
                              explicit.f000, explicit.grid_shape, explicit.cell, explicit.origin)
    fast = map_from_structure_factors(view, m).data
    assert view._f is None  # the view path was taken, and it did not materialise the list
    slow = map_from_structure_factors(listed, m).data
    np.testing.assert_allclose(fast, slow, atol=1e-6 * np.abs(slow).max())
    full = np.conj(numpy_half(m))
    nz, ny, nx = shape
    l_, k_, h_ = np.meshgrid(np.fft.fftfreq(nz, 1 / nz), np.fft.fftfreq(ny, 1 / ny),
                             np.arange(nx // 2 + 1), indexing="ij")
    s = np.sqrt((h_ / m.cell[0]) ** 2 + (k_ / m.cell[1]) ** 2 + (l_ / m.cell[2]) ** 2)
    if d_min is not None:
        full[s > 1.0 / d_min] = 0.0
    expected = np.fft.irfftn(full, s=shape, axes=(0, 1, 2)) * m.data.size / np.prod(m.cell)
    np.testing.assert_allclose(fast, expected, atol=1e-5 * np.abs(expected).max())
    # the half-transform it was built from is not consumed by the synthesis
    np.testing.assert_array_equal(view.f, explicit.f)


def test_view_changed_in_place_or_cut_is_synthesised_from_its_arrays():
    """A view whose hkl or f were read may have been changed in place: it is synthesised from
    its arrays (as a list would be); subset() gives a list of some of its reflections."""
    m = random_map((8, 10, 12), seed=33, offset=1.0)
    reference = map_from_structure_factors(structure_factors(m), m).data
    view = structure_factors(m)
    view.f[:] = 0  # every reflection removed in place: only F(000) is left
    flat = map_from_structure_factors(view, m).data
    np.testing.assert_allclose(flat, view.f000 / np.prod(m.cell), rtol=1e-5)
    view = structure_factors(m)
    d = view.d
    hkl = view.hkl
    hkl[hkl[:, 0] > 0, 2] *= -1  # indices changed in place: the synthesis must follow them
    listed = StructureFactors(hkl.copy(), view.f.copy(), d, view.f000, view.grid_shape,
                              view.cell, view.origin)
    np.testing.assert_allclose(map_from_structure_factors(view, m).data,
                               map_from_structure_factors(listed, m).data, atol=1e-6)
    assert not np.allclose(map_from_structure_factors(view, m).data, reference, atol=1e-3)
    view = structure_factors(m)
    low = view.d >= 4.0
    part = view.subset(low)
    assert len(part) == int(low.sum()) and len(view) == len(low)
    np.testing.assert_array_equal(part.hkl, view.hkl[low])
    view.f = view.f[low]
    assert len(view) == int(low.sum())


def test_overwrite_gives_the_same_map_and_keeps_inputs_it_may_not_touch():
    m = random_map((10, 12, 14), seed=32)
    f = half_transform(m)
    kept = f.copy()
    a = map_from_half_transform(f, m).data
    np.testing.assert_array_equal(f, kept)
    b = map_from_half_transform(f, m, overwrite=True).data
    np.testing.assert_allclose(a, b, atol=1e-6 * np.abs(a).max())
    np.testing.assert_allclose(a, m.data, atol=1e-5)
    read_only = kept.copy()
    read_only.flags.writeable = False
    c = map_from_half_transform(read_only, m, overwrite=True).data  # copied, not refused
    np.testing.assert_array_equal(read_only, kept)
    np.testing.assert_allclose(a, c, atol=1e-6 * np.abs(a).max())


@pytest.mark.parametrize("shape", [(10, 12, 14), (7, 6, 5), (5, 4, 1), (1, 1, 1), (33, 17, 31)])
def test_overwrite_makes_the_map_in_the_transforms_memory(shape):
    """With overwrite the map is made in place of the half transform (no new array): the
    same values, to the bit, as the path that leaves the transform alone, odd and even nx."""
    m = random_map(shape, seed=33)
    f = half_transform(m)
    expected = map_from_half_transform(f, m).data
    got = map_from_half_transform(f, m, overwrite=True).data
    assert np.shares_memory(got, f) and got.flags.c_contiguous and got.flags.writeable
    np.testing.assert_array_equal(got, expected)


def test_map_from_structure_factors_rejects_other_grids():
    m = random_map((6, 7, 8), seed=20)
    sf = structure_factors(m)
    with pytest.raises(ValueError):
        map_from_structure_factors(sf, random_map((6, 7, 9)))
    with pytest.raises(ValueError):
        map_from_structure_factors(sf, Map(m.data, 2 * m.voxel_size))
    with pytest.raises(ValueError):
        map_from_half_transform(half_transform(m), random_map((6, 7, 10)))


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------


def test_one_and_two_threads_agree():
    m = random_map((48, 40, 44), seed=21)
    f1 = half_transform(m, nthreads=1)
    f2 = half_transform(m, nthreads=2)
    np.testing.assert_allclose(f1, f2, atol=1e-6 * np.abs(f1).max(), rtol=0)
    a = structure_factors(m, 3.0, nthreads=1)
    b = structure_factors(m, 3.0, nthreads=2)
    np.testing.assert_array_equal(a.hkl, b.hkl)
    np.testing.assert_allclose(a.f, b.f, atol=1e-6 * np.abs(a.f).max(), rtol=0)
    back1 = map_from_half_transform(f1, m, nthreads=1).data
    back2 = map_from_half_transform(f1, m, nthreads=2).data
    np.testing.assert_allclose(back1, back2, atol=1e-6, rtol=0)
