"""Tests of resolution shells and per-shell sums (voxscale.reciprocal.shells).

shell_index is checked against an assignment computed here with numpy (s of every half-grid
element, numpy.searchsorted, and Friedel classes built from the full grid), shell_sums against
numpy.bincount, and ShellSums.r_factor / fsc against known answers (identical maps, ρ and −ρ,
ρ and 2ρ).
"""
import numpy as np
import pytest

from voxscale import Map, half_transform, shell_edges, shell_index, shell_sums, structure_factors

SHAPES = [(8, 10, 12), (7, 9, 11), (6, 5, 16), (9, 8, 1), (1, 4, 5), (2, 3, 2), (10, 12, 7)]


def signed(i, n):
    return np.where(i < (n + 1) // 2, i, i - n)


def half_grid_s(shape, cell):
    """|s| in Å⁻¹ of every element of the half-transform (nz, ny, nx//2 + 1)."""
    nz, ny, nx = shape
    iz, iy, ix = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx // 2 + 1), indexing="ij")
    h, k, l = ix, signed(iy, ny), signed(iz, nz)
    return np.sqrt((h / cell[0]) ** 2 + (k / cell[1]) ** 2 + (l / cell[2]) ** 2), (ix, iy, iz)


def friedel_class(shape, ix, iy, iz):
    """An id shared by a reflection and its Friedel mate: the smaller full-grid linear index."""
    nz, ny, nx = shape
    own = (iz * ny + iy) * nx + ix
    mate = (((-iz) % nz) * ny + (-iy) % ny) * nx + (-ix) % nx
    return np.minimum(own, mate)


def brute_force_check(shape, cell, edges, shells):
    """Every half-grid element's shell against numpy, and exactly one entry per Friedel class."""
    s, (ix, iy, iz) = half_grid_s(shape, cell)
    expected = np.searchsorted(edges, s, side="right") - 1
    in_range = (expected >= 0) & (expected < len(edges) - 1) & (s > 0)
    counted = shells >= 0
    # counted entries carry the numpy shell; nothing outside the range or 000 is counted
    assert not np.any(counted & ~in_range)
    np.testing.assert_array_equal(shells[counted], expected[counted])
    # exactly one member of every Friedel class that lies in range
    cls = friedel_class(shape, ix, iy, iz)
    assert len(np.unique(cls[counted])) == counted.sum()
    np.testing.assert_array_equal(np.unique(cls[counted]), np.unique(cls[in_range]))
    # entries not in the self-mated planes (0 < h < nx/2) are always their class's only copy
    nx = shape[2]
    plain = (ix > 0) & (2 * ix != nx)
    np.testing.assert_array_equal(counted[plain], in_range[plain])


@pytest.mark.parametrize("shape", SHAPES)
def test_shell_index_matches_brute_force(shape):
    cell = np.array(shape[::-1]) * np.array([1.05, 0.85, 1.3])
    s_max = np.sqrt(np.sum((np.array(shape[::-1]) // 2 / cell) ** 2))
    edges = np.array([0.0, 0.1, 0.17, 0.2, 0.31, 0.4, 0.52, 0.6, s_max * 1.01])
    shells = shell_index(shape, cell, edges)
    assert shells.dtype == np.int32 and shells.shape == (shape[0], shape[1], shape[2] // 2 + 1)
    brute_force_check(shape, cell, edges, shells)
    assert shells.max() == len(edges) - 2 or min(shape) < 3


@pytest.mark.parametrize("shape", [(12, 14, 16), (11, 13, 15)])
def test_shell_index_partial_range(shape):
    """Edges that start above 0 and stop before the corner of the grid."""
    cell = np.array(shape[::-1], dtype=float) * 1.1
    edges = shell_edges(8.0, 3.0, 5)
    shells = shell_index(shape, cell, edges)
    brute_force_check(shape, cell, edges, shells)
    s, _ = half_grid_s(shape, cell)
    assert np.any((shells == -1) & (s < edges[0]) & (s > 0))
    assert np.any((shells == -1) & (s > edges[-1]))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("d_max, d_min", [(None, None), (None, 2.5), (6.0, 2.5)])
def test_unique_reflection_mask_matches_brute_force(shape, d_max, d_min):
    """One member of each Friedel pair in the range, F(000) out: the numpy assignment of
    brute_force_check (and so the members shell_index counts), with no int32 map made."""
    from voxscale.reciprocal.transform import unique_reflection_mask
    cell = np.array(shape[::-1], dtype=float) * 1.1
    keep = unique_reflection_mask(shape, cell, d_max, d_min)
    assert keep.dtype == bool and keep.shape == (shape[0], shape[1], shape[2] // 2 + 1)
    edges = np.array([0.0 if d_max is None else 1 / d_max,
                      np.inf if d_min is None else (1 + 1e-9) / d_min])
    brute_force_check(shape, cell, edges, np.where(keep, 0, -1).astype(np.int32))
    np.testing.assert_array_equal(keep, shell_index(shape, cell, edges) >= 0)


def test_shell_sums_add_over_parts():
    """ShellSums of two parts of a list add up to the list's."""
    rng = np.random.default_rng(4)
    f1, f2 = random_complex(rng, 3001, 2.0), random_complex(rng, 3001, 1.0)
    shells = rng.integers(0, 6, 3001).astype(np.int32)
    whole = shell_sums(f1, f2, shells, 6)
    parts = shell_sums(f1[:1000], f2[:1000], shells[:1000], 6) + \
        shell_sums(f1[1000:], f2[1000:], shells[1000:], 6)
    np.testing.assert_array_equal(parts.count, whole.count)
    for name in ("sum_f1", "sum_f2", "sum_f1_sq", "sum_f2_sq", "sum_abs_diff", "sum_re_cross"):
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), rtol=1e-12)


def test_shell_index_agrees_with_structure_factors():
    m = Map(np.random.default_rng(0).standard_normal((10, 11, 12)).astype(np.float32),
            (1.0, 1.2, 0.9))
    edges = shell_edges(None, 2.5, 6)
    shells = shell_index(m.shape, m.cell, edges)
    sf = structure_factors(m, 2.5)
    assert (shells >= 0).sum() == len(sf)
    nz, ny, nx = m.shape
    h, k, l = sf.hkl.T
    assert np.all(shells[l % nz, k % ny, h] >= 0)
    # same shell as numpy puts its s in
    s = 1.0 / sf.d
    np.testing.assert_array_equal(shells[l % nz, k % ny, h],
                                  np.searchsorted(edges, s, side="right") - 1)


# --------------------------------------------------------------------------------------------
# shell_edges
# --------------------------------------------------------------------------------------------


def test_shell_edges_cubic_spacing():
    e = shell_edges(20.0, 3.0, 8)
    assert e.shape == (9,)
    assert np.all(np.diff(e) > 0)
    assert e[0] == 1 / 20.0
    assert e[-1] >= 1 / 3.0 and e[-1] - 1 / 3.0 <= 1.01e-9 / 3.0  # d_min margin: relative 1e-9
    cubes = e ** 3
    np.testing.assert_allclose(np.diff(cubes), (1 / 3.0**3 - 1 / 20.0**3) / 8, rtol=3e-8)


def test_shell_edges_linear_spacing_and_open_low_end():
    for d_max in (None, np.inf):
        e = shell_edges(d_max, 2.0, 5, spacing="linear")
        assert e[0] == 0.0
        np.testing.assert_allclose(np.diff(e), 0.1, rtol=1e-8)  # last edge has the 1e-9 margin
    e = shell_edges(None, 2.0, 5)
    np.testing.assert_allclose(np.diff(e ** 3), 0.125 / 5, rtol=3e-8)  # s³: 3 × the margin


def test_shell_edges_include_reflections_at_exactly_d_min():
    """32 Å box with 1 Å voxels: (8, 0, 0) and (0, 0, 8) have s = 0.25 exactly, d = 4 Å."""
    shape, cell = (32, 32, 32), np.array([32.0, 32.0, 32.0])
    for spacing in ("cubic", "linear"):
        e = shell_edges(16.0, 4.0, 7, spacing=spacing)
        shells = shell_index(shape, cell, e)
        assert shells[0, 0, 8] == 6  # (8, 0, 0)
        assert shells[8, 0, 0] == 6  # (0, 0, 8)
        assert shells[0, 8, 0] == 6  # (0, 8, 0)
        assert shells[0, 0, 2] == 0  # (2, 0, 0): s = 1/16, the low edge, is included
        assert shells[0, 0, 1] == -1  # d = 32 Å > d_max
        assert shells[0, 1, 8] == -1  # just beyond d_min
        brute_force_check(shape, cell, e, shells)


def test_shell_edges_include_reflections_at_a_decimal_d_min():
    shells = shell_index((20, 20, 20), (22.0, 22.0, 22.0), shell_edges(None, 2.2, 4))
    assert shells[0, 8, 6] == 3  # (6, 8, 0)
    assert shells[0, 0, 10] == 3  # (10, 0, 0)
    assert shells[10, 0, 0] == 3  # (0, 0, 10) (or its mate (0, 0, -10), the same index)


@pytest.mark.parametrize("args", [(3.0, 3.0), (2.0, 3.0), (None, 0.0), (None, -1.0),
                                  (None, np.nan), (10.0, 2.0, 0)])
def test_shell_edges_validation(args):
    with pytest.raises(ValueError):
        shell_edges(*args)
    with pytest.raises(ValueError):
        shell_edges(10.0, 2.0, 4, spacing="log")


# --------------------------------------------------------------------------------------------
# shell_sums
# --------------------------------------------------------------------------------------------


def random_complex(rng, n, scale=1.0):
    return (scale * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)


def test_shell_sums_match_bincount():
    rng = np.random.default_rng(1)
    n, n_shells = 5000, 7
    f1 = random_complex(rng, n, 3.0)
    f2 = random_complex(rng, n, 2.0)
    shells = rng.integers(-2, n_shells + 3, n).astype(np.int32)  # some out of range: skipped
    out = shell_sums(f1, f2, shells, n_shells)
    ok = (shells >= 0) & (shells < n_shells)
    idx = shells[ok]
    a = f1[ok].astype(np.complex128)
    b = f2[ok].astype(np.complex128)
    count = lambda w: np.bincount(idx, weights=w, minlength=n_shells)  # noqa: E731
    np.testing.assert_array_equal(out.count, np.bincount(idx, minlength=n_shells))
    assert out.count.dtype == np.int64
    np.testing.assert_allclose(out.sum_f1, count(np.abs(a)), rtol=1e-12)
    np.testing.assert_allclose(out.sum_f2, count(np.abs(b)), rtol=1e-12)
    np.testing.assert_allclose(out.sum_f1_sq, count(np.abs(a) ** 2), rtol=1e-12)
    np.testing.assert_allclose(out.sum_f2_sq, count(np.abs(b) ** 2), rtol=1e-12)
    np.testing.assert_allclose(out.sum_abs_diff, count(np.abs(np.abs(a) - np.abs(b))), rtol=1e-12)
    np.testing.assert_allclose(out.sum_re_cross, count((a * np.conj(b)).real), rtol=1e-10,
                               atol=1e-10 * count(np.abs(a) * np.abs(b)).max())
    np.testing.assert_allclose(out.r_factor, count(np.abs(np.abs(a) - np.abs(b))) /
                               count(np.abs(a)), rtol=1e-12)
    np.testing.assert_allclose(out.fsc, count((a * np.conj(b)).real) /
                               np.sqrt(count(np.abs(a) ** 2) * count(np.abs(b) ** 2)),
                               rtol=1e-9, atol=1e-12)


def test_shell_sums_on_a_half_transform_match_bincount():
    """Any shape is flattened; the half-transform with shell_index counts unique reflections."""
    rng = np.random.default_rng(2)
    m1 = Map(rng.standard_normal((10, 9, 12)).astype(np.float32), (1.1, 1.0, 0.9))
    m2 = Map(rng.standard_normal((10, 9, 12)).astype(np.float32), (1.1, 1.0, 0.9))
    f1, f2 = half_transform(m1), half_transform(m2)
    edges = shell_edges(None, 2.3, 5)
    shells = shell_index(m1.shape, m1.cell, edges)
    out = shell_sums(f1, f2, shells, 5)
    ok = shells >= 0
    a, b, idx = f1[ok].astype(np.complex128), f2[ok].astype(np.complex128), shells[ok]
    np.testing.assert_array_equal(out.count, np.bincount(idx, minlength=5))
    np.testing.assert_allclose(out.sum_f1_sq, np.bincount(idx, np.abs(a) ** 2, 5), rtol=1e-12)
    np.testing.assert_allclose(out.sum_re_cross, np.bincount(idx, (a * b.conj()).real, 5),
                               rtol=1e-9, atol=1e-9 * np.bincount(idx, np.abs(a * b), 5).max())
    # the same reflections as structure_factors gives, shell by shell
    sf = structure_factors(m1, 2.3)
    sidx = np.searchsorted(edges, 1.0 / sf.d, side="right") - 1
    np.testing.assert_array_equal(out.count, np.bincount(sidx, minlength=5))
    np.testing.assert_allclose(out.sum_f1, np.bincount(sidx, np.abs(sf.f.astype(complex)), 5),
                               rtol=1e-6)


def test_shell_sums_without_f2():
    rng = np.random.default_rng(3)
    f1 = random_complex(rng, 1000)
    shells = rng.integers(-1, 4, 1000).astype(np.int32)
    out = shell_sums(f1, None, shells, 4)
    ok = shells >= 0
    np.testing.assert_array_equal(out.count, np.bincount(shells[ok], minlength=4))
    np.testing.assert_allclose(out.sum_f1, np.bincount(shells[ok], np.abs(f1[ok]), 4), rtol=1e-6)
    np.testing.assert_allclose(out.sum_f1_sq,
                               np.bincount(shells[ok], np.abs(f1[ok].astype(complex)) ** 2, 4),
                               rtol=1e-12)
    for name in ("sum_f2", "sum_f2_sq", "sum_abs_diff", "sum_re_cross"):
        np.testing.assert_array_equal(getattr(out, name), np.zeros(4))


def test_shell_sums_empty_shells_and_zero_shells():
    f = np.ones(10, np.complex64)
    out = shell_sums(f, f, np.full(10, 1, np.int32), 3)
    np.testing.assert_array_equal(out.count, [0, 10, 0])
    assert np.isnan(out.r_factor[0]) and np.isnan(out.fsc[2])
    assert out.fsc[1] == 1.0 and out.r_factor[1] == 0.0
    out = shell_sums(f, f, np.zeros(10, np.int32), 0)
    assert out.count.shape == (0,)
    with pytest.raises(ValueError):
        shell_sums(f, f, np.zeros(10, np.int32), -1)


def map_pair_sums(rho1, rho2, n_shells=6):
    m1 = Map(rho1, (1.0, 1.1, 0.9))
    m2 = Map(rho2, (1.0, 1.1, 0.9))
    shells = shell_index(m1.shape, m1.cell, shell_edges(None, 2.2, n_shells))
    return shell_sums(half_transform(m1), half_transform(m2), shells, n_shells)


def test_known_answers_r_factor_and_fsc():
    rho = np.random.default_rng(4).standard_normal((12, 11, 10)).astype(np.float32)
    same = map_pair_sums(rho, rho.copy())
    np.testing.assert_array_equal(same.r_factor, np.zeros(6))
    np.testing.assert_allclose(same.fsc, 1.0, rtol=1e-12)
    neg = map_pair_sums(rho, -rho)
    np.testing.assert_allclose(neg.fsc, -1.0, rtol=1e-12)
    np.testing.assert_allclose(neg.r_factor, 0.0, atol=1e-7)
    double = map_pair_sums(rho, 2 * rho)
    np.testing.assert_allclose(double.fsc, 1.0, rtol=1e-7)
    np.testing.assert_allclose(double.r_factor, 1.0, rtol=1e-6)  # |F − 2F| / |F|
    # a shift by whole voxels changes phases only: R = 0, FSC = cos(2π h·Δ) averaged per shell
    shifted = map_pair_sums(rho, np.roll(rho, 3, axis=2))
    np.testing.assert_allclose(shifted.r_factor, 0.0, atol=1e-6)
    assert np.all(shifted.fsc < 0.99)
    rng = np.random.default_rng(5)
    big = rng.standard_normal((2, 24, 22, 26)).astype(np.float32)
    unrelated = map_pair_sums(big[0], big[1])
    assert np.all(np.abs(unrelated.fsc) < 0.15)
    # independent Gaussian noise: R → 2 − √2 for equal-variance acentric data (pooled shells)
    pooled = unrelated.sum_abs_diff.sum() / unrelated.sum_f1.sum()
    assert abs(pooled - (2 - np.sqrt(2))) < 0.02, pooled


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------


def test_one_and_two_threads_agree():
    rng = np.random.default_rng(6)
    shape = (48, 46, 44)
    cell = np.array(shape[::-1]) * 1.05
    edges = shell_edges(None, 2.2, 12)
    s1 = shell_index(shape, cell, edges, nthreads=1)
    s2 = shell_index(shape, cell, edges, nthreads=2)
    np.testing.assert_array_equal(s1, s2)
    n = s1.size
    f1 = random_complex(rng, n).reshape(s1.shape)
    f2 = random_complex(rng, n).reshape(s1.shape)
    a = shell_sums(f1, f2, s1, 12, nthreads=1)
    b = shell_sums(f1, f2, s1, 12, nthreads=2)
    for name in ("count", "sum_f1", "sum_f2", "sum_f1_sq", "sum_f2_sq", "sum_abs_diff"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10)
    scale = np.sqrt(a.sum_f1_sq * a.sum_f2_sq)
    np.testing.assert_allclose(a.sum_re_cross / scale, b.sum_re_cross / scale, atol=1e-10)
    # deterministic for a given thread count
    c = shell_sums(f1, f2, s1, 12, nthreads=2)
    np.testing.assert_array_equal(b.sum_re_cross, c.sum_re_cross)
