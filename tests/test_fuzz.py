"""Fuzzing with hypothesis (issue 8, item 2): random headers, random small arrays (1-voxel axes,
prime sizes, extreme aspect ratios), random transforms and resolution ranges, at the Python API
and at every bound kernel. Nothing may crash or hang; invalid input is a ValueError or
TypeError (MapFormatError for files), valid input gives a correct answer.

Where an independent answer is cheap it is checked as well: scipy.ndimage for interpolation,
numpy's FFT for the structure factors, an explicit Friedel-pair count for the shells, numpy for
the correlation. The riskiest kernel calls are also replayed with a fixed seed in a child
process, so that a segmentation fault shows up as a failed test instead of killing the run.

Budget: about 30 s on two cores (``max_examples`` is set per test).
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import voxscale
from voxscale import Map, MapFormatError, _core
from voxscale.reciprocal.shells import shell_edges, shell_index, shell_sums
from voxscale.reciprocal.transform import half_transform

scipy_ndimage = pytest.importorskip("scipy.ndimage")

FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                  HealthCheck.function_scoped_fixture])
ALLOWED = (ValueError, TypeError)


# --------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------

#: Axis lengths: 1-voxel axes, primes, small composites, and a long one for aspect ratios.
AXIS = st.sampled_from([1, 1, 2, 3, 4, 5, 7, 11, 13, 16, 17])
SHAPE = st.one_of(
    st.tuples(AXIS, AXIS, AXIS),
    st.sampled_from([(1, 1, 500), (500, 1, 1), (1, 500, 1), (2, 3, 97), (97, 3, 2), (1, 1, 1),
                     (1, 2, 1), (3, 1, 61), (2, 2, 2)]),
)
SEED = st.integers(0, 2**32 - 1)
VOXEL = st.floats(0.3, 4.0)
#: Floats including every non-finite value and extremes.
WILD_FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, -1e-300, 1e300, -1e300, float("nan"), float("inf"),
                     -float("inf"), 5e-324]),
    st.floats(-100, 100),
)


def random_map(shape, seed, voxel=1.0, origin=None, kind="normal") -> Map:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        data = rng.standard_normal(shape)
    elif kind == "blobs":  # smooth, with clear maxima
        data = scipy_ndimage.gaussian_filter(rng.standard_normal(shape), 1.0, mode="wrap")
        data /= max(float(np.abs(data).max()), 1e-12)
    else:
        data = np.full(shape, 0.5)
    if origin is None:
        origin = rng.uniform(-20, 20, 3)
    return Map(data.astype(np.float32), voxel, origin)


def random_rotation(rng) -> np.ndarray:
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


# --------------------------------------------------------------------------------------------
# random map headers
# --------------------------------------------------------------------------------------------

NX, NY, NZ = 6, 5, 4
BASE_DATA = np.arange(NZ * NY * NX, dtype=np.float32).reshape(NZ, NY, NX) / 7.0
INT_FIELDS = {"nx": 0, "ny": 4, "nz": 8, "mode": 12, "nxstart": 16, "nystart": 20,
              "nzstart": 24, "mx": 28, "my": 32, "mz": 36, "mapc": 64, "mapr": 68, "maps": 72,
              "ispg": 88, "nsymbt": 92}
FLOAT_FIELDS = {"cella_x": 40, "cella_y": 44, "cella_z": 48, "origin_x": 196, "origin_y": 200,
                "origin_z": 204}
INT_VALUE = st.one_of(
    st.integers(-2**31, 2**31 - 1),
    st.integers(-3, 130),
    st.sampled_from([0, 1, 2, 3, 4, 6, 12, 20, 30, 60, 120, 401, 2**31 - 1, -2**31, 10**9,
                     2**16, 2**20]),
)
FLOAT_VALUE = st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True),
                        st.sampled_from([0.0, -0.0, 1e-45, 3.4e38, -3.4e38, 1e-30, 7.5, -7.5]))
PATCH = st.one_of(
    st.tuples(st.sampled_from(sorted(INT_FIELDS)), INT_VALUE),
    st.tuples(st.sampled_from(sorted(FLOAT_FIELDS)), FLOAT_VALUE),
)


@pytest.fixture(scope="module")
def valid_bytes() -> bytes:
    """A valid little-endian 6 x 5 x 4 (x, y, z) float32 map, 1.5 Å voxels."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.mrc"
        Map(BASE_DATA, 1.5, (1.0, 2.0, 3.0)).write(path)
        return path.read_bytes()


def _patched(raw: bytes, patches) -> bytes:
    buf = bytearray(raw)
    for name, value in patches:
        if name in INT_FIELDS:
            struct.pack_into("<i", buf, INT_FIELDS[name], value)
        else:
            struct.pack_into("<f", buf, FLOAT_FIELDS[name], value)
    return bytes(buf)


def check_read(path: Path):
    """read_map(path) returns a valid Map or raises MapFormatError naming the file; quickly
    and without allocating much. Returns the Map or None."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                m = voxscale.read_map(path)
            except MapFormatError as err:
                assert str(err).startswith(str(path)), str(err)
                m = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 16 * 2**20, f"read_map allocated {peak / 2**20:.0f} MiB"
    if m is not None:
        assert m.data.dtype == np.float32 and m.data.flags.c_contiguous
        assert m.data.ndim == 3 and min(m.shape) >= 1
        assert m.data.size <= path.stat().st_size  # never more voxels than bytes on disk
        assert np.all(np.isfinite(m.data))
        assert np.all(np.isfinite(m.voxel_size)) and np.all(m.voxel_size > 0)
        assert np.all(np.isfinite(m.origin))
    return m


@settings(max_examples=150, **FUZZ)
@given(patches=st.lists(PATCH, min_size=1, max_size=5))
def test_random_header_fields(valid_bytes, patches):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.mrc"
        path.write_bytes(_patched(valid_bytes, patches))
        check_read(path)


@settings(max_examples=100, **FUZZ)
@given(flips=st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 255)), min_size=1,
                      max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 1024 + 480 + 10)))
def test_random_header_bytes_and_length(valid_bytes, flips, cut):
    """Any header byte (the byte-order stamp at 212 included) and any file length."""
    buf = bytearray(valid_bytes)
    for pos, value in flips:
        buf[pos] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.mrc"
        path.write_bytes(bytes(buf[:cut]))
        check_read(path)


MODES = [(0, "<i1", 1), (1, "<i2", 2), (2, "<f4", 4), (6, "<u2", 2), (12, "<f2", 2)]


@st.composite
def consistent_layout(draw):
    """A density mode and dims whose product fills the 480 data bytes exactly."""
    mode = draw(st.sampled_from(MODES))
    n = 480 // mode[2]
    nx = draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    ny = draw(st.sampled_from([d for d in range(1, n // nx + 1) if (n // nx) % d == 0]))
    return mode, (nx, ny, n // (nx * ny))


@settings(max_examples=60, **FUZZ)
@given(layout=consistent_layout(), axes=st.permutations([1, 2, 3]))
def test_consistent_random_headers_read_exactly(valid_bytes, layout, axes):
    """Headers that fit the data (any dims whose product fits, any density mode, any axis
    order) must be read, with the right shape and values."""
    (code, dtype, _), (nx, ny, nz) = layout
    raw = _patched(valid_bytes, [("nx", nx), ("ny", ny), ("nz", nz), ("mode", code),
                                 ("mx", nx), ("my", ny), ("mz", nz), ("mapc", axes[0]),
                                 ("mapr", axes[1]), ("maps", axes[2])])
    body = raw[1024:]
    stored = np.frombuffer(body, dtype=dtype).reshape(nz, ny, nx)
    assume(np.all(np.isfinite(stored.astype(np.float32))))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.mrc"
        path.write_bytes(raw)
        m = check_read(path)
    assert m is not None
    # stored axes (sections, rows, columns) run along physical (maps, mapr, mapc)
    physical = [axes[2], axes[1], axes[0]]
    expected = stored.transpose([physical.index(3 - j) for j in range(3)]).astype(np.float32)
    np.testing.assert_array_equal(m.data, expected)


@settings(max_examples=40, **FUZZ)
@given(cut=st.floats(0.0, 1.0), level=st.integers(1, 9))
def test_gzip_cut_anywhere(valid_bytes, cut, level):
    gz = gzip.compress(valid_bytes, compresslevel=level)
    n = int(cut * len(gz))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.mrc.gz"
        path.write_bytes(gz[:n])
        m = check_read(path)
    if n < len(gz):
        assert m is None, f"a gzip file cut at {n} of {len(gz)} bytes was accepted"
    else:
        np.testing.assert_array_equal(m.data, BASE_DATA)


@settings(max_examples=60, **FUZZ)
@given(nsymbt=st.one_of(st.integers(0, 4096), st.integers(0, 2**31 - 1)),
       extra=st.integers(-64, 64), gz=st.booleans())
def test_random_extended_headers(valid_bytes, nsymbt, extra, gz):
    """An extended header of any declared size: the data after it are read exactly when the
    file holds them, otherwise MapFormatError; never a large allocation (check_read)."""
    header = bytearray(valid_bytes[:1024])
    struct.pack_into("<i", header, 92, nsymbt)
    body = valid_bytes[1024:]
    present = max(0, min(nsymbt + extra, 1 << 16))  # how many extended-header bytes exist
    raw = bytes(header) + bytes(present) + body
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("fuzz.mrc.gz" if gz else "fuzz.mrc")
        path.write_bytes(gzip.compress(raw, compresslevel=1) if gz else raw)
        m = check_read(path)
    if present == nsymbt:
        np.testing.assert_array_equal(m.data, BASE_DATA)
    elif present < nsymbt:
        assert m is None


@settings(max_examples=30, **FUZZ)
@given(kind=st.sampled_from(["file", "folder", "fifo", "dangling", "chain", "loop"]),
       reader=st.sampled_from(["map", "model", "header"]))
def test_special_files_and_symlinks(valid_bytes, kind, reader):
    """Inputs are opened only when they are regular files (a symlink, or a chain of them, to
    one is fine): folders, FIFOs and dangling or looping links are refused, never opened."""
    read = {"map": voxscale.read_map, "model": voxscale.read_model,
            "header": voxscale.read_map_header}[reader]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        target = tmp / "real.mrc"
        if reader == "model":
            target = tmp / "real.pdb"
            target.write_text("ATOM      1  CA  ALA A   1       1.000   2.000   3.000  1.00 "
                              "20.00           C\n")
        else:
            target.write_bytes(valid_bytes)
        path = tmp / ("input" + target.suffix)  # gemmi picks the model format by the name
        if kind == "file":
            path = target
        elif kind == "folder":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "dangling":
            path.symlink_to(tmp / "nowhere")
        elif kind == "chain":
            (tmp / "link1").symlink_to(target)
            path.symlink_to(tmp / "link1")
        else:
            (tmp / "loop").symlink_to(path)
            path.symlink_to(tmp / "loop")
        if kind in ("file", "chain"):
            assert read(path) is not None
            return
        expected = voxscale.MissingInputError if kind == "dangling" else voxscale.InputFileError
        with pytest.raises(expected, match=str(path)):
            read(path)


# --------------------------------------------------------------------------------------------
# resample and interpolate
# --------------------------------------------------------------------------------------------

TRANSFORM = st.one_of(
    st.none(),
    st.tuples(SEED, st.floats(-30, 30)).map(lambda a: ("rigid",) + a),
    st.lists(WILD_FLOAT, min_size=16, max_size=16).map(lambda v: ("raw", v)),
)
SCALE = st.one_of(st.floats(0.5, 2.0), WILD_FLOAT,
                  st.lists(WILD_FLOAT, min_size=9, max_size=9).map(lambda v: ("matrix", v)))


def _transform(spec):
    if spec is None:
        return None
    if spec[0] == "rigid":
        rng = np.random.default_rng(spec[1])
        t = np.eye(4)
        t[:3, :3] = random_rotation(rng)
        t[:3, 3] = rng.uniform(-1, 1, 3) * spec[2]
        return t
    return np.array(spec[1], dtype=np.float64).reshape(4, 4)


def _scale(spec):
    return np.array(spec[1]).reshape(3, 3) if isinstance(spec, tuple) else spec


def _transform_is_valid(t) -> bool:
    if t is None:
        return True
    with np.errstate(all="ignore"):
        return bool(np.all(np.isfinite(t)) and np.allclose(t[3], [0, 0, 0, 1])
                    and abs(np.linalg.det(t[:3, :3])) >= 1e-12)


def _scale_is_valid(s) -> bool:
    s = np.asarray(s, dtype=np.float64)
    with np.errstate(all="ignore"):
        if s.ndim == 0:
            return bool(np.isfinite(s) and s > 0)
        return bool(np.all(np.isfinite(s)) and np.linalg.det(s) > 0)


@settings(max_examples=120, **FUZZ)
@given(shape=SHAPE, onto_shape=SHAPE, seed=SEED, voxel=VOXEL, transform=TRANSFORM,
       scale=SCALE, order=st.sampled_from([1, 3, 0, 2]), nthreads=st.sampled_from([0, 1, 2]))
def test_resample_random(shape, onto_shape, seed, voxel, transform, scale, order, nthreads):
    src = random_map(shape, seed, voxel)
    onto = random_map(onto_shape, seed + 1, voxel * 1.1, origin=src.origin + 0.5)
    t, s = _transform(transform), _scale(scale)
    valid = order in (1, 3) and _transform_is_valid(t) and _scale_is_valid(s)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if not valid:
            with pytest.raises(ValueError):
                voxscale.resample(src, onto, t, s, order, nthreads=nthreads)
            return
        try:
            out = voxscale.resample(src, onto, t, s, order, nthreads=nthreads)
        except ValueError:
            # Only acceptable when the factor is so extreme (e.g. a subnormal scale) that the
            # index map itself overflows.
            from voxscale.maps.interpolation import index_map
            assert not np.all(np.isfinite(index_map(src, onto, t, s))), "valid input refused"
            return
    assert out.shape == onto.shape and out.data.dtype == np.float32
    assert np.all(np.isfinite(out.data))
    if order == 1:  # a convex combination of the samples and the fill value 0
        lo, hi = min(float(src.data.min()), 0.0), max(float(src.data.max()), 0.0)
        assert out.data.min() >= lo - 1e-4 and out.data.max() <= hi + 1e-4


@settings(max_examples=40, **FUZZ)
@given(shape=SHAPE, seed=SEED, voxel=VOXEL, order=st.sampled_from([1, 3]))
def test_resample_onto_itself_is_identity(shape, seed, voxel, order):
    m = random_map(shape, seed, voxel)
    out = voxscale.resample(m, m, order=order, nthreads=1)
    np.testing.assert_allclose(out.data, m.data, atol=2e-5 * (1 + float(np.abs(m.data).max())))


POINT_COORD = st.one_of(st.floats(-5, 40), WILD_FLOAT)


@settings(max_examples=120, **FUZZ)
@given(shape=SHAPE, seed=SEED, voxel=VOXEL, order=st.sampled_from([1, 3]),
       points=st.lists(st.tuples(POINT_COORD, POINT_COORD, POINT_COORD), min_size=0,
                       max_size=12),
       fill=st.floats(-10, 10), nthreads=st.sampled_from([0, 1, 2]))
def test_interpolate_random_points(shape, seed, voxel, order, points, fill, nthreads):
    """Non-finite or outside points give ``fill`` and zero gradient; inside points agree with
    scipy.ndimage (order 1: trilinear; order 3: cubic B-spline, mirror boundaries)."""
    m = random_map(shape, seed, voxel, origin=(0.0, 0.0, 0.0))
    pts = np.array(points, dtype=np.float64).reshape(-1, 3)
    interp = voxscale.Interpolator(m, order=order, fill=fill, nthreads=nthreads)
    values, grads, inside = interp(pts, gradient=True, return_inside=True)
    assert values.shape == (len(pts),) and grads.shape == (len(pts), 3)
    assert inside.dtype == bool
    with np.errstate(all="ignore"):
        idx = pts / voxel  # origin 0: fractional indices x, y, z
        n_xyz = np.array(shape[::-1])
        expect_inside = np.all(np.isfinite(idx) & (idx >= -1e-6) & (idx <= n_xyz - 1 + 1e-6),
                               axis=1)
    np.testing.assert_array_equal(inside, expect_inside)
    assert np.all(values[~inside] == np.float32(fill))
    assert np.all(grads[~inside] == 0.0)
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(grads))
    if inside.any():
        coords = np.clip(idx[inside][:, ::-1], 0, np.array(shape) - 1).T  # z, y, x
        ref = scipy_ndimage.map_coordinates(m.data.astype(np.float64), coords, order=order,
                                            mode="mirror" if order == 3 else "nearest")
        scale = 1.0 + float(np.abs(m.data).max())
        np.testing.assert_allclose(values[inside], ref, atol=1e-4 * scale)


@settings(max_examples=40, **FUZZ)
@given(shape=SHAPE, seed=SEED, voxel=VOXEL, order=st.sampled_from([1, 3]))
def test_interpolate_gradient_matches_finite_differences(shape, seed, voxel, order):
    m = random_map(shape, seed, voxel, origin=(0.0, 0.0, 0.0))
    rng = np.random.default_rng(seed)
    top = (np.array(shape[::-1]) - 1) * voxel
    pts = rng.uniform(0.25, 0.75, (6, 3)) * top
    interp = voxscale.Interpolator(m, order=order, nthreads=1)
    _, grads = interp(pts, gradient=True)
    h = 1e-3 * voxel
    for axis in range(3):
        if shape[2 - axis] == 1:
            assert np.all(grads[:, axis] == 0)
            continue
        step = np.zeros(3)
        step[axis] = h
        fd = (interp(pts + step).astype(np.float64) - interp(pts - step)) / (2 * h)
        if order == 1:  # kinks at grid planes: compare only away from them
            frac = (pts[:, axis] / voxel) % 1.0
            ok = (frac > 0.01) & (frac < 0.99)
        else:
            ok = np.ones(len(pts), bool)
        scale = (1.0 + float(np.abs(m.data).max())) / voxel
        np.testing.assert_allclose(grads[ok, axis], fd[ok], atol=2e-2 * scale)


# --------------------------------------------------------------------------------------------
# structure factors and shells
# --------------------------------------------------------------------------------------------

D_MIN = st.one_of(st.none(), st.floats(0.5, 50.0), WILD_FLOAT)


@settings(max_examples=100, **FUZZ)
@given(shape=SHAPE, seed=SEED, voxel=VOXEL, d_min=D_MIN, nthreads=st.sampled_from([0, 1, 2]))
@example(shape=(3, 4, 5), seed=0, voxel=1.0, d_min=0.0, nthreads=1)
@example(shape=(3, 4, 5), seed=0, voxel=1.0, d_min=-2.0, nthreads=1)
@example(shape=(3, 4, 5), seed=0, voxel=1.0, d_min=float("nan"), nthreads=1)
@example(shape=(3, 4, 5), seed=0, voxel=1.0, d_min=1e300, nthreads=1)
def test_structure_factors_round_trip(shape, seed, voxel, d_min, nthreads):
    m = random_map(shape, seed, voxel)
    valid = d_min is None or (math.isfinite(d_min) and 1e-3 <= d_min < 1e7)  # documented bounds
    if not valid:
        with pytest.raises(ValueError):
            voxscale.structure_factors(m, d_min, nthreads=nthreads)
        return
    sf = voxscale.structure_factors(m, d_min, nthreads=nthreads)
    assert sf.f.dtype == np.complex64 and len(sf.hkl) == len(sf.f) == len(sf.d)
    assert np.all(sf.hkl[:, 0] >= 0)
    if d_min is not None and len(sf):
        assert sf.d.min() >= d_min * (1 - 1e-6)
    # F(h) = (V/N) Σ ρ exp(+2πi h·x): the complex conjugate of numpy's rfftn times V/N
    volume = float(np.prod(m.cell))
    expect = np.conj(np.fft.rfftn(m.data.astype(np.float64))) * volume / m.data.size
    half = half_transform(m, nthreads=nthreads)
    tol = 1e-5 * volume * (1 + float(np.abs(m.data).max()))
    np.testing.assert_allclose(half, expect, atol=tol)
    back = voxscale.map_from_structure_factors(sf, m, nthreads=nthreads)
    assert back.shape == m.shape and np.all(np.isfinite(back.data))
    if d_min is None:  # all reflections: exact round trip
        np.testing.assert_allclose(back.data, m.data, atol=1e-4 * (1 + np.abs(m.data).max()))
    elif len(sf) == 0:  # nothing kept but F(000): the mean
        np.testing.assert_allclose(back.data, m.data.mean(dtype=np.float64), atol=1e-4)


def _edges_valid(d_max, d_min) -> bool:
    """The documented bounds: 0.001 Å <= d_min < d_max <= 1e7 Å, d_max None or inf."""
    if not (isinstance(d_min, float) and math.isfinite(d_min) and 1e-3 <= d_min < 1e7):
        return False
    if d_max is None or d_max == math.inf:
        return True
    return math.isfinite(d_max) and d_min < d_max <= 1e7


@settings(max_examples=150, **FUZZ)
@given(d_max=st.one_of(st.none(), st.floats(1.0, 100.0), WILD_FLOAT), d_min=WILD_FLOAT,
       n_shells=st.integers(1, 30), spacing=st.sampled_from(["cubic", "linear"]))
@example(d_max=0.0, d_min=3.0, n_shells=5, spacing="cubic")
@example(d_max=-10.0, d_min=3.0, n_shells=5, spacing="cubic")
@example(d_max=float("nan"), d_min=3.0, n_shells=5, spacing="cubic")
@example(d_max=None, d_min=5e-324, n_shells=5, spacing="cubic")
@example(d_max=None, d_min=5.13e107, n_shells=2, spacing="cubic")  # once gave [0, 0, 1.9e-108]
def test_shell_edges_random(d_max, d_min, n_shells, spacing):
    """Valid: d_min finite > 0 and d_max None, inf or finite > d_min. Anything else (0,
    negative or NaN d_max included) is a ValueError, not another exception or wrong edges."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        if not _edges_valid(d_max, d_min):
            with pytest.raises(ValueError):
                shell_edges(d_max, d_min, n_shells, spacing=spacing)
            return
        edges = shell_edges(d_max, d_min, n_shells, spacing=spacing)
    assert edges.shape == (n_shells + 1,)
    assert np.all(np.isfinite(edges)) and edges[0] >= 0 and np.all(np.diff(edges) > 0)


EDGE_VALUE = st.one_of(st.floats(0.0, 1.0), WILD_FLOAT)


def _unique_reflections_in_range(shape, cell, lo, hi) -> int:
    """Unique reflections (one per Friedel pair, F000 excluded) with lo <= s < hi."""
    nz, ny, nx = shape
    fz, fy, fx = (np.fft.fftfreq(n, 1.0 / n) for n in shape)
    s = np.sqrt((fx[None, None, :] / cell[0]) ** 2 + (fy[None, :, None] / cell[1]) ** 2
                + (fz[:, None, None] / cell[2]) ** 2)
    inside = (s >= lo) & (s < hi)
    inside[0, 0, 0] = False
    iz, iy, ix = np.indices(shape)
    self_mate = ((2 * ix) % nx == 0) & ((2 * iy) % ny == 0) & ((2 * iz) % nz == 0)
    return int((inside.sum() + (inside & self_mate).sum()) // 2)


@settings(max_examples=120, **FUZZ)
@given(shape=SHAPE, cell_seed=SEED, edges=st.lists(EDGE_VALUE, min_size=0, max_size=6),
       nthreads=st.sampled_from([0, 1, 2]))
def test_shell_index_random_edges(shape, cell_seed, edges, nthreads):
    cell = np.random.default_rng(cell_seed).uniform(1.0, 40.0, 3)
    e = np.array(edges, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf in the check itself
        valid = (len(e) >= 2 and not np.any(np.isnan(e)) and np.all(e >= 0)
                 and np.all(np.diff(e) > 0))
    if not valid:
        with pytest.raises(ValueError):
            shell_index(shape, cell, e, nthreads=nthreads)
        return
    idx = shell_index(shape, cell, e, nthreads=nthreads)
    nz, ny, nx = shape
    assert idx.shape == (nz, ny, nx // 2 + 1) and idx.dtype == np.int32
    assert idx.min() >= -1 and idx.max() <= len(e) - 2
    # every shell holds exactly the unique reflections in its range
    for j in range(len(e) - 1):
        assert int((idx == j).sum()) == _unique_reflections_in_range(shape, cell, e[j], e[j + 1])


@settings(max_examples=60, **FUZZ)
@given(n=st.integers(0, 300), n_shells=st.integers(-3, 12), seed=SEED,
       with_f2=st.booleans(), nthreads=st.sampled_from([0, 1, 2]))
def test_shell_sums_random(n, n_shells, seed, with_f2, nthreads):
    rng = np.random.default_rng(seed)
    f1 = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    f2 = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    shells = rng.integers(-2, max(n_shells, 0) + 2, n).astype(np.int32)
    if n_shells < 0:
        with pytest.raises(ValueError):
            shell_sums(f1, f2 if with_f2 else None, shells, n_shells, nthreads=nthreads)
        return
    s = shell_sums(f1, f2 if with_f2 else None, shells, n_shells, nthreads=nthreads)
    for j in range(n_shells):
        sel = shells == j
        a1, a2 = np.abs(f1[sel]).astype(np.float64), np.abs(f2[sel]).astype(np.float64)
        assert s.count[j] == sel.sum()
        np.testing.assert_allclose(s.sum_f1[j], a1.sum(), rtol=1e-5, atol=1e-5)
        if with_f2:
            np.testing.assert_allclose(s.sum_abs_diff[j], np.abs(a1 - a2).sum(), rtol=1e-5,
                                       atol=1e-5)
            np.testing.assert_allclose(
                s.sum_re_cross[j], np.real(f1[sel].astype(complex) * np.conj(f2[sel])).sum(),
                rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------------------------
# correlation, peaks, amplitude scaling
# --------------------------------------------------------------------------------------------

@settings(max_examples=100, **FUZZ)
@given(n=st.integers(0, 200), seed=SEED, weighted=st.sampled_from([None, "pos", "neg", "zero"]),
       poison=st.sampled_from([None, np.nan, np.inf, -np.inf, 1e30]),
       constant=st.booleans(), mismatch=st.booleans(), nthreads=st.sampled_from([0, 1, 2]))
def test_correlation_random(n, seed, weighted, poison, constant, mismatch, nthreads):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n)
    b = 0.5 * a + rng.standard_normal(n)
    if constant:
        b[:] = 2.0
    if poison is not None and n:
        a[rng.integers(n)] = poison
    w = None
    if weighted == "pos":
        w = rng.uniform(0, 2, n)
    elif weighted == "neg" and n:
        w = rng.uniform(0, 2, n)
        w[0] = -1.0
    elif weighted == "zero":
        w = np.zeros(n)
    if mismatch:
        b = np.append(b, 1.0)
        with pytest.raises(ValueError):
            voxscale.maps.correlation(a, b, w, nthreads=nthreads)
        return
    if weighted == "neg" and n:
        with pytest.raises(ValueError):
            voxscale.maps.correlation(a, b, w, nthreads=nthreads)
        return
    try:
        cc = voxscale.maps.correlation(a, b, w, nthreads=nthreads)
    except ValueError:
        assert poison is not None and not np.isfinite(poison), "ValueError on finite input"
        return
    assert isinstance(cc, float)
    a32, b32 = a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    ww = np.ones(n) if w is None else w.astype(np.float32).astype(np.float64)
    with np.errstate(all="ignore"):
        if ww.sum() > 0 and np.all(np.isfinite(a32)) and n:
            am, bm = (ww * a32).sum() / ww.sum(), (ww * b32).sum() / ww.sum()
            num = (ww * (a32 - am) * (b32 - bm)).sum()
            den = math.sqrt((ww * (a32 - am) ** 2).sum() * (ww * (b32 - bm) ** 2).sum())
            expect = num / den if den > 0 else math.nan
        else:
            expect = math.nan
    if math.isnan(expect) or abs(expect) > 1:
        assert math.isnan(cc) or (-1 - 1e-9 <= cc <= 1 + 1e-9), cc
    else:
        assert abs(cc - expect) < 1e-5, (cc, expect)


@settings(max_examples=60, **FUZZ)
@given(shape=st.tuples(st.sampled_from([1, 2, 3, 5, 8, 11]), st.sampled_from([1, 2, 3, 5, 8, 11]),
                       st.sampled_from([1, 2, 3, 5, 8, 11, 40])),
       seed=SEED, voxel=VOXEL, sigma=st.one_of(st.floats(0.2, 4.0), WILD_FLOAT),
       kind=st.sampled_from(["normal", "blobs"]), max_peaks=st.sampled_from([None, 1, 5]),
       nthreads=st.sampled_from([0, 1, 2]))
def test_find_peaks_random(shape, seed, voxel, sigma, kind, max_peaks, nthreads):
    m = random_map(shape, seed, voxel, kind=kind)
    if not (math.isfinite(sigma) and sigma > 0):
        with pytest.raises(ValueError):
            voxscale.find_peaks(m, sigma, nthreads=nthreads)
        return
    with np.errstate(over="ignore"):
        sigma32 = np.float32(sigma)
    if not 0 < sigma32 < np.inf:  # beyond float32: the kernel may refuse it
        try:
            voxscale.find_peaks(m, sigma, nthreads=nthreads)
        except ValueError:
            pass
        return
    start = time.perf_counter()
    peaks = voxscale.find_peaks(m, sigma, max_peaks=max_peaks, nthreads=nthreads)
    assert time.perf_counter() - start < 5.0
    heights = [abs(p.height_sigma) for p in peaks]
    assert heights == sorted(heights, reverse=True)
    if max_peaks is not None:
        assert len(peaks) <= max_peaks
    lo = m.origin - 0.5 * m.voxel_size - 1e-6
    hi = m.origin + (m.grid_size - 0.5) * m.voxel_size + 1e-6
    data = m.data
    for p in peaks:
        xyz = np.array([p.x, p.y, p.z])
        assert np.all(xyz >= lo) and np.all(xyz <= hi), (xyz, lo, hi)
        assert abs(p.height_sigma) >= sigma * (1 - 1e-6)
        assert abs(p.height_sigma) <= float(np.abs(data).max()) * 1.5 + 1e-6
        assert p.volume_A3 > 0 and np.isfinite(p.integral)


@settings(max_examples=60, **FUZZ)
@given(shape=SHAPE, seed=SEED, threshold=st.one_of(st.floats(0.05, 1.5), WILD_FLOAT),
       kind=st.sampled_from(["normal", "blobs"]))
def test_label_regions_random(shape, seed, threshold, kind):
    """6-connected regions of voxels >= t and of voxels <= -t, as scipy.ndimage.label."""
    m = random_map(shape, seed, kind=kind)
    with np.errstate(over="ignore"):
        t32 = np.float32(threshold)
    if not (np.isfinite(t32) and t32 > 0):
        with pytest.raises(ValueError):
            _core.label_regions(m.data, threshold)
        return
    labels, count, total = _core.label_regions(m.data, threshold)
    assert labels.shape == m.shape and labels.dtype == np.int32
    six = scipy_ndimage.generate_binary_structure(3, 1)
    pos, n_pos = scipy_ndimage.label(m.data >= t32, six)
    neg, n_neg = scipy_ndimage.label(m.data <= -t32, six)
    assert len(count) == len(total) == labels.max() == n_pos + n_neg
    assert np.array_equal(labels > 0, (pos > 0) | (neg > 0))
    for ref_labels, n in ((pos, n_pos), (neg, n_neg)):
        for k in range(1, n + 1):
            mine = np.unique(labels[ref_labels == k])
            assert len(mine) == 1, "a scipy region is split"
            sel = labels == mine[0]
            assert np.array_equal(sel, ref_labels == k), "regions differ"
            assert count[mine[0] - 1] == sel.sum()
            np.testing.assert_allclose(total[mine[0] - 1], m.data[sel].astype(np.float64).sum(),
                                       rtol=1e-6, atol=1e-5)


def test_find_peaks_on_a_plateau_does_not_hang():
    """A flat region above the threshold (a clipped or masked map) makes every voxel a local
    maximum: 48³ of them must still take well under a few seconds (run in a child process so
    that a hang fails this test instead of stalling the suite)."""
    code = textwrap.dedent("""
        import time, numpy as np, voxscale
        m = voxscale.Map(np.full((48, 48, 48), 5.0, np.float32), 1.0)
        start = time.perf_counter()
        peaks = voxscale.find_peaks(m, 4.0, nthreads=1)
        print(len(peaks), round(time.perf_counter() - start, 2))
    """)
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("find_peaks on a 48³ plateau at 5σ did not finish in 15 s")
    assert proc.returncode == 0, proc.stderr
    n, seconds = proc.stdout.split()
    assert float(seconds) < 5.0, f"{n} peaks in {seconds} s"


@settings(max_examples=40, **FUZZ)
@given(shape=st.sampled_from([(8, 9, 10), (12, 12, 12), (5, 16, 7), (1, 20, 20), (13, 11, 1)]),
       seed=SEED, voxel=VOXEL,
       d_max=st.one_of(st.none(), st.floats(3.0, 40.0), WILD_FLOAT),
       d_min=st.one_of(st.floats(1.0, 8.0), WILD_FLOAT),
       model=st.sampled_from(["isotropic", "anisotropic", "scale", "bogus"]),
       target=st.sampled_from(["wilson", "lsq"]),
       relation=st.sampled_from(["same", "scaled", "unrelated", "zero"]))
@example(shape=(12, 12, 12), seed=1, voxel=1.0, d_max=0.0, d_min=3.0, model="isotropic",
         target="wilson", relation="scaled")
@example(shape=(12, 12, 12), seed=1, voxel=1.0, d_max=10.0, d_min=0.0, model="isotropic",
         target="wilson", relation="scaled")
@example(shape=(12, 12, 12), seed=1, voxel=1.0, d_max=-10.0, d_min=3.0, model="isotropic",
         target="wilson", relation="scaled")
def test_scale_amplitudes_random(shape, seed, voxel, d_max, d_min, model, target, relation):
    ref = random_map(shape, seed, voxel)
    rng = np.random.default_rng(seed + 7)
    if relation == "same":
        tgt = ref
    elif relation == "scaled":
        tgt = Map(ref.data * 3.0 + 0.1 * rng.standard_normal(shape).astype(np.float32), voxel,
                  ref.origin)
    elif relation == "unrelated":
        tgt = random_map(shape, seed + 1, voxel, origin=ref.origin)
    else:
        tgt = Map(np.zeros(shape, np.float32), voxel, ref.origin)
    sf_r, sf_t = voxscale.structure_factors(ref), voxscale.structure_factors(tgt)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            res = voxscale.scale_amplitudes(sf_r, sf_t, d_max, d_min, model=model,
                                            target=target, n_shells=4)
        except ValueError:
            return
    assert model != "bogus"
    assert math.isfinite(d_min) and d_min > 0, f"d_min = {d_min} accepted"
    assert d_max is None or not math.isfinite(d_max) or d_max > d_min, (
        f"d_max = {d_max}, d_min = {d_min} accepted")
    assert relation != "zero", "a target without amplitudes was scaled"
    assert math.isfinite(res.k) and res.k > 0, res.k
    assert np.all(np.isfinite(res.b_tensor))
    assert math.isfinite(res.r_overall) and res.r_overall >= 0
    if relation == "same":
        assert abs(res.k - 1) < 1e-4 and res.r_overall < 1e-3


# --------------------------------------------------------------------------------------------
# every bound kernel, with random shapes, dtypes and strides
# --------------------------------------------------------------------------------------------

DTYPES = ["f4", "f8", "i4", "c8", ">f4", "?", "f2", "i8", "c16", "O"]
LAYOUTS = ["C", "F", "strided", "reversed", "broadcast"]


def make_array(rng, shape, dtype, layout):
    """An array of ``shape`` with the given dtype and memory layout."""
    size = int(np.prod(shape)) if len(shape) else 1
    if dtype == "O":
        return np.array(rng.standard_normal(size), dtype=object).reshape(shape)
    base = rng.standard_normal(size) * 3
    if dtype in ("c8", "c16"):
        base = base + 1j * rng.standard_normal(size)
    arr = base.astype(np.dtype(dtype)).reshape(shape)
    if layout == "F":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim:
        big = np.repeat(arr, 2, axis=-1)
        arr = big[..., ::2]
    elif layout == "reversed" and arr.ndim:
        arr = arr[..., ::-1]
    elif layout == "broadcast" and arr.ndim and arr.size:
        arr = np.broadcast_to(arr.reshape(-1)[:1].reshape((1,) * arr.ndim), shape)
    return arr


@st.composite
def array_arg(draw, good_dtype, good_shape):
    """Mostly a valid array (dtype, C layout, shape), sometimes one thing wrong."""
    dtype = draw(st.sampled_from([good_dtype] * 4 + DTYPES))
    layout = draw(st.sampled_from(["C"] * 4 + LAYOUTS))
    shape = draw(st.one_of(st.just(good_shape), st.just(good_shape), st.just(good_shape),
                           st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)))
    return dtype, layout, shape


def _is_good(spec, good_dtype, ndim=None, arr=None):
    dtype, layout, shape = spec
    ok = np.dtype(dtype) == np.dtype(good_dtype) and np.dtype(dtype).isnative
    ok = ok and (arr is None or arr.flags.c_contiguous)
    return ok and (ndim is None or len(shape) == ndim)


@settings(max_examples=300, **FUZZ)
@given(data=st.data(), kernel=st.sampled_from(
    ["spline_prefilter", "interpolate_points", "resample_affine", "pearson", "map_to_sf",
     "sf_to_map", "shell_index", "shell_sums", "rigid_score", "local_extrema",
     "label_regions"]),
    seed=SEED, grid=st.tuples(AXIS, AXIS, AXIS), nthreads=st.sampled_from([0, 1, 2, 3]))
def test_core_kernels_random_arguments(data, kernel, seed, grid, nthreads):
    """Any array argument may have a wrong dtype, layout, ndim or shape: the call either works
    or raises TypeError/ValueError; when every argument is right it must work."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = grid
    npts = data.draw(st.integers(0, 20))

    def arr(name, good_dtype, good_shape):
        spec = data.draw(array_arg(good_dtype, good_shape), label=name)
        a = make_array(rng, spec[2], spec[0], spec[1])
        good = (_is_good(spec, good_dtype, len(good_shape), a) and spec[2] == good_shape)
        return a, good

    geom = dict(origin=tuple(rng.uniform(-3, 3, 3)), voxel_size=tuple(rng.uniform(0.5, 2, 3)))
    if kernel == "spline_prefilter":
        a, ok = arr("data", "f4", grid)
        call = lambda: _core.spline_prefilter(a, nthreads)  # noqa: E731
    elif kernel == "interpolate_points":
        a, ok1 = arr("data", "f4", grid)
        p, ok2 = arr("points", "f8", (npts, 3))
        ok = ok1 and ok2
        call = lambda: _core.interpolate_points(a, geom["origin"], geom["voxel_size"], p,  # noqa
                                                3, 0.0, True, nthreads)
    elif kernel == "resample_affine":
        a, ok1 = arr("data", "f4", grid)
        m, ok2 = arr("index_map", "f8", (3, 4))
        ok = ok1 and ok2 and bool(np.all(np.isfinite(m.astype(float)))) if ok2 else False
        order = data.draw(st.sampled_from([1, 3]), label="order")
        call = lambda: _core.resample_affine(a, m, (3, 2, 5), order, 0.0, nthreads)  # noqa
    elif kernel == "pearson":
        a, ok1 = arr("a", "f4", (npts,))
        b, ok2 = arr("b", "f4", (npts,))
        w, ok3 = arr("weights", "f4", (npts,))
        ok = ok1 and ok2 and ok3
        call = lambda: _core.pearson(a, b, w, nthreads)  # noqa: E731
    elif kernel == "map_to_sf":
        a, ok = arr("data", "f4", grid)
        call = lambda: _core.map_to_sf(a, 100.0, nthreads)  # noqa: E731
    elif kernel == "sf_to_map":
        f, ok = arr("f", "c8", (nz, ny, nx // 2 + 1))
        call = lambda: _core.sf_to_map(f, nx, 100.0, nthreads)  # noqa: E731
    elif kernel == "shell_index":
        e, ok = arr("edges", "f8", (3,))
        if ok:  # a valid edges array must also increase strictly
            e = np.ascontiguousarray(np.sort(np.abs(e)))
            ok = len(np.unique(e)) == len(e)
        call = lambda: _core.shell_index(grid, (10.0, 11.0, 12.0), e, nthreads)  # noqa: E731
    elif kernel == "shell_sums":
        f1, ok1 = arr("f1", "c8", (npts,))
        f2, ok2 = arr("f2", "c8", (npts,))
        sh, ok3 = arr("shell", "i4", (npts,))
        ok = ok1 and ok2 and ok3
        call = lambda: _core.shell_sums(f1, f2, sh, 4, nthreads)  # noqa: E731
    elif kernel == "rigid_score":
        g, ok1 = arr("grid", "f4", grid)
        p, ok2 = arr("points", "f8", (npts, 3))
        v, ok3 = arr("values", "f4", (npts,))
        lin, ok4 = arr("linear", "f8", (3, 3))
        ok = ok1 and ok2 and ok3 and ok4
        call = lambda: _core.rigid_score(g, geom["origin"], geom["voxel_size"], p, v,  # noqa
                                         lin, (0.1, 0.2, 0.3), (1.0, 1.0, 1.0), 3, nthreads)
    elif kernel == "local_extrema":
        a, ok = arr("data", "f4", grid)
        call = lambda: _core.local_extrema(a, 1.0, nthreads)  # noqa: E731
    else:
        a, ok = arr("data", "f4", grid)
        call = lambda: _core.label_regions(a, 1.0)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ok:
            call()
        else:
            try:
                call()
            except ALLOWED:
                pass


# A fixed-seed battery of hostile calls in a child process: a segmentation fault or an abort
# there fails the test with the child's faulthandler traceback instead of killing pytest.
_BATTERY = r"""
import faulthandler, sys, warnings
import numpy as np
from voxscale import _core
faulthandler.enable()
warnings.simplefilter("ignore")
rng = np.random.default_rng(int(sys.argv[1]))
WILD = [0.0, -0.0, 1e-300, 1e300, -1e300, np.nan, np.inf, -np.inf, 5e-324, 2.0**53, -7.5]

def wild():
    if rng.random() < 0.5:
        return float(rng.choice(WILD))
    return float(rng.normal() * 10.0 ** rng.integers(-5, 6))

def shape():
    return tuple(int(rng.choice([1, 1, 2, 3, 5, 7, 13, 64])) for _ in range(3))

bad = []
for i in range(int(sys.argv[2])):
    g = rng.standard_normal(shape()).astype(np.float32)
    if rng.random() < 0.2:
        g[tuple(rng.integers(0, s) for s in g.shape)] = rng.choice([np.nan, np.inf, 3e38])
    nz, ny, nx = g.shape
    n = int(rng.integers(0, 50))
    pts = rng.standard_normal((n, 3)) * 10.0 ** rng.integers(0, 4)
    if n and rng.random() < 0.3:
        pts[rng.integers(n), rng.integers(3)] = wild()
    vox = tuple(abs(wild()) if rng.random() < 0.2 else rng.uniform(0.3, 3) for _ in range(3))
    org = tuple(wild() if rng.random() < 0.2 else rng.uniform(-10, 10) for _ in range(3))
    m = rng.standard_normal((3, 4)) * 10.0 ** rng.integers(-3, 4)
    if rng.random() < 0.3:
        m[rng.integers(3), rng.integers(4)] = wild()
    out_shape = shape()
    nt = int(rng.integers(0, 5))
    order = int(rng.choice([1, 3, 3, 0]))
    edges = np.sort(np.abs(rng.standard_normal(int(rng.integers(0, 5)))))
    if len(edges) and rng.random() < 0.3:
        edges[rng.integers(len(edges))] = wild()
    calls = [
        lambda: _core.spline_prefilter(g, nt),
        lambda: _core.interpolate_points(g, org, vox, pts, order, wild(), bool(rng.random() < 0.5), nt),
        lambda: _core.resample_affine(g, m, out_shape, order, wild(), nt),
        lambda: _core.pearson(g.ravel(), g.ravel()[::-1].copy(), None, nt),
        lambda: _core.map_to_sf(g, wild(), nt),
        lambda: _core.sf_to_map(_core.map_to_sf(g, 1.0, nt), nx, abs(wild()), nt),
        lambda: _core.shell_index(out_shape, (abs(wild()), 5.0, 6.0), edges, nt),
        lambda: _core.shell_sums(np.ones(n, np.complex64), None, rng.integers(-3, 6, n).astype(np.int32), int(rng.integers(0, 6)), nt),
        lambda: _core.rigid_score(g, org, vox, pts, rng.standard_normal(n).astype(np.float32), m[:, :3].copy(), (wild(), 0.0, 0.0), (0.0, 0.0, 0.0), order, nt),
        lambda: _core.local_extrema(g, abs(wild()), nt),
        lambda: _core.label_regions(g, abs(wild())),
    ]
    for k, c in enumerate(calls):
        try:
            c()
        except (ValueError, TypeError):
            pass
        except BaseException as e:
            bad.append(f"call {k} of round {i}: {type(e).__name__}: {e}")
print("\n".join(bad[:20]))
sys.exit(3 if bad else 0)
"""


@pytest.mark.parametrize("seed", [1, 2])
def test_hostile_kernel_calls_in_a_child_process(seed):
    proc = subprocess.run([sys.executable, "-c", _BATTERY, str(seed), "150"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 3, f"exceptions other than ValueError/TypeError:\n{proc.stdout}"
    assert proc.returncode == 0, (f"the child died with status {proc.returncode} (crash?)\n"
                                  f"{proc.stderr[-4000:]}")
