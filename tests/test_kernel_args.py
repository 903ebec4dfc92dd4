"""Argument validation of every voxscale._core function (and of the Python wrappers above them).

The bindings' rule: wrong dtype or type is a TypeError, wrong layout, shape or value a
ValueError, and the message names the argument. Nothing may crash the interpreter. Every case starts from a
valid call (checked to work) and changes one argument.
"""
import pickle

import numpy as np
import pytest

import voxscale
from voxscale import _core

RNG = np.random.default_rng(0)
DATA = RNG.standard_normal((4, 5, 6)).astype(np.float32)
POINTS = RNG.random((7, 3)) * 3
INDEX_MAP = np.hstack([np.eye(3) * 0.9, np.full((3, 1), 0.2)])
HALF = np.ascontiguousarray(np.fft.rfftn(DATA).astype(np.complex64))  # (4, 5, 4): nx = 6 or 7
EDGES = np.array([0.0, 0.1, 0.2, 0.5])
VEC = RNG.standard_normal(50).astype(np.float32)
F1 = (RNG.standard_normal(50) + 1j * RNG.standard_normal(50)).astype(np.complex64)
SHELL = RNG.integers(-1, 3, 50).astype(np.int32)


def good_kwargs():
    """A valid call of each kernel: name -> (function, keyword arguments)."""
    return {
        "spline_prefilter": (_core.spline_prefilter, dict(data=DATA, nthreads=1)),
        "interpolate_points": (_core.interpolate_points, dict(
            data=DATA, origin=(0.0, 0.0, 0.0), voxel_size=(1.0, 1.0, 1.0), points=POINTS,
            order=1, fill=0.0, gradient=True, nthreads=1)),
        "resample_affine": (_core.resample_affine, dict(
            data=DATA, index_map=INDEX_MAP, out_shape=(3, 4, 5), order=1, fill=0.0,
            nthreads=1)),
        "pearson": (_core.pearson, dict(a=VEC, b=VEC[::-1].copy(), weights=np.abs(VEC),
                                        nthreads=1)),
        "map_to_sf": (_core.map_to_sf, dict(data=DATA, volume=120.0, nthreads=1)),
        "sf_to_map": (_core.sf_to_map, dict(f=HALF, nx=6, volume=120.0, nthreads=1)),
        "shell_index": (_core.shell_index, dict(shape=(4, 5, 6), cell=(6.0, 5.0, 4.0),
                                                edges=EDGES, nthreads=1)),
        "shell_sums": (_core.shell_sums, dict(f1=F1, f2=F1[::-1].copy(), shell=SHELL, nshells=3,
                                              nthreads=1)),
    }


def call(name, **changes):
    fn, kwargs = good_kwargs()[name]
    kwargs = dict(kwargs, **changes)
    return fn(**kwargs)


@pytest.mark.parametrize("name", list(good_kwargs()))
def test_valid_calls_work(name):
    call(name)


# (kernel, argument, a valid value's dtype) for every array argument
ARRAY_ARGS = [
    ("spline_prefilter", "data", DATA),
    ("interpolate_points", "data", DATA),
    ("interpolate_points", "points", POINTS),
    ("resample_affine", "data", DATA),
    ("resample_affine", "index_map", INDEX_MAP),
    ("pearson", "a", VEC),
    ("pearson", "b", VEC),
    ("pearson", "weights", VEC),
    ("map_to_sf", "data", DATA),
    ("sf_to_map", "f", HALF),
    ("shell_index", "edges", EDGES),
    ("shell_sums", "f1", F1),
    ("shell_sums", "f2", F1),
    ("shell_sums", "shell", SHELL),
]
WRONG_DTYPE = {np.dtype(np.float32): [np.float64, np.float16, np.int32, np.complex64],
               np.dtype(np.float64): [np.float32, np.int64, np.complex128],
               np.dtype(np.complex64): [np.complex128, np.float32],
               np.dtype(np.int32): [np.int64, np.uint32, np.float32]}


@pytest.mark.parametrize("name,arg,value", ARRAY_ARGS)
def test_wrong_dtype_is_type_error_naming_the_argument(name, arg, value):
    for dtype in WRONG_DTYPE[value.dtype]:
        cast = value if np.issubdtype(dtype, np.complexfloating) else np.real(value)
        with pytest.raises(TypeError, match=rf"\b{arg}\b"):
            call(name, **{arg: cast.astype(dtype)})


@pytest.mark.parametrize("name,arg,value", ARRAY_ARGS)
def test_byte_swapped_dtype_is_rejected(name, arg, value):
    """A non-native byte order must not be read as if it were native."""
    swapped = value.astype(value.dtype.newbyteorder())
    with pytest.raises(TypeError, match=rf"\b{arg}\b"):
        call(name, **{arg: swapped})


@pytest.mark.parametrize("name,arg,value", ARRAY_ARGS)
def test_non_array_is_type_error_naming_the_argument(name, arg, value):
    for bad in (value.tolist(), None if arg not in ("weights", "f2") else "text", 3.0):
        with pytest.raises(TypeError, match=rf"\b{arg}\b"):
            call(name, **{arg: bad})


def non_contiguous(value):
    if value.ndim >= 2:
        view = np.ascontiguousarray(np.swapaxes(value, 0, 1)).swapaxes(0, 1)
    else:
        view = np.repeat(value, 2)[::2]
    assert view.shape == value.shape and not view.flags.c_contiguous
    np.testing.assert_array_equal(view, value)
    return view


@pytest.mark.parametrize("name,arg,value", ARRAY_ARGS)
def test_non_contiguous_is_value_error_naming_the_argument(name, arg, value):
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        call(name, **{arg: non_contiguous(value)})


def test_transposed_map_view_is_rejected():
    cube = np.ascontiguousarray(RNG.standard_normal((5, 5, 5)).astype(np.float32))
    with pytest.raises(ValueError, match="data"):
        _core.spline_prefilter(cube.T, 1)
    with pytest.raises(ValueError, match="data"):
        _core.map_to_sf(cube.T, 1.0, 1)


@pytest.mark.parametrize("name,arg,bad", [
    ("spline_prefilter", "data", DATA[0]),
    ("spline_prefilter", "data", DATA[None]),
    ("interpolate_points", "data", DATA[0]),
    ("interpolate_points", "points", POINTS.ravel()),
    ("interpolate_points", "points", POINTS[None]),
    ("resample_affine", "data", DATA.ravel()),
    ("resample_affine", "index_map", INDEX_MAP.ravel()),
    ("map_to_sf", "data", DATA[0]),
    ("sf_to_map", "f", HALF[0]),
    ("shell_index", "edges", EDGES[None]),
])
def test_wrong_ndim_is_value_error(name, arg, bad):
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        call(name, **{arg: np.ascontiguousarray(bad)})


@pytest.mark.parametrize("name,changes", [
    ("spline_prefilter", dict(data=np.zeros((0, 3, 3), np.float32))),
    ("interpolate_points", dict(data=np.zeros((3, 0, 3), np.float32))),
    ("interpolate_points", dict(points=np.zeros((4, 2)))),
    ("interpolate_points", dict(points=np.zeros((4, 4)))),
    ("interpolate_points", dict(origin=(0.0, 0.0))),
    ("interpolate_points", dict(voxel_size=(1.0, 1.0, 1.0, 1.0))),
    ("resample_affine", dict(data=np.zeros((3, 3, 0), np.float32))),
    ("resample_affine", dict(index_map=np.eye(4))),
    ("resample_affine", dict(index_map=np.zeros((3, 3)))),
    ("resample_affine", dict(out_shape=(3, 4))),
    ("resample_affine", dict(out_shape=(3, 0, 4))),
    ("resample_affine", dict(out_shape=(3, -2, 4))),
    ("pearson", dict(b=VEC[:-1].copy())),
    ("pearson", dict(weights=VEC[:-1].copy())),
    ("map_to_sf", dict(data=np.zeros((2, 0, 2), np.float32))),
    ("sf_to_map", dict(f=np.zeros((0, 5, 4), np.complex64))),
    ("shell_index", dict(shape=(4, 5))),
    ("shell_index", dict(shape=(4, 0, 6))),
    ("shell_index", dict(cell=(6.0, 5.0))),
    ("shell_sums", dict(shell=SHELL[:-1].copy())),
    ("shell_sums", dict(f2=F1[:-1].copy())),
])
def test_wrong_shape_is_value_error(name, changes):
    with pytest.raises(ValueError):
        call(name, **changes)


@pytest.mark.parametrize("name", list(good_kwargs()))
def test_negative_nthreads_is_value_error(name):
    for n in (-1, -1000):
        with pytest.raises(ValueError, match="nthreads"):
            call(name, nthreads=n)


@pytest.mark.parametrize("name", list(good_kwargs()))
def test_large_and_zero_nthreads_work(name):
    """0 = all available; absurd requests are clamped, not obeyed; too large for int: TypeError."""
    def arrays(result):
        if isinstance(result, dict):
            return [result[k] for k in sorted(result)]
        if isinstance(result, tuple):
            return list(result)
        return [result]
    a = arrays(call(name, nthreads=1))
    for n in (0, 2, 100_000):
        for x, y in zip(arrays(call(name, nthreads=n)), a):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError):
        call(name, nthreads=2**40)


@pytest.mark.parametrize("changes", [
    dict(origin=(0.0, np.nan, 0.0)), dict(origin=(np.inf, 0.0, 0.0)),
    dict(voxel_size=(1.0, 0.0, 1.0)), dict(voxel_size=(1.0, 1.0, -2.0)),
    dict(voxel_size=(np.nan, 1.0, 1.0)), dict(voxel_size=(1.0, np.inf, 1.0)),
])
def test_non_finite_geometry_is_value_error(changes):
    arg = next(iter(changes))
    with pytest.raises(ValueError, match=arg):
        call("interpolate_points", **changes)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_index_map_is_value_error(bad):
    for pos in [(0, 0), (1, 2), (2, 3)]:
        m = INDEX_MAP.copy()
        m[pos] = bad
        with pytest.raises(ValueError, match="index_map"):
            call("resample_affine", index_map=m)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0, -1.0])
def test_bad_volume_is_value_error(bad):
    with pytest.raises(ValueError, match="volume"):
        call("map_to_sf", volume=bad)
    with pytest.raises(ValueError, match="volume"):
        call("sf_to_map", volume=bad)


@pytest.mark.parametrize("cell", [(0.0, 5.0, 4.0), (6.0, -5.0, 4.0), (6.0, 5.0, np.nan),
                                  (np.inf, 5.0, 4.0)])
def test_bad_cell_is_value_error(cell):
    with pytest.raises(ValueError, match="cell"):
        call("shell_index", cell=cell)


@pytest.mark.parametrize("order", [0, 2, 4, -1, 5])
def test_unsupported_order_is_value_error(order):
    with pytest.raises(ValueError, match="order"):
        call("interpolate_points", order=order)
    with pytest.raises(ValueError, match="order"):
        call("resample_affine", order=order)


def test_empty_points_work():
    for order in (1, 3):
        for gradient in (True, False):
            values, grads, inside = call("interpolate_points", points=np.zeros((0, 3)),
                                         order=order, gradient=gradient)
            assert values.shape == (0,) and values.dtype == np.float32
            assert inside.shape == (0,) and inside.dtype == np.bool_
            assert (grads is None) if not gradient else grads.shape == (0, 3)


def test_interpolate_points_results():
    values, grads, inside = call("interpolate_points", gradient=False)
    assert grads is None and values.shape == (7,) and inside.shape == (7,)


@pytest.mark.parametrize("edges", [
    np.array([0.0, 0.2, 0.2, 0.5]),  # not strictly increasing
    np.array([0.0, 0.3, 0.2]),  # decreasing
    np.array([0.0, np.nan, 0.5]),
    np.array([np.nan, 0.5]),
    np.array([-0.1, 0.5]),  # negative
    np.array([0.2]),  # a single edge
    np.zeros(0),  # none
])
def test_bad_edges_are_value_error(edges):
    with pytest.raises(ValueError, match="edges"):
        call("shell_index", edges=edges)
    with pytest.raises(ValueError, match="edges"):
        voxscale.shell_index((4, 5, 6), (6.0, 5.0, 4.0), edges)


def test_sf_to_map_with_mismatched_nx_is_value_error():
    # HALF has nx//2 + 1 = 4: nx = 6 or 7 fit, others do not
    call("sf_to_map", nx=7)
    for nx in (0, 1, 4, 5, 8, 9, 100):
        with pytest.raises(ValueError, match="nx"):
            call("sf_to_map", nx=nx)
    with pytest.raises(TypeError):
        call("sf_to_map", nx=-6)


def test_shell_sums_nshells():
    with pytest.raises(TypeError):
        call("shell_sums", nshells=-1)
    out = call("shell_sums", nshells=0)
    assert all(len(v) == 0 for v in out.values())
    out = call("shell_sums", f2=None)
    assert np.all(out["sum_f2"] == 0)


def test_read_only_inputs_are_accepted():
    """Inputs are only read: read-only (e.g. memory-mapped) arrays work, zero-copy."""
    def ro(a):
        a = a.copy()
        a.setflags(write=False)
        return a
    for name, arg, value in ARRAY_ARGS:
        call(name, **{arg: ro(value)})


@pytest.mark.parametrize("name,arg,value", ARRAY_ARGS)
def test_equal_dtype_from_pickle_is_accepted(name, arg, value):
    unpickled = pickle.loads(pickle.dumps(value))
    assert unpickled.dtype == value.dtype and unpickled.flags.c_contiguous
    call(name, **{arg: unpickled})


def test_not_a_number_scalars_are_type_errors():
    with pytest.raises(TypeError):
        call("map_to_sf", volume="big")
    with pytest.raises(TypeError):
        call("interpolate_points", origin="xyz")
    with pytest.raises(TypeError):
        call("resample_affine", out_shape=(3.5, 4, 5))
    with pytest.raises(TypeError):
        call("shell_index", cell=None)


# --------------------------------------------------------------------------------------------
# the Python layer
# --------------------------------------------------------------------------------------------

MAP = voxscale.Map(DATA, (1.0, 1.1, 0.9), (2.0, -1.0, 0.5))


@pytest.mark.parametrize("transform", [np.full((4, 4), np.nan), np.eye(3), np.zeros((4, 4)),
                                       np.diag([1.0, 1.0, 1.0, 2.0]),
                                       np.where(np.eye(4) == 1, np.inf, 0.0)])
def test_resample_bad_transform(transform):
    with pytest.raises(ValueError, match="transform"):
        voxscale.resample(MAP, MAP, transform)


@pytest.mark.parametrize("scale", [0.0, -1.0, np.nan, np.inf, -np.eye(3), np.eye(2),
                                   np.diag([1.0, 1.0, np.nan])])
def test_resample_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        voxscale.resample(MAP, MAP, None, scale)


def test_python_layer_order_and_threads():
    for order in (0, 2, 4):
        with pytest.raises(ValueError, match="order"):
            voxscale.resample(MAP, MAP, order=order)
        with pytest.raises(ValueError, match="order"):
            voxscale.interpolate(MAP, POINTS, order=order)
        with pytest.raises(ValueError, match="order"):
            voxscale.Interpolator(MAP, order=order)
    with pytest.raises(ValueError, match="nthreads"):
        voxscale.resample(MAP, MAP, nthreads=-1)
    with pytest.raises(ValueError, match="nthreads"):
        voxscale.interpolate(MAP, POINTS, nthreads=-1)
    with pytest.raises(ValueError, match="nthreads"):
        voxscale.spline_coefficients(DATA, nthreads=-1)
    with pytest.raises(ValueError, match="nthreads"):
        voxscale.half_transform(MAP, nthreads=-3)
    with pytest.raises(ValueError, match="nthreads"):
        voxscale.maps.correlation(VEC, VEC, nthreads=-1)


@pytest.mark.parametrize("points", [np.zeros((4, 2)), np.zeros(4), np.zeros((2, 3, 3)),
                                    np.zeros((3, 4))])
def test_python_layer_points_shape(points):
    with pytest.raises(ValueError, match="points"):
        voxscale.interpolate(MAP, points)


def test_python_layer_converts_inputs():
    """Lists, float32 points, float64 data and non-contiguous views are converted, not refused."""
    pts32 = POINTS.astype(np.float32)
    np.testing.assert_array_equal(voxscale.interpolate(MAP, pts32),
                                  voxscale.interpolate(MAP, pts32.astype(np.float64)))
    np.testing.assert_array_equal(voxscale.interpolate(MAP, POINTS.tolist()),
                                  voxscale.interpolate(MAP, POINTS))
    np.testing.assert_array_equal(voxscale.spline_coefficients(DATA.astype(np.float64)),
                                  voxscale.spline_coefficients(DATA))
    view = non_contiguous(DATA)
    np.testing.assert_array_equal(voxscale.spline_coefficients(view),
                                  voxscale.spline_coefficients(DATA))
    assert voxscale.maps.correlation(non_contiguous(VEC), VEC.tolist()) == pytest.approx(1.0)
    shells = voxscale.shell_index((4, 5, 6), [6, 5, 4], [0, 0.5])
    assert shells.dtype == np.int32
    out = voxscale.shell_sums(HALF.astype(np.complex128), None, shells.astype(np.int64), 1)
    assert out.count[0] == (shells == 0).sum()
