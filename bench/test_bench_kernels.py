"""Benchmarks of voxscale's C++ kernels against scipy / numpy doing the same computation.

Each test times ours and the reference in alternating rounds (see ``compare`` in conftest.py),
checks that both computed the same thing, and records the ratio reference / ours. Run with
``python -m pytest bench -q -s`` from the repository root; see bench/README.md.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import scipy.ndimage as ndi

import voxscale
from voxscale.maps.interpolation import index_map

N = 256            # map edge (voxels)
VOXEL = 1.1        # Å
ORIGIN = (3.0, -2.0, 5.0)
THREADS = 2        # for voxscale and scipy.fft; scipy.ndimage and numpy run on one thread
N_POINTS = 10**6   # points for the interpolation benchmarks



# -- data ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture(scope="session")
def source(rng):
    """A 256³ map of white noise: the hardest case for agreement, the same cost as any data."""
    return voxscale.Map(rng.standard_normal((N, N, N), dtype=np.float32), VOXEL, ORIGIN)


@pytest.fixture(scope="session")
def onto(source):
    """The destination grid: same shape, voxel size and origin (its data are unused)."""
    return voxscale.Map(np.zeros((N, N, N), np.float32), VOXEL, ORIGIN)


@pytest.fixture(scope="session")
def transform(source):
    """Rotation by 20° about (1, 2, 3) through the box centre, then a shift of a few voxels."""
    axis = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    theta = np.radians(20.0)
    rot = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k
    c = source.center
    t = np.eye(4)
    t[:3, :3] = rot
    t[:3, 3] = c - rot @ c + np.array([3.3, -2.2, 4.1]) * VOXEL
    return t


SCALE = 1.02


def scipy_affine_args(m: np.ndarray):
    """index_map's (3, 4) matrix in x, y, z order -> scipy's (matrix, offset) in z, y, x order."""
    return m[::-1, :3][:, ::-1].copy(), m[::-1, 3].copy()


def inside_mask(m: np.ndarray, out_shape, src_shape, margin: float = 1e-6) -> np.ndarray:
    """True for output voxels whose source index lies inside [0, n-1] on every axis (by more
    than ``margin``, so that rounding at the very edge cannot make the two codes disagree)."""
    nz, ny, nx = out_shape
    top = np.array(src_shape[::-1], dtype=np.float64) - 1.0   # x, y, z
    ix = np.arange(nx, dtype=np.float64)[None, :]
    iy = np.arange(ny, dtype=np.float64)[:, None]
    mask = np.empty(out_shape, dtype=bool)
    for iz in range(nz):
        ok = np.ones((ny, nx), dtype=bool)
        for a in range(3):
            f = m[a, 0] * ix + m[a, 1] * iy + (m[a, 2] * iz + m[a, 3])
            ok &= (f >= margin) & (f <= top[a] - margin)
        mask[iz] = ok
    return mask


def boundary_mask(m: np.ndarray, out_shape, src_shape, margin: float = 0.011) -> np.ndarray:
    """Voxels within ``margin`` of the domain boundary: excluded from checks (voxscale counts
    points within 0.01 voxel of the source as on its face; scipy does not)."""
    return inside_mask(m, out_shape, src_shape, -margin) & ~inside_mask(m, out_shape, src_shape,
                                                                        margin)


# -- 1 and 4a: resampling through a general transform ------------------------------------------

@pytest.mark.benchmark(group="resample")
@pytest.mark.parametrize("order, rounds, target", [(1, 9, 30.0), (3, 2, None)],
                         ids=["order1", "order3"])
def test_resample(compare, source, onto, transform, order, rounds, target):
    m = index_map(source, onto, transform, SCALE)
    matrix, offset = scipy_affine_args(m)
    data = source.data
    mode = "constant" if order == 1 else "mirror"

    def ours():
        return voxscale.resample(source, onto, transform, SCALE, order=order, nthreads=THREADS)

    def reference():
        return ndi.affine_transform(data, matrix, offset=offset, output_shape=onto.shape,
                                    order=order, mode=mode, cval=0.0)

    note = ("scipy affine_transform(order=1, mode='constant'), 1 thread" if order == 1 else
            "incl. the spline prefilter on both sides; scipy affine_transform(order=3, "
            "mode='mirror'), 1 thread; compared inside the source only")
    got, ref = compare(f"resample order={order} 256^3", ours, reference, rounds=rounds,
                       target=target, note=note)

    inside = inside_mask(m, onto.shape, source.shape)
    assert 0.5 < inside.mean() < 1.0  # the transform moves a good part of the box outside
    diff = np.abs(got.data - ref)[inside]
    assert diff.max() <= 1e-4 * float(np.abs(data).max()), diff.max()
    # Outside the source both fill with 0 (scipy only for order 1; order 3 mirrors).
    outside = ~inside & ~boundary_mask(m, onto.shape, source.shape)
    assert np.all(got.data[outside] == 0.0)
    if order == 1:
        assert np.all(ref[outside] == 0.0)


def trilinear_kernel(source, onto, transform, level=None):
    """_core.resample_affine at order 1, at the given SIMD level (None: the detected one)."""
    m = index_map(source, onto, transform, SCALE)
    core = voxscale._core

    def run():
        previous = core.set_simd_limit(level) if level else None
        try:
            return core.resample_affine(source.data, m, onto.shape, 1, 0.0, THREADS)
        finally:
            if previous:
                core.set_simd_limit(previous)
    return run


@pytest.mark.benchmark(group="resample")
def test_resample_vector_path(compare, source, onto, transform):
    """The run-time chosen vector path (AVX-512 or AVX2) against the portable scalar path of
    the same kernel."""
    level = voxscale._core.detected_simd()
    if level == "scalar":
        pytest.skip("this CPU has neither AVX2 nor AVX-512")
    got, ref = compare(f"resample order=1 256^3: {level} vs scalar",
                       trilinear_kernel(source, onto, transform),
                       trilinear_kernel(source, onto, transform, "scalar"), rounds=5,
                       note=f"the same kernel, {THREADS} threads; results within 1e-6")
    assert np.abs(got - ref).max() <= 1e-6 * float(np.abs(source.data).max())


@pytest.mark.benchmark(group="resample")
def test_resample_memory_floor(compare, source, onto, transform):
    """How far the kernel is from the memory floor: a numpy copy of the 256³ map."""
    compare("resample order=1 256^3 vs memory floor", trilinear_kernel(source, onto, transform),
            lambda: source.data.copy(), rounds=5,
            note="reference: numpy copy of the map (read + write, 1 thread); ratio < 1")


# -- 2: real-to-complex and back -------------------------------------------------------------

@pytest.mark.benchmark(group="fft")
def test_fft_round_trip(compare, source):
    data = source.data
    volume = float(np.prod(source.cell))

    def ours():
        f = voxscale.half_transform(source, nthreads=THREADS)
        return f, voxscale.map_from_half_transform(f, source, nthreads=THREADS)

    def reference():
        f = scipy.fft.rfftn(data, workers=THREADS)
        return f, scipy.fft.irfftn(f, s=data.shape, workers=THREADS)

    (f, back), (f_ref, back_ref) = compare(
        "rfft+irfft 256^3", ours, reference, rounds=6, target=1.0,
        note="scipy.fft rfftn + irfftn, float32/complex64, workers=2")

    assert f.dtype == np.complex64 and f_ref.dtype == np.complex64
    assert back_ref.dtype == np.float32
    # voxscale: F = (V/N) Σ ρ exp(+2πi h·x), so F = (V/N) conj(rfftn).
    expected = (volume / data.size) * np.conj(f_ref)
    scale = float(np.abs(expected).max())
    assert float(np.abs(f - expected).max()) <= 1e-5 * scale
    assert float(np.abs(back.data - data).max()) <= 1e-5 * float(np.abs(data).max())
    assert float(np.abs(back_ref - data).max()) <= 1e-5 * float(np.abs(data).max())


@pytest.mark.benchmark(group="fft")
def test_structure_factor_round_trip(compare, source):
    """The reflection API (issue 15): ``structure_factors`` (a lazy view over the half
    transform) and ``map_from_structure_factors`` back, against scipy's rfftn + irfftn; the
    target is within 1.3x, a ratio of at least 1/1.3."""
    data = source.data

    def ours():
        return voxscale.map_from_structure_factors(
            voxscale.structure_factors(source, nthreads=THREADS), source, nthreads=THREADS)

    def reference():
        return scipy.fft.irfftn(scipy.fft.rfftn(data, workers=THREADS), s=data.shape,
                                workers=THREADS)

    back, back_ref = compare("structure_factors round trip 256^3", ours, reference, rounds=6,
                             target=1 / 1.3, note="structure_factors + map_from_structure_"
                             "factors vs scipy.fft rfftn + irfftn, workers=2; target: within "
                             "1.3x")
    assert float(np.abs(back.data - data).max()) <= 1e-5 * float(np.abs(data).max())
    assert float(np.abs(back_ref - data).max()) <= 1e-5 * float(np.abs(data).max())


# -- 3: shell sums ---------------------------------------------------------------------------

N_SHELLS = 20


@pytest.fixture(scope="session")
def shell_data(source, rng):
    """Half-transforms of a map and of a noisier copy, and the shell of each reflection."""
    noisy = voxscale.Map(source.data + 0.5 * rng.standard_normal(source.shape, dtype=np.float32),
                         source.voxel_size, source.origin)
    f1 = voxscale.half_transform(source, nthreads=THREADS)
    f2 = voxscale.half_transform(noisy, nthreads=THREADS)
    edges = voxscale.shell_edges(None, 2.0 * VOXEL, N_SHELLS)
    idx = voxscale.shell_index(source.shape, source.cell, edges, nthreads=THREADS)
    return f1, f2, idx


def numpy_shell_sums(f1, f2, idx, n):
    keep = idx >= 0
    j = idx[keep]
    a, b = f1[keep], f2[keep]
    a1, a2 = np.abs(a).astype(np.float64), np.abs(b).astype(np.float64)  # |F| in float32
    cross = a.real.astype(np.float64) * b.real + a.imag.astype(np.float64) * b.imag

    def s(w=None):
        return np.bincount(j, weights=w, minlength=n)[:n]

    return dict(count=s(), sum_f1=s(a1), sum_f2=s(a2), sum_f1_sq=s(a1 * a1),
                sum_f2_sq=s(a2 * a2), sum_abs_diff=s(np.abs(a1 - a2)), sum_re_cross=s(cross))


@pytest.mark.benchmark(group="shells")
def test_shell_sums(compare, shell_data):
    f1, f2, idx = shell_data

    def ours():
        return voxscale.shell_sums(f1, f2, idx, N_SHELLS, nthreads=THREADS)

    def reference():
        return numpy_shell_sums(f1, f2, idx, N_SHELLS)

    got, ref = compare("shell sums 256^3, 20 shells", ours, reference, rounds=8, target=10.0,
                       note="numpy: mask idx>=0, |F| of complex64 (float32), "
                            "7 np.bincount(weights=...) in float64")

    assert got.count.sum() > 0.4 * idx.size  # most of the half-transform lies inside d >= 2v
    np.testing.assert_array_equal(got.count, ref["count"].astype(np.int64))
    for key, val in ref.items():
        if key != "count":
            # rtol: numpy's |F| of complex64 is float32, ours is double.
            np.testing.assert_allclose(getattr(got, key), val, rtol=1e-6, err_msg=key)


# -- 4b: interpolation at points -------------------------------------------------------------

@pytest.fixture(scope="session")
def points(source, rng):
    """10^6 random points (x, y, z in Å) inside the map, and the same as scipy's (z, y, x)
    fractional-index coordinates."""
    lo = np.asarray(source.origin)
    span = (np.array(source.shape[::-1]) - 1) * np.asarray(source.voxel_size)
    pts = lo + rng.random((N_POINTS, 3)) * span
    coords = ((pts - lo) / np.asarray(source.voxel_size))[:, ::-1].T.copy()
    return pts, coords


@pytest.mark.benchmark(group="interpolate")
@pytest.mark.parametrize("order, rounds", [(1, 8), (3, 3)], ids=["order1", "order3"])
def test_interpolate(compare, source, points, order, rounds):
    pts, coords = points
    data = source.data

    def ours():
        return voxscale.interpolate(source, pts, order=order, gradient=True, nthreads=THREADS)

    def reference():
        return ndi.map_coordinates(data, coords, order=order, mode="mirror")

    note = ("ours: value + gradient; scipy map_coordinates: value only (a gradient would cost "
            "it ~3 more calls)" + ("; both include the 256^3 spline prefilter" if order == 3
                                   else ""))
    (values, grads), ref = compare(f"interpolate 1e6 pts order={order} +grad", ours, reference,
                                   rounds=rounds, note=note)

    assert grads.shape == (N_POINTS, 3) and np.all(np.isfinite(grads))
    np.testing.assert_allclose(values, ref, atol=1e-5 * float(np.abs(data).max()))


@pytest.mark.benchmark(group="interpolate")
def test_interpolator_prepared(compare, source, points):
    """Order 3 with the spline coefficients prepared once: the cost of the point kernel alone."""
    pts, coords = points
    interp = voxscale.Interpolator(source, order=3, nthreads=THREADS)
    coeffs = ndi.spline_filter(source.data, order=3, mode="mirror", output=np.float32)

    def ours():
        return interp(pts, gradient=True)

    def reference():
        return ndi.map_coordinates(coeffs, coords, order=3, mode="mirror", prefilter=False)

    (values, _), ref = compare(
        "Interpolator order=3 prepared +grad", ours, reference, rounds=6,
        note="coefficients computed beforehand on both sides; scipy value only")
    np.testing.assert_allclose(values, ref, atol=1e-5 * float(np.abs(source.data).max()))
