"""Tests of point interpolation, spline coefficients and resampling (voxscale.maps.interpolation).

Every number is checked against something voxscale did not compute: scipy.ndimage
(``map_coordinates``, ``spline_filter``, ``affine_transform``), finite differences of scipy's
interpolant, or an analytic function (a Gaussian blob moved by a known transform).

Conventions (docs/method.md §2): maps are (nz, ny, nx) arrays, points and voxel sizes are x, y, z in Å,
voxel (ix, iy, iz) sits at origin + (ix·vx, iy·vy, iz·vz). scipy.ndimage indexes arrays in
(z, y, x) order, so every conversion below reverses the axis order explicitly.
"""
import numpy as np
import pytest
import scipy.ndimage as ndi

import voxscale
from voxscale import Interpolator, Map, _core, interpolate, resample, spline_coefficients

VOXEL = np.array([0.9, 1.15, 1.3])  # x, y, z (Å), deliberately anisotropic
ORIGIN = np.array([-12.5, 7.25, 30.0])  # x, y, z (Å)
# Powers of two: origin + i·v and (p − origin)/v are exact, so points on the faces of the
# domain really have index 0 or n − 1 (see test_own_voxel_positions_are_inside for the others).
EXACT_VOXEL = np.array([0.5, 0.25, 2.0])

# (nz, ny, nx): non-cubic, odd and even, and tiny axes (1, 2, 3, 5 samples).
SHAPES = [(9, 11, 14), (5, 8, 3), (3, 2, 7), (1, 6, 5), (4, 1, 9), (2, 3, 1), (1, 1, 4)]


def random_map(shape, seed=0, voxel=VOXEL, origin=ORIGIN):
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return Map(data, voxel, origin)


def random_inside_indices(shape, n, seed, margin=0.0):
    """Random fractional (ix, iy, iz) indices inside [margin, n - 1 - margin] on every axis."""
    rng = np.random.default_rng(seed)
    hi = np.array(shape[::-1], dtype=np.float64) - 1.0
    return margin + rng.random((n, 3)) * np.maximum(hi - 2 * margin, 0.0)


def to_points(m, idx_xyz):
    """Fractional indices (x, y, z order) -> physical points in Å."""
    return m.origin + idx_xyz * m.voxel_size


def scipy_coords(m, points):
    """Physical points (n, 3) x, y, z in Å -> scipy coordinates (3, n) in (z, y, x) order."""
    idx = (np.asarray(points, dtype=np.float64) - m.origin) / m.voxel_size
    return idx[:, ::-1].T


def scipy_order3(m, points):
    return ndi.map_coordinates(m.data.astype(np.float64), scipy_coords(m, points), order=3,
                               mode="mirror", prefilter=True)


def scipy_order1(m, points):
    return ndi.map_coordinates(m.data.astype(np.float64), scipy_coords(m, points), order=1,
                               mode="nearest")


# --------------------------------------------------------------------------------------------
# order 1: trilinear
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(13, 10, 17), (5, 8, 3), (2, 3, 2)])
def test_trilinear_matches_scipy(shape):
    m = random_map(shape, seed=1)
    pts = to_points(m, random_inside_indices(shape, 3000, seed=2))
    values = interpolate(m, pts, order=1)
    assert values.dtype == np.float32 and values.shape == (3000,)
    expected = scipy_order1(m, pts)
    err = np.max(np.abs(values - expected))
    assert err < 1e-5, err


def test_trilinear_on_degenerate_axes_matches_scipy():
    """An axis of one sample: the domain is the plane index 0 on it; inside, plain bilinear."""
    m = random_map((1, 6, 5), seed=3)
    idx = random_inside_indices(m.shape, 500, seed=4)
    assert np.all(idx[:, 2] == 0.0)
    pts = to_points(m, idx)
    values, inside = Interpolator(m, order=1)(pts, return_inside=True)
    assert inside.all()
    np.testing.assert_allclose(values, scipy_order1(m, pts), atol=1e-5, rtol=0)


def test_trilinear_known_values():
    """f(x, y, z) = 2x − 3y + 0.5z + 1 is reproduced exactly by trilinear interpolation."""
    shape = (6, 7, 8)
    iz, iy, ix = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    pos = [ORIGIN[a] + VOXEL[a] * i for a, i in enumerate((ix, iy, iz))]
    f = lambda x, y, z: 2 * x - 3 * y + 0.5 * z + 1  # noqa: E731
    m = Map(f(*pos).astype(np.float32), VOXEL, ORIGIN)
    pts = to_points(m, random_inside_indices(shape, 1000, seed=5))
    values, grads = interpolate(m, pts, order=1, gradient=True)
    np.testing.assert_allclose(values, f(*pts.T), atol=1e-5 * np.abs(m.data).max())
    np.testing.assert_allclose(grads, np.tile([2.0, -3.0, 0.5], (1000, 1)), atol=1e-4)


def test_outside_points_get_fill_and_flag():
    m = random_map((6, 7, 8), seed=6)
    n = np.array(m.shape[::-1])
    lo, hi = m.origin, m.origin + (n - 1) * m.voxel_size
    eps = 1e-4  # Å; the kernels accept 1e-6 voxel beyond the edge as rounding (kEdgeTolerance)
    pts = np.array([
        lo - [eps, 0, 0] + [0, 1, 1],
        lo - [0, eps, 0] + [1, 0, 1],
        lo - [0, 0, eps] + [1, 1, 0],
        hi + [eps, 0, 0] - [0, 1, 1],
        hi + [0, eps, 0] - [1, 0, 1],
        hi + [0, 0, eps] - [1, 1, 0],
        lo - 1000.0,
        hi + 1e6,
        [np.nan, lo[1] + 1, lo[2] + 1],
        [lo[0] + 1, np.nan, lo[2] + 1],
        [lo[0] + 1, lo[1] + 1, np.nan],
        [np.inf, lo[1] + 1, lo[2] + 1],
        [lo[0] + 1, -np.inf, lo[2] + 1],
        [np.nan, np.nan, np.nan],
        [1e308, -1e308, 1e308],
    ])
    for order in (1, 3):
        values, grads, inside = Interpolator(m, order=order, fill=-7.5)(
            pts, gradient=True, return_inside=True)
        assert inside.dtype == np.bool_
        assert not inside.any()
        assert np.all(values == np.float32(-7.5))
        assert np.all(grads == 0.0)
    # the default fill is 0
    assert np.all(interpolate(m, pts) == 0.0)


def test_points_exactly_on_the_domain_boundary_are_inside():
    """Index 0 and n − 1 on each axis are inside (exactly representable geometry)."""
    data = np.random.default_rng(7).standard_normal((4, 5, 6)).astype(np.float32)
    m = Map(data, EXACT_VOXEL, (-4.0, 8.0, 0.75))
    n = np.array(m.shape[::-1])
    corners = np.array([[i, j, k] for i in (0, n[0] - 1) for j in (0, n[1] - 1)
                        for k in (0, n[2] - 1)], dtype=np.float64)
    pts = m.origin + corners * m.voxel_size
    for order in (1, 3):
        values, inside = Interpolator(m, order=order, fill=np.nan)(pts, return_inside=True)
        assert inside.all()
        expected = data[corners[:, 2].astype(int), corners[:, 1].astype(int),
                        corners[:, 0].astype(int)]
        np.testing.assert_allclose(values, expected, atol=1e-5)


def test_own_voxel_positions_are_inside():
    """Interpolating a map at its own voxel positions origin + i·v returns every sample."""
    # the minimal case: 3 * 0.9 == 2.7 is the position of the last of four voxels
    value, inside = Interpolator(Map(np.ones((1, 1, 4), np.float32), 0.9), order=1)(
        [[3 * 0.9, 0.0, 0.0]], return_inside=True)
    assert inside[0] and value[0] == 1.0
    rng = np.random.default_rng(8)
    failures = []
    for _ in range(40):
        n = rng.integers(2, 12, 3)
        vox, org = rng.uniform(0.5, 2.5, 3), rng.uniform(-200.0, 200.0, 3)
        data = rng.standard_normal(tuple(n[::-1])).astype(np.float32)
        m = Map(data, vox, org)
        iz, iy, ix = np.meshgrid(*(np.arange(k) for k in n[::-1]), indexing="ij")
        idx = np.stack([ix.ravel(), iy.ravel(), iz.ravel()], axis=1)
        values, inside = Interpolator(m, order=1)(org + idx * vox, return_inside=True)
        if not inside.all() or not np.allclose(values, data.ravel(), atol=1e-5):
            failures.append((tuple(n), tuple(vox), tuple(org)))
    assert not failures, f"{len(failures)} of 40 grids lose voxels, e.g. {failures[0]}"


def test_empty_points():
    m = random_map((4, 4, 4))
    for order in (1, 3):
        values, grads, inside = Interpolator(m, order=order)(np.zeros((0, 3)), gradient=True,
                                                           return_inside=True)
        assert values.shape == (0,) and grads.shape == (0, 3) and inside.shape == (0,)


def test_single_point_as_1d_array():
    m = random_map((5, 6, 7), seed=9)
    p = to_points(m, np.array([[2.3, 1.7, 3.1]]))[0]
    assert interpolate(m, p).shape == (1,)
    np.testing.assert_allclose(interpolate(m, p, order=3), scipy_order3(m, p[None]), atol=1e-5)


# --------------------------------------------------------------------------------------------
# order 3: cubic B-spline, mirror boundaries
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_spline_coefficients_match_scipy(shape):
    data = np.random.default_rng(10).standard_normal(shape).astype(np.float32)
    coeff = spline_coefficients(data)
    assert coeff.dtype == np.float32 and coeff.shape == shape
    expected = ndi.spline_filter(data.astype(np.float64), order=3, mode="mirror")
    err = np.max(np.abs(coeff - expected)) / np.max(np.abs(expected))
    assert err < 1e-5, err
    # the input is not modified
    np.testing.assert_array_equal(data, np.random.default_rng(10).standard_normal(shape)
                                  .astype(np.float32))


def test_spline_coefficients_long_axes_match_scipy():
    """Axes longer than the prefilter's exact-initialisation horizon (30 samples)."""
    data = np.random.default_rng(11).standard_normal((33, 4, 47)).astype(np.float32)
    expected = ndi.spline_filter(data.astype(np.float64), order=3, mode="mirror")
    err = np.max(np.abs(spline_coefficients(data) - expected)) / np.max(np.abs(expected))
    assert err < 1e-5, err
    np.testing.assert_allclose(_core.spline_prefilter(data, 1), expected,
                               atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("shape", SHAPES)
def test_cubic_matches_scipy_over_whole_domain(shape):
    m = random_map(shape, seed=12, voxel=EXACT_VOXEL)
    idx = random_inside_indices(shape, 2000, seed=13)
    # include the faces and corners of the domain explicitly
    hi = np.array(shape[::-1], dtype=np.float64) - 1
    idx[:8] = [[a, b, c] for a in (0, hi[0]) for b in (0, hi[1]) for c in (0, hi[2])]
    idx[8:20, 0] = hi[0]
    idx[20:32, 1] = 0.0
    pts = to_points(m, idx)
    values, inside = Interpolator(m, order=3)(pts, return_inside=True)
    assert inside.all()
    expected = scipy_order3(m, pts)
    err = np.max(np.abs(values - expected)) / np.max(np.abs(m.data))
    assert err < 1e-5, err


@pytest.mark.parametrize("shape", [(9, 11, 14), (3, 2, 7), (1, 6, 5)])
def test_interpolate_points_kernel_with_scipy_coefficients(shape):
    """_core.interpolate_points on coefficients made by scipy (not by voxscale's prefilter)
    against scipy's evaluation of the same coefficients, order 3; and on samples, order 1."""
    m = random_map(shape, seed=30, voxel=EXACT_VOXEL)
    coeff = ndi.spline_filter(m.data.astype(np.float64), order=3, mode="mirror")
    pts = to_points(m, random_inside_indices(shape, 1000, seed=31))
    values, grads, inside = _core.interpolate_points(
        coeff.astype(np.float32), m.origin, m.voxel_size, pts, 3, -1.0, False, 1)
    assert grads is None and inside.all()
    expected = ndi.map_coordinates(coeff, scipy_coords(m, pts), order=3, mode="mirror",
                                   prefilter=False)
    np.testing.assert_allclose(values, expected, atol=1e-5 * np.abs(m.data).max())
    values, _, inside = _core.interpolate_points(m.data, tuple(m.origin), list(m.voxel_size),
                                                 pts, 1, -1.0, False, 2)
    np.testing.assert_allclose(values, scipy_order1(m, pts), atol=1e-5 * np.abs(m.data).max())


def test_cubic_reproduces_samples_at_grid_points():
    for shape in SHAPES:
        m = random_map(shape, seed=14)
        iz, iy, ix = np.meshgrid(*(np.arange(k) for k in shape), indexing="ij")
        idx = np.stack([ix.ravel(), iy.ravel(), iz.ravel()], axis=1).astype(np.float64)
        # exactly representable positions (see EXACT_VOXEL)
        m2 = Map(m.data, EXACT_VOXEL, (-2.0, 3.5, 0.25))
        values = Interpolator(m2, order=3, fill=np.nan)(to_points(m2, idx))
        np.testing.assert_allclose(values, m.data.ravel(), atol=2e-5 * np.abs(m.data).max())
        values1 = Interpolator(m2, order=1, fill=np.nan)(to_points(m2, idx))
        np.testing.assert_allclose(values1, m.data.ravel(), atol=1e-6)


def test_interpolator_default_is_cubic():
    m = random_map((6, 7, 8), seed=15)
    pts = to_points(m, random_inside_indices(m.shape, 100, seed=16))
    np.testing.assert_allclose(Interpolator(m)(pts), scipy_order3(m, pts),
                               atol=1e-5 * np.abs(m.data).max())
    np.testing.assert_array_equal(Interpolator(m)(pts), interpolate(m, pts, order=3))


def test_cubic_is_far_more_accurate_than_trilinear_on_smooth_data():
    shape = (20, 22, 24)
    iz, iy, ix = np.meshgrid(*(np.arange(k) for k in shape), indexing="ij")
    f = lambda x, y, z: np.sin(0.5 * x) * np.cos(0.4 * y) + 0.3 * np.sin(0.35 * z + 1)  # noqa
    pos = [ORIGIN[a] + VOXEL[a] * i for a, i in enumerate((ix, iy, iz))]
    m = Map(f(*pos).astype(np.float32), VOXEL, ORIGIN)
    pts = to_points(m, random_inside_indices(shape, 2000, seed=17, margin=3.0))
    truth = f(*pts.T)
    err1 = np.max(np.abs(interpolate(m, pts, order=1) - truth))
    err3 = np.max(np.abs(interpolate(m, pts, order=3) - truth))
    assert err3 < 2.5e-3 and err3 < err1 / 20, (err1, err3)  # seen: 1.3e-3, 5.3e-2


# --------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------


def finite_difference_gradient(m, pts, order, h=1e-4):
    """Central differences of scipy's interpolant, per Å, (n, 3) in x, y, z order."""
    data = m.data.astype(np.float64)
    if order == 3:
        coeff = ndi.spline_filter(data, order=3, mode="mirror")
        f = lambda p: ndi.map_coordinates(coeff, scipy_coords(m, p), order=3,  # noqa: E731
                                          mode="mirror", prefilter=False)
    else:
        f = lambda p: ndi.map_coordinates(data, scipy_coords(m, p), order=1,  # noqa: E731
                                          mode="nearest")
    grad = np.empty_like(pts)
    for a in range(3):
        step = np.zeros(3)
        step[a] = h * m.voxel_size[a]  # h in index units
        grad[:, a] = (f(pts + step) - f(pts - step)) / (2 * step[a])
    return grad


@pytest.mark.parametrize("shape", [(9, 11, 14), (5, 8, 3), (3, 4, 6)])
def test_cubic_gradient_matches_finite_differences(shape):
    m = random_map(shape, seed=18)
    pts = to_points(m, random_inside_indices(shape, 1500, seed=19, margin=1e-3))
    values, grads = interpolate(m, pts, order=3, gradient=True)
    assert grads.shape == (1500, 3) and grads.dtype == np.float32
    fd = finite_difference_gradient(m, pts, order=3)
    err = np.max(np.abs(grads - fd)) / np.max(np.abs(fd))
    assert err < 2e-5, err
    # the values that come with the gradient are the plain values
    np.testing.assert_array_equal(values, interpolate(m, pts, order=3))


@pytest.mark.parametrize("shape", [(9, 11, 14), (4, 3, 6)])
def test_trilinear_gradient_matches_finite_differences(shape):
    m = random_map(shape, seed=20)
    idx = random_inside_indices(shape, 3000, seed=21)
    frac = idx - np.floor(idx)
    idx = idx[np.all((frac > 0.05) & (frac < 0.95), axis=1)]  # away from cell boundaries
    assert len(idx) > 1000
    pts = to_points(m, idx)
    _, grads = interpolate(m, pts, order=1, gradient=True)
    fd = finite_difference_gradient(m, pts, order=1)
    err = np.max(np.abs(grads - fd)) / np.max(np.abs(fd))
    assert err < 2e-5, err


def test_gradient_units_are_per_angstrom():
    """A ramp of 1 per voxel along x has gradient (1/vx, 0, 0) per Å.

    For order 3 the mirror boundary bends the ramp near the x faces (the spline's derivative
    is 0 there), so those points stay ten voxels away from them."""
    shape = (5, 6, 30)
    ix = np.broadcast_to(np.arange(shape[2], dtype=np.float32), shape)
    m = Map(ix, VOXEL, ORIGIN)
    idx = random_inside_indices(shape, 50, seed=22)
    idx[:, 0] = 10 + 9 * np.random.default_rng(23).random(50)
    pts = to_points(m, idx)
    for order in (1, 3):
        _, g = interpolate(m, pts, order=order, gradient=True)
        np.testing.assert_allclose(g, np.tile([1 / VOXEL[0], 0, 0], (50, 1)), atol=1e-4)


# --------------------------------------------------------------------------------------------
# resample
# --------------------------------------------------------------------------------------------


def rotation(axis, degrees):
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.radians(degrees)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def homogeneous(linear, offset):
    out = np.eye(4)
    out[:3, :3] = linear
    out[:3, 3] = offset
    return out


def scipy_index_map(src, onto, rot, shift, scale):
    """(4, 4) matrix taking onto's index (x, y, z, 1) to src's fractional index, built from the
    physical chain: onto index -> onto position p; p = R·(c + s·(x_src − c)) + t; x_src -> index.
    """
    c = src.center
    onto_index_to_pos = homogeneous(np.diag(onto.voxel_size), onto.origin)
    src_index_to_pos = homogeneous(np.diag(src.voxel_size), src.origin)
    forward = homogeneous(rot, shift) @ homogeneous(np.eye(3), c) @ \
        homogeneous(scale * np.eye(3), np.zeros(3)) @ homogeneous(np.eye(3), -c)
    return np.linalg.inv(src_index_to_pos) @ np.linalg.inv(forward) @ onto_index_to_pos


def scipy_resample(src, onto, rot, shift, scale, order):
    """scipy.ndimage.affine_transform with the matrix converted to (z, y, x) order.

    Returns (result, source indices (3, nz, ny, nx) in x, y, z order)."""
    m = scipy_index_map(src, onto, rot, shift, scale)
    rev = np.eye(3)[::-1]
    matrix_zyx = rev @ m[:3, :3] @ rev
    offset_zyx = rev @ m[:3, 3]
    mode = "mirror" if order == 3 else "nearest"
    out = ndi.affine_transform(src.data.astype(np.float64), matrix_zyx, offset_zyx,
                               output_shape=onto.shape, order=order, mode=mode)
    iz, iy, ix = np.meshgrid(*(np.arange(k) for k in onto.shape), indexing="ij")
    grid = np.stack([ix, iy, iz, np.ones_like(ix)]).reshape(4, -1).astype(np.float64)
    src_idx = (m[:3] @ grid).reshape((3,) + onto.shape)
    return out, src_idx


def test_resample_identity_returns_the_map():
    for shape in [(12, 10, 14), (5, 1, 3), (1, 2, 7)]:
        m = random_map(shape, seed=23)
        for order in (1, 3):
            out = resample(m, m, order=order)
            assert out.shape == m.shape
            np.testing.assert_array_equal(out.voxel_size, m.voxel_size)
            np.testing.assert_array_equal(out.origin, m.origin)
            np.testing.assert_allclose(out.data, m.data, atol=2e-5 * np.abs(m.data).max())
            # identity transform and scale given explicitly
            np.testing.assert_allclose(resample(m, m, np.eye(4), 1.0, order=order).data,
                                       m.data, atol=2e-5 * np.abs(m.data).max())


def test_resample_onto_shifted_subgrid_is_a_slice():
    """Onto a grid whose voxels coincide with some of the map's: exactly those samples."""
    m = random_map((12, 10, 14), seed=24, voxel=(0.5, 0.75, 1.25), origin=(1.0, -2.0, 4.0))
    onto = Map(np.zeros((6, 5, 7), np.float32), (0.5, 0.75, 1.25),
               (1.0 + 3 * 0.5, -2.0 + 2 * 0.75, 4.0 + 4 * 1.25))
    for order in (1, 3):
        out = resample(m, onto, order=order).data
        np.testing.assert_allclose(out, m.data[4:10, 2:7, 3:10], atol=2e-5 * np.abs(m.data).max())


@pytest.mark.parametrize("order", [1, 3])
def test_resample_matches_scipy_affine_transform(order):
    src = random_map((30, 26, 34), seed=25, voxel=(1.05, 0.95, 1.2), origin=(-10.0, 4.0, 2.5))
    onto = Map(np.zeros((28, 32, 30), np.float32), (0.9, 1.1, 1.0), (-12.0, 1.5, 3.0))
    rot = rotation([1.0, -2.0, 0.7], 23.0)
    shift = np.array([1.7, -2.2, 0.9])
    scale = 1.035
    out = resample(src, onto, homogeneous(rot, shift), scale, order=order, fill=-99.0)
    assert out.shape == onto.shape
    np.testing.assert_array_equal(out.voxel_size, onto.voxel_size)
    np.testing.assert_array_equal(out.origin, onto.origin)
    expected, src_idx = scipy_resample(src, onto, rot, shift, scale, order)
    hi = np.array(src.shape[::-1], dtype=np.float64)[:, None, None, None] - 1
    margin = 1e-3
    inner = np.all((src_idx >= margin) & (src_idx <= hi - margin), axis=0)
    # within 0.01 voxel of the domain a point counts as inside (kResampleEdgeTolerance)
    outer = np.any((src_idx < -0.011) | (src_idx > hi + 0.011), axis=0)
    assert inner.sum() > 0.3 * inner.size and outer.sum() > 0.05 * outer.size
    err = np.max(np.abs(out.data[inner] - expected[inner])) / np.max(np.abs(src.data))
    assert err < 1e-5, err
    assert np.all(out.data[outer] == -99.0)
    # The library's own index map is the same affine map.
    np.testing.assert_allclose(voxscale.maps.interpolation.index_map(src, onto, homogeneous(rot, shift),
                                                           scale),
                               scipy_index_map(src, onto, rot, shift, scale)[:3], atol=1e-12)


KERNEL_INDEX_MAPS = [
    # general, non-rigid
    np.array([[0.8, 0.1, -0.05, 1.3], [-0.07, 1.1, 0.2, -0.4], [0.03, -0.15, 0.9, 0.6]]),
    # negative steps along output rows, one exactly zero
    np.array([[-0.8, 0.1, 0.0, 11.0], [-0.3, -1.0, 0.1, 9.0], [0.0, 0.2, 0.9, 0.5]]),
    # axis swap and flip: zero steps in two source axes along a row
    np.array([[0.0, 1.0, 0.0, 0.3], [1.0, 0.0, 0.0, -0.2], [0.0, 0.0, -1.0, 9.0]]),
    # large step (magnification 2.5) and a permutation
    np.array([[2.5, 0.0, 0.0, -3.0], [0.0, 0.0, 0.7, 1.0], [0.01, 0.3, 0.0, 2.0]]),
]


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("mat", KERNEL_INDEX_MAPS)
def test_resample_affine_kernel_matches_scipy(order, mat):
    """_core.resample_affine directly, on general index maps (row clipping in every direction)."""
    src = random_map((11, 9, 13), seed=26)
    grid = spline_coefficients(src.data) if order == 3 else src.data
    out_shape = (12, 10, 9)
    out = _core.resample_affine(grid, mat, out_shape, order, 5.0, 1)
    rev = np.eye(3)[::-1]
    mode = "mirror" if order == 3 else "nearest"
    expected = ndi.affine_transform(src.data.astype(np.float64), rev @ mat[:, :3] @ rev,
                                    rev @ mat[:, 3], output_shape=out_shape, order=order,
                                    mode=mode)
    iz, iy, ix = np.meshgrid(*(np.arange(k) for k in out_shape), indexing="ij")
    idx = np.einsum("ij,jzyx->izyx", mat[:, :3], np.stack([ix, iy, iz]).astype(float)) + \
        mat[:, 3, None, None, None]
    hi = np.array(src.shape[::-1], dtype=float)[:, None, None, None] - 1
    inner = np.all((idx >= 1e-6) & (idx <= hi - 1e-6), axis=0)
    outer = np.any((idx < -0.011) | (idx > hi + 0.011), axis=0)
    assert inner.sum() > 200 and outer.sum() > 200
    np.testing.assert_allclose(out[inner], expected[inner], atol=1e-5 * np.abs(src.data).max())
    assert np.all(out[outer] == 5.0)


@pytest.mark.parametrize("order", [1, 3])
def test_resample_affine_kernel_includes_exact_domain_faces(order):
    """With exactly representable (dyadic) index maps, output voxels landing exactly on index
    0 or n − 1 of the source are inside and get its value; one step beyond gets fill."""
    src = random_map((9, 7, 13), seed=32)
    grid = spline_coefficients(src.data) if order == 3 else src.data
    mat = np.array([[0.5, 0.0, 0.0, -1.0], [0.0, -1.0, 0.0, 6.0], [0.0, 0.0, 0.25, 0.0]])
    out_shape = (36, 9, 28)  # x index −1 … 12.5, y 6 … −2, z 0 … 8.75
    out = _core.resample_affine(grid, mat, out_shape, order, -5.0, 1)
    iz, iy, ix = np.meshgrid(*(np.arange(k) for k in out_shape), indexing="ij")
    idx = np.stack([0.5 * ix - 1.0, 6.0 - iy, 0.25 * iz])
    hi = np.array(src.shape[::-1], dtype=float)[:, None, None, None] - 1
    inside = np.all((idx >= 0) & (idx <= hi), axis=0)
    assert np.any(inside & (idx[0] == hi[0])) and np.any(inside & (idx[1] == 0))
    assert np.any(inside & (idx[2] == hi[2]))
    rev = np.eye(3)[::-1]
    expected = ndi.affine_transform(src.data.astype(np.float64), rev @ mat[:, :3] @ rev,
                                    rev @ mat[:, 3], output_shape=out_shape, order=order,
                                    mode="mirror" if order == 3 else "nearest")
    np.testing.assert_allclose(out[inside], expected[inside], atol=1e-5 * np.abs(src.data).max())
    assert np.all(out[~inside] == -5.0)


def test_resample_scale_matrix_equals_scalar():
    src = random_map((10, 12, 11), seed=27)
    t = homogeneous(rotation([0, 0, 1], 10), [0.3, -0.2, 0.1])
    a = resample(src, src, t, 1.02, order=3).data
    b = resample(src, src, t, 1.02 * np.eye(3), order=3).data
    np.testing.assert_allclose(a, b, atol=1e-6)


def gaussian_blob_map(shape, voxel, origin, centre, sigma):
    iz, iy, ix = np.meshgrid(*(np.arange(k) for k in shape), indexing="ij")
    pos = [origin[a] + voxel[a] * i for a, i in enumerate((ix, iy, iz))]
    r2 = sum((pos[a] - centre[a]) ** 2 for a in range(3))
    return np.exp(-r2 / (2 * sigma**2)), pos


def test_resample_moves_a_gaussian_blob_as_the_transform_says():
    """Known answer: a blob at b in the map ends up at R·(c + s·(b − c)) + t, width s·σ."""
    voxel, origin = np.array([1.0, 1.1, 0.9]), np.array([5.0, -3.0, 12.0])
    shape = (44, 40, 46)
    sigma = 2.5
    centre = origin + np.array([18.0, 24.0, 19.0])  # not at the box centre
    data, _ = gaussian_blob_map(shape, voxel, origin, centre, sigma)
    src = Map(data.astype(np.float32), voxel, origin)
    rot = rotation([0.3, 1.0, -0.5], 35.0)
    shift = np.array([4.0, -6.0, 2.5])
    s = 1.04
    expected_centre = rot @ (src.center + s * (centre - src.center)) + shift
    onto_voxel, onto_shape = np.array([0.8, 0.85, 0.95]), (48, 52, 50)
    onto_origin = expected_centre - np.array([22.3, 21.1, 23.6])
    onto = Map(np.zeros(onto_shape, np.float32), onto_voxel, onto_origin)
    truth, pos = gaussian_blob_map(onto_shape, onto_voxel, onto_origin, expected_centre, s * sigma)
    assert truth[0].max() < 1e-6 and truth[-1].max() < 1e-6  # blob well inside the output
    errors = {}
    for order in (1, 3):
        out = resample(src, onto, homogeneous(rot, shift), s, order=order).data.astype(float)
        w = out / out.sum()
        centroid = np.array([(w * p).sum() for p in pos])
        spread = np.array([(w * (p - c) ** 2).sum() for p, c in zip(pos, centroid)])
        # seen: 5e-9 Å (order 3), 6e-6 Å (order 1)
        assert np.linalg.norm(centroid - expected_centre) < (1e-4 if order == 3 else 1e-3)
        # trilinear interpolation blurs: the width grows by ~1.5 % (seen), the spline's does not
        np.testing.assert_allclose(np.sqrt(spread), s * sigma, rtol=(1e-5 if order == 3 else 3e-2))
        # integral: (2π)^{3/2} (sσ)³
        np.testing.assert_allclose(out.sum() * np.prod(onto_voxel),
                                   (2 * np.pi) ** 1.5 * (s * sigma) ** 3, rtol=1e-4)
        errors[order] = np.max(np.abs(out - truth))
    assert errors[3] < 1e-3, errors  # seen: 4.8e-4 (order 3), 4.3e-2 (order 1)
    assert errors[3] < errors[1] / 20, errors


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------


def test_one_and_two_threads_agree():
    src = random_map((48, 44, 46), seed=28)
    onto = Map(np.zeros((40, 48, 42), np.float32), (1.1, 0.95, 1.0), src.origin + 2.0)
    t = homogeneous(rotation([1, 1, 0], 12.0), [0.5, -1.0, 0.3])
    for order in (1, 3):
        a = resample(src, onto, t, 1.02, order=order, nthreads=1).data
        b = resample(src, onto, t, 1.02, order=order, nthreads=2).data
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    pts = to_points(src, random_inside_indices(src.shape, 20000, seed=29))
    for order in (1, 3):
        v1, g1, i1 = Interpolator(src, order=order, nthreads=1)(pts, gradient=True,
                                                                return_inside=True)
        v2, g2, i2 = Interpolator(src, order=order, nthreads=2)(pts, gradient=True,
                                                                return_inside=True)
        np.testing.assert_allclose(v1, v2, atol=1e-6, rtol=0)
        np.testing.assert_allclose(g1, g2, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(spline_coefficients(src.data, nthreads=1),
                               spline_coefficients(src.data, nthreads=2), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------
# vector paths (AVX2, AVX-512) against the scalar path
# --------------------------------------------------------------------------------------------

SIMD_LEVELS = ["scalar", "avx2", "avx512"]


def available_simd_levels():
    """The instruction sets this CPU can run, scalar first."""
    best = SIMD_LEVELS.index(_core.detected_simd())
    return SIMD_LEVELS[:best + 1]


def at_each_simd_level(run):
    """``{level: run()}`` for every level this CPU has, the previous cap restored after."""
    results = {}
    previous = _core.set_simd_limit("scalar")
    try:
        for level in available_simd_levels():
            _core.set_simd_limit(level)
            assert _core.simd_level() == level
            results[level] = run()
    finally:
        _core.set_simd_limit(previous)
    return results


def test_simd_limit_is_checked_and_restored():
    with pytest.raises(ValueError, match="avx2"):
        _core.set_simd_limit("sse9")
    previous = _core.set_simd_limit("scalar")
    assert _core.simd_level() == "scalar"
    _core.set_simd_limit(previous)
    assert _core.simd_level() == _core.detected_simd()


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("mat", KERNEL_INDEX_MAPS)
def test_resampling_vector_paths_equal_the_scalar_path(mat, order):
    """Every level on rows clipped at both ends whose lengths are not multiples of 8 or 16
    (the trilinear vector tails); in cubic resampling interior points take the vector path,
    points whose taps are mirrored the scalar one. Each level agrees with the scalar path to
    1e-6 and with scipy."""
    src = random_map((23, 19, 37), seed=41)
    grid = spline_coefficients(src.data) if order == 3 else src.data
    out_shape = (25, 21, 43)
    results = at_each_simd_level(
        lambda: _core.resample_affine(grid, mat, out_shape, order, 5.0, 2))
    rev = np.eye(3)[::-1]
    expected = ndi.affine_transform(src.data.astype(np.float64), rev @ mat[:, :3] @ rev,
                                    rev @ mat[:, 3], output_shape=out_shape, order=order,
                                    mode="mirror" if order == 3 else "nearest")
    inside = results["scalar"] != 5.0
    assert inside.sum() > 1000 and (~inside).sum() > 1000
    # scipy mirrors beyond the domain where voxscale clamps (within 0.01 voxel): compared
    # strictly inside
    iz, iy, ix = np.indices(out_shape)
    idx = np.einsum("ij,jzyx->izyx", mat,
                    np.stack([ix, iy, iz, np.ones_like(ix)]).astype(float))
    top = np.array(src.shape[::-1], float)[:, None, None, None] - 1
    strict = np.all((idx >= 0) & (idx <= top), axis=0)
    scale = np.abs(src.data).max()
    for level, out in results.items():
        np.testing.assert_array_equal(out == 5.0, ~inside, err_msg=level)
        np.testing.assert_allclose(out, results["scalar"], atol=1e-6 * scale, rtol=0,
                                   err_msg=level)
        np.testing.assert_allclose(out[strict], expected[strict], atol=1e-5 * scale,
                                   err_msg=level)


@pytest.mark.parametrize("order", [1, 3])
def test_resampling_vector_paths_on_a_real_map(shared_file, order):
    """EMD-3488 rotated 20° about (1, 2, 3), shifted and magnified 2 %, as the scan does:
    trilinear rows, and cubic rows (in-line interior points, the faces' mirrored taps on the
    general path), equal at every level."""
    m = voxscale.read_map(shared_file("maps/emd_3488_haemoglobin_ccpemutils.mrc"))
    grid = spline_coefficients(m.data) if order == 3 else m.data
    rot = rotation([1, 2, 3], 20.0) * 1.02
    centre = (np.array(m.shape[::-1]) - 1) / 2
    mat = np.hstack([rot, (centre - rot @ centre + [1.3, -0.7, 2.1])[:, None]])
    results = at_each_simd_level(
        lambda: _core.resample_affine(grid, mat, m.shape, order, 0.0, 2))
    scale = np.abs(m.data).max()
    for level, out in results.items():
        np.testing.assert_allclose(out, results["scalar"], atol=1e-6 * scale, rtol=0,
                                   err_msg=level)


@pytest.mark.parametrize("order", [1, 3])
def test_interpolation_with_gradients_at_every_simd_level(order):
    """Values and gradients at points all over the domain, the faces included (mirrored
    taps), equal at every level; the vector path is exercised by the interior points."""
    src = random_map((17, 21, 19), seed=44)
    pts = to_points(src, random_inside_indices(src.shape, 5000, seed=45))
    interp = Interpolator(src, order=order)
    results = at_each_simd_level(lambda: interp(pts, gradient=True))
    scale = np.abs(src.data).max()
    for level, (values, grads) in results.items():
        np.testing.assert_allclose(values, results["scalar"][0], atol=1e-6 * scale, rtol=0,
                                   err_msg=level)
        np.testing.assert_allclose(grads, results["scalar"][1], atol=1e-6 * scale, rtol=0,
                                   err_msg=level)


def test_rigid_score_at_every_simd_level():
    """The fit's score and gradients (cubic, with gradients) do not depend on the level."""
    from voxscale.fit.rigid import ReferenceGrid
    src = random_map((30, 28, 26), seed=46)
    grid = ReferenceGrid(src, order=3)
    pts = to_points(src, random_inside_indices(src.shape, 4000, seed=47, margin=1.0))
    values = np.random.default_rng(48).standard_normal(len(pts)).astype(np.float32)
    rot = rotation([1, 2, 3], 4.0)
    results = at_each_simd_level(
        lambda: grid.score(pts, values, rot, [0.3, -0.2, 0.1], pts.mean(axis=0)))
    for level, (cc, gradient, n_inside, linear) in results.items():
        assert n_inside == results["scalar"][2]
        np.testing.assert_allclose(cc, results["scalar"][0], atol=1e-9, err_msg=level)
        np.testing.assert_allclose(gradient, results["scalar"][1], atol=1e-7, err_msg=level)
        np.testing.assert_allclose(linear, results["scalar"][3], atol=1e-7, err_msg=level)


@pytest.mark.parametrize("mat", [
    # identity: whole rows lie on the top faces in y and z (cell clamped to n - 2, fraction 1)
    np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]),
    # rows starting 0.004 voxel below x = 0 (inside the tolerance): a clamped first point
    # beside unclamped groups in one row; the last rows lie 0.004 above the top face in y
    np.array([[0.97, 0.0, 0.0, -0.004], [0.0, 1.0, 0.0, 0.004], [0.3, 0.0, 0.9, 0.5]]),
    # rows running down from 0.004 above x's top face while y rises from 0.003 below zero
    np.array([[-0.9, 0.0, 0.0, 23.004], [0.2, 0.0, 0.5, -0.003], [-0.05, 0.8, 0.0, 1.0]]),
])
def test_trilinear_rows_touching_the_faces_at_every_level(mat):
    """Points within the 0.01-voxel tolerance of a face are clamped onto it; the AVX-512
    path skips the clamps in groups of 8 points whose coordinates all lie inside, so rows
    that hold both kinds must give the scalar path's values at every level, and the
    identity the map itself (to rounding: a point on a top face is its cell's far corner,
    a + 1·(b − a)). The map's memory is followed by NaN: a kernel that took a point on a
    top face for interior would read past the last sample (with weight 0, but 0·NaN is
    NaN)."""
    src = random_map((20, 22, 24), seed=51)  # x 24, y 22, z 20
    padded = np.full(src.data.size + 2 * 24 * 22, np.nan, dtype=np.float32)
    padded[:src.data.size] = src.data.ravel()
    data = padded[:src.data.size].reshape(src.shape)  # C-contiguous: passed without a copy
    results = at_each_simd_level(
        lambda: _core.resample_affine(data, mat, (20, 22, 40), 1, -7.0, 2))
    inside = results["scalar"] != -7.0
    assert inside.sum() > 2000
    scale = np.abs(src.data).max()
    for level, out in results.items():
        np.testing.assert_array_equal(out == -7.0, ~inside, err_msg=level)
        np.testing.assert_allclose(out, results["scalar"], atol=1e-6 * scale, rtol=0,
                                   err_msg=level)
    if mat[0, 0] == 1.0:
        for out in results.values():
            np.testing.assert_allclose(out[:, :, :24], src.data, atol=1e-6 * scale, rtol=0)


def test_absurd_but_finite_transform_is_safe():
    """Any finite index map is allowed: entries of 1e30 (every point outside) give the fill,
    with no integer overflow in the kernel's prefetch arithmetic (found by UBSan)."""
    src = random_map((16, 17, 18), seed=49)
    for big in (1e17, 1e30):
        mat = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, big, 0.0, 0.0], [0.0, 0.0, big, 0.0]])
        for order, grid in ((1, src.data), (3, spline_coefficients(src.data))):
            out = _core.resample_affine(grid, mat, (4, 5, 6), order, -3.0, 2)
            assert np.all(out[1:, 1:] == -3.0)  # rows beyond iy, iz = 0 land outside


def test_huge_row_steps_take_a_safe_path_at_every_level():
    """Rows whose step along x is huge hold at most one point inside the source: below the
    fixed-point limit (2^40 voxels) the fixed-point paths step them (the step after the last
    point wraps, never overflows), beyond it the general path does; every level agrees."""
    src = random_map((6, 7, 8), seed=50)
    for step in (1e11, 3e12, 1e17):
        mat = np.array([[step, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
        results = at_each_simd_level(lambda: _core.resample_affine(src.data, mat, (6, 7, 20),
                                                                   1, -3.0, 2))
        expected = 0.5 * (src.data[:, :, 0] + src.data[:, :, 1])
        for level, out in results.items():
            np.testing.assert_allclose(out[:, :, 0], expected, rtol=0, err_msg=level,
                                       atol=1e-6 * np.abs(src.data).max())
            assert np.all(out[:, :, 1:] == -3.0), level


@pytest.mark.parametrize("order", [1, 3])
def test_rows_of_large_steps_equal_the_scalar_path_at_every_level(order):
    """Rows whose step is 1e9 voxels or more hold a point or two of the source; every level
    must place that point as the scalar path does (a vector path that fused start + step·i
    into one rounding, or placed AVX2 points in double instead of the scalar fixed point,
    moved it by up to 0.12 of the map's largest value, cubic)."""
    src = random_map((16, 16, 16), seed=52)
    grid = spline_coefficients(src.data) if order == 3 else src.data
    scale = np.abs(src.data).max()
    for step in (1.0e9 + 0.3, 1.5e9 + 0.7, 2.1e9 + 0.1, 3.3e9, 1.037e12 + 0.1, 7.7e13):
        for offset in (7.3, 0.37, 14.9, 3.1416):
            mat = np.array([[step, 0.0, 0.0, offset - 3 * step], [0.0, 1.0, 0.0, 5.25],
                            [0.0, 0.0, 1.0, 6.5]])
            results = at_each_simd_level(
                lambda: _core.resample_affine(grid, mat, (2, 3, 8), order, -99.0, 1))
            assert np.count_nonzero(results["scalar"] != -99.0) == 6  # ix = 3 of each row
            for level, out in results.items():
                np.testing.assert_allclose(out, results["scalar"], atol=1e-6 * scale, rtol=0,
                                           err_msg=f"{level} step {step} offset {offset}")


def test_spline_coefficients_in_place():
    """overwrite=True filters a writeable float32 C-contiguous array in place and returns it;
    anything else (read-only, another dtype) is copied, and the input left unchanged."""
    data = np.random.default_rng(12).standard_normal((9, 10, 11)).astype(np.float32)
    expected = spline_coefficients(data)
    mine = data.copy()
    out = spline_coefficients(mine, overwrite=True)
    assert out is mine
    np.testing.assert_array_equal(out, expected)
    frozen = data.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(spline_coefficients(frozen, overwrite=True), expected)
    np.testing.assert_array_equal(frozen, data)
    wide = data.astype(np.float64)
    np.testing.assert_array_equal(spline_coefficients(wide, overwrite=True), expected)
    np.testing.assert_array_equal(wide, data.astype(np.float64))


def test_resample_keeps_outer_planes_under_a_fitted_pose():
    """A pose a hair off the identity (as fitted for a map against itself) puts the outer
    planes a few 1e-4 voxel beyond the source: within 0.01 voxel they count as inside and take
    the value on the domain's face; 0.02 voxel beyond is outside."""
    src = random_map((12, 10, 14), seed=31)
    for order in (1, 3):
        # source index c + (i − c)/s: s a little below 1 puts the faces beyond the source
        near = resample(src, src, None, 1.0 / (1 + 1e-4), order=order, fill=-99.0)
        assert not np.any(near.data == -99.0)
        assert np.allclose(near.data, src.data, atol=0.01 * np.abs(src.data).max())
        far = resample(src, src, None, 1.0 / (1 + 5e-3), order=order, fill=-99.0)
        assert np.all(far.data[0] == -99.0) and np.all(far.data[-1] == -99.0)
