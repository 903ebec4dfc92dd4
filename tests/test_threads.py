"""Determinism and thread safety (issue 8, item 6).

* The same inputs give the same results for 1 and 2 threads (and 4, more than the cores of a
  small CI machine), within 1e-6 relative to the size of the result, for every parallel kernel
  and for two whole analyses (a voxel-scale scan and a vector difference).
* Repeated runs with the same thread count are bitwise identical.
* The kernels give correct results when called from 4 Python threads at once (each result is
  compared with one computed alone beforehand).
* The kernels release the GIL: while one runs in a worker thread, the main thread executes
  Python code. With the switch interval raised to 2 s the interpreter never takes the GIL from
  a thread by force within the test, so a main-thread timestamp that falls inside a kernel
  call can only come from the kernel having released the GIL.
"""
from __future__ import annotations

import concurrent.futures
import sys
import threading
import time

import numpy as np
import pytest

import voxscale
from voxscale import Map, _core
from voxscale.fit import ReferenceGrid, rotation_from_vector
from voxscale.testing.molecules import helix_bundle
from voxscale.reciprocal.shells import shell_edges, shell_index, shell_sums
from voxscale.reciprocal.transform import half_transform, map_from_half_transform
from voxscale.maps import relabel_voxel_size, transform_structure
from voxscale.reciprocal.model_map import model_map
pytestmark = pytest.mark.skipif(not voxscale.has_openmp(),
                                reason="built without OpenMP: every kernel runs serially")

RTOL = 1e-6


def assert_close(a, b, what=""):
    """|a - b| <= 1e-6 × max(1, max |a|), elementwise over arrays (complex included)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, what
    if a.size == 0:
        return
    scale = max(1.0, float(np.max(np.abs(a))))
    diff = float(np.max(np.abs(a.astype(np.complex128) - b.astype(np.complex128))))
    assert diff <= RTOL * scale, f"{what}: differs by {diff:.3g} (scale {scale:.3g})"


def assert_identical(a, b, what=""):
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b), what
        for x, y in zip(a, b):
            assert_identical(x, y, what)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for k in a:
            assert_identical(a[k], b[k], f"{what}[{k}]")
    elif a is None:
        assert b is None, what
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, what
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), f"{what}: not identical"


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair():
    """A reference 48³ at 1.5 Å and a target rotated by 10°, 2 % too small, with noise."""
    st = helix_bundle()
    ref = model_map(st, voxel_size=1.5, shape=(48, 48, 48), origin=np.full(3, -23.5 * 1.5),
                    d_min=4.0)
    rot = rotation_from_vector(np.radians(10.0) * np.array([0.6, 0.0, 0.8]))
    move = np.eye(4)
    move[:3, :3] = rot
    move[:3, 3] = [1.5, -1.0, 0.5]
    moved = transform_structure(st, move)
    spacing = 1.5 / 1.02
    tgt = relabel_voxel_size(model_map(moved, voxel_size=spacing, shape=(44, 44, 44),
                                       origin=move[:3, 3] - 21.5 * spacing, d_min=4.0), 1.5)
    rng = np.random.default_rng(3)
    noisy = lambda m: Map(m.data + 0.05 * float(m.data.std())  # noqa: E731
                          * rng.standard_normal(m.shape).astype(np.float32), m.voxel_size,
                          m.origin)
    labelled = np.eye(4)
    labelled[:3, :3] *= 1.02
    labelled[:3, 3] = move[:3, 3] * (1 - 1.02)
    return {"ref": noisy(ref), "tgt": noisy(tgt), "ref_model": st,
            "tgt_model": transform_structure(moved, labelled)}


@pytest.fixture(scope="module")
def big():
    """Random 64³ data (large enough for the kernels to use their threads) and points."""
    rng = np.random.default_rng(11)
    data = rng.standard_normal((64, 70, 66)).astype(np.float32)
    m = Map(data, (1.1, 0.9, 1.3), (-5.0, 3.0, 2.0))
    pts = m.origin + rng.uniform(-2, 1.02, (60000, 3)) * m.cell
    return {"map": m, "points": np.ascontiguousarray(pts), "rng": rng}


def _rigid(angle_deg=7.0, shift=(0.7, -0.4, 1.1), axis=(0.3, 0.9, 0.2)):
    t = np.eye(4)
    t[:3, :3] = rotation_from_vector(np.radians(angle_deg) * np.asarray(axis)
                                     / np.linalg.norm(axis))
    t[:3, 3] = shift
    return t


def kernel_calls(big):
    """name -> function(nthreads) returning the result as arrays (or tuples/dicts of them)."""
    m, pts = big["map"], big["points"]
    onto = Map(np.zeros((60, 61, 59), np.float32), 1.0, m.origin + 3.0)
    f = half_transform(m, nthreads=1)
    edges = shell_edges(None, 2.0 * float(m.voxel_size.max()), 15)
    shells = shell_index(m.shape, m.cell, edges, nthreads=1)
    f2 = (f * np.exp(1j * np.linspace(0, 3, f.size)).reshape(f.shape)).astype(np.complex64)
    rng = np.random.default_rng(5)
    values = rng.standard_normal(len(pts)).astype(np.float32)
    grid3 = ReferenceGrid(m, order=3, nthreads=1)
    grid1 = ReferenceGrid(m, order=1, nthreads=1)
    center = pts.mean(axis=0)
    lin = _rigid()[:3, :3]
    diff = Map(np.where(np.abs(m.data) > 2.5, m.data, 0.3 * m.data), m.voxel_size, m.origin)

    def sums(nt):
        s = shell_sums(f, f2, shells, 15, nthreads=nt)
        return {k: getattr(s, k) for k in ("count", "sum_f1", "sum_f2", "sum_f1_sq",
                                           "sum_f2_sq", "sum_abs_diff", "sum_re_cross")}

    def extrema(nt):
        index, vals = _core.local_extrema(diff.data, 2.5, nt)
        order = np.lexsort(index.T[::-1])  # the order of the list is not part of the result
        return index[order], vals[order]

    return {
        "resample order 1": lambda nt: voxscale.resample(m, onto, _rigid(), 1.03, 1,
                                                         nthreads=nt).data,
        "resample order 3": lambda nt: voxscale.resample(m, onto, _rigid(), 0.98, 3,
                                                         nthreads=nt).data,
        "spline coefficients": lambda nt: voxscale.spline_coefficients(m.data, nthreads=nt),
        "interpolate order 1 with gradients": lambda nt: voxscale.interpolate(
            m, pts, order=1, gradient=True, nthreads=nt),
        "interpolate order 3 with gradients": lambda nt: voxscale.interpolate(
            m, pts, order=3, gradient=True, nthreads=nt),
        "structure factors": lambda nt: half_transform(m, nthreads=nt),
        "map from structure factors": lambda nt: map_from_half_transform(f2, m,
                                                                         nthreads=nt).data,
        "structure factor list": lambda nt: voxscale.structure_factors(m, 3.0, nthreads=nt).f,
        "shell index": lambda nt: shell_index(m.shape, m.cell, edges, nthreads=nt),
        "shell sums": sums,
        "correlation": lambda nt: voxscale.maps.correlation(m.data, np.roll(m.data, 1) + m.data,
                                                       nthreads=nt),
        "weighted correlation": lambda nt: voxscale.maps.correlation(
            m.data, np.roll(m.data, 2) + m.data, np.abs(m.data), nthreads=nt),
        "rigid score order 3": lambda nt: ReferenceGrid.score(
            _with_threads(grid3, nt), pts, values, lin, (0.3, 0.2, -0.1), center),
        "rigid score order 1": lambda nt: ReferenceGrid.score(
            _with_threads(grid1, nt), pts, values, lin, (0.3, 0.2, -0.1), center),
        "local extrema": extrema,
        "peaks": lambda nt: [(p.x, p.y, p.z, p.height_sigma, p.volume_A3, p.integral)
                             for p in voxscale.find_peaks(diff, 2.5, nthreads=nt)],
    }


def _with_threads(grid: ReferenceGrid, nthreads: int) -> ReferenceGrid:
    """The same prepared reference, scoring with another thread count."""
    other = ReferenceGrid.__new__(ReferenceGrid)
    other.__dict__.update(grid.__dict__)
    other.nthreads = nthreads
    return other


def _compare(a, b, what):
    if isinstance(a, dict):
        for k in a:
            _compare(a[k], b[k], f"{what}[{k}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), f"{what}: {len(a)} != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            _compare(x, y, f"{what}[{i}]")
    else:
        assert_close(a, b, what)


KERNELS = ["resample order 1", "resample order 3", "spline coefficients",
           "interpolate order 1 with gradients", "interpolate order 3 with gradients",
           "structure factors", "map from structure factors", "structure factor list",
           "shell index", "shell sums", "correlation", "weighted correlation",
           "rigid score order 3", "rigid score order 1", "local extrema", "peaks"]


@pytest.fixture(scope="module")
def calls(big):
    made = kernel_calls(big)
    assert sorted(made) == sorted(KERNELS)
    return made


# --------------------------------------------------------------------------------------------
# 1 thread against 2 (and 4); repeated runs
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", KERNELS)
def test_one_thread_equals_several(calls, name):
    one = calls[name](1)
    for nt in (2, 4, 0):
        _compare(one, calls[name](nt), f"{name}, 1 vs {nt} threads")


@pytest.mark.parametrize("name", KERNELS)
def test_repeated_runs_are_identical(calls, name):
    first = calls[name](2)
    for _ in range(2):
        assert_identical(first, calls[name](2), name)


def test_peaks_found_at_all(calls):
    assert len(calls["peaks"](1)) > 10 and len(calls["local extrema"](1)[0]) > 10


@pytest.fixture(scope="module")
def scans(pair):
    """The same scan with 1 and 2 threads, and once more with 2."""
    kw = dict(scale_range=(0.96, 1.04), step=0.002)
    out = {}
    for key, nt in (("1", 1), ("2", 2), ("2 again", 2)):
        out[key] = voxscale.scan_voxel_scale(pair["ref"], pair["tgt"], pair["ref_model"],
                                             pair["tgt_model"], nthreads=nt, **kw)
    return out


def test_scan_same_for_one_and_two_threads(scans):
    one, two = scans["1"], scans["2"]
    assert abs(one.best_scale - 1 / 1.02) < 2e-3  # a real scan, not a degenerate one
    assert abs(one.best_scale - two.best_scale) <= 1e-6
    assert abs(one.uncertainty - two.uncertainty) <= 1e-6
    assert abs(one.cc_best - two.cc_best) <= 1e-6 and abs(one.cc_at_unit - two.cc_at_unit) <= 1e-6
    np.testing.assert_array_equal(one.scales, two.scales)
    np.testing.assert_allclose(one.cc, two.cc, rtol=0, atol=1e-6)
    np.testing.assert_allclose(one.transform, two.transform, rtol=0, atol=1e-5)


def test_scan_repeated_run_is_identical(scans):
    a, b = scans["2"], scans["2 again"]
    assert a.best_scale == b.best_scale and a.uncertainty == b.uncertainty
    np.testing.assert_array_equal(a.cc, b.cc)
    np.testing.assert_array_equal(a.transform, b.transform)


@pytest.fixture(scope="module")
def corrected(pair, scans):
    return voxscale.corrected_target(pair["ref"], pair["tgt"], scans["1"], nthreads=1)


def test_vector_difference_same_for_one_and_two_threads(pair, corrected):
    runs = {nt: voxscale.vector_difference(pair["ref"], corrected, None, 4.0, nthreads=nt)
            for nt in (1, 2)}
    one, two = runs[1], runs[2]
    assert_close(one.map.data, two.map.data, "difference map")
    assert abs(one.sigma - two.sigma) <= RTOL * max(1.0, abs(one.sigma))
    assert abs(one.scaling.k - two.scaling.k) <= RTOL * max(1.0, abs(one.scaling.k))
    assert_close(one.scaling.b_tensor, two.scaling.b_tensor, "B")
    assert abs(one.scaling.r_overall - two.scaling.r_overall) <= 1e-6 * 100
    for r1, r2 in zip(one.scaling.shells, two.scaling.shells):
        for key in ("n", "r", "fsc", "mean_f_ref", "mean_f_tgt"):
            assert abs(r1[key] - r2[key]) <= RTOL * max(1.0, abs(r1[key])), key
    again = voxscale.vector_difference(pair["ref"], corrected, None, 4.0, nthreads=2)
    assert_identical(two.map.data, again.map.data, "repeated difference map")


def test_corrected_target_same_for_one_and_two_threads(pair, scans, corrected):
    two = voxscale.corrected_target(pair["ref"], pair["tgt"], scans["1"], nthreads=2)
    assert_close(corrected.data, two.data, "corrected target")


# --------------------------------------------------------------------------------------------
# several Python threads at once
# --------------------------------------------------------------------------------------------

def test_kernels_from_four_python_threads_at_once(calls, pair, corrected):
    """Every kernel, three times each, from 4 threads at once, with 1 and 2 OpenMP threads
    inside: each result must equal the one computed alone."""
    tasks = {(name, nt): (lambda name=name, nt=nt: calls[name](nt))
             for name in KERNELS for nt in (1, 2)}
    tasks[("vector difference", 2)] = lambda: voxscale.vector_difference(
        pair["ref"], corrected, None, 4.0, nthreads=2).map.data
    tasks[("rigid fit", 1)] = lambda: voxscale.rigid_fit(
        pair["ref"], *_fit_points(pair), _rigid(3.0), nthreads=1).transform
    expected = {key: fn() for key, fn in tasks.items()}
    jobs = [key for _ in range(3) for key in tasks]
    np.random.default_rng(0).shuffle(jobs)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = [(key, pool.submit(tasks[key])) for key in jobs]
        for key, future in futures:
            assert_identical(expected[key], future.result(), f"{key} in a thread")


def _fit_points(pair):
    from voxscale.fit import fit_points
    pts = fit_points(pair["tgt"], max_points=3000)
    return pts.xyz, pts.values


def test_threads_sharing_one_input_array(big):
    """Many threads reading the same input array (no copy) while others write their own
    outputs: the input is unchanged and every output right."""
    m = big["map"]
    before = m.data.copy()
    ref = voxscale.spline_coefficients(m.data, nthreads=1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outs = list(pool.map(lambda nt: voxscale.spline_coefficients(m.data, nthreads=nt),
                             [1, 2, 1, 2, 1, 2, 1, 2]))
    for out in outs:
        assert_identical(ref, out)
    assert_identical(before, m.data, "the shared input")


# --------------------------------------------------------------------------------------------
# the GIL is released
# --------------------------------------------------------------------------------------------

def _main_thread_runs_during(kernel, *, seconds=0.25, min_calls=3):
    """Run ``kernel()`` repeatedly in a worker thread while the main thread loops in Python.

    Returns (fraction of the kernel calls during which the main thread executed Python code,
    main-loop iterations per second during the run / alone, number of calls judged).
    """
    intervals, stop, ready = [], threading.Event(), threading.Event()

    def worker():
        ready.set()
        while not stop.is_set():
            t0 = time.perf_counter()
            kernel()
            intervals.append((t0, time.perf_counter()))
            time.sleep(0)  # outside the timed call: lets the main thread in if it waits

    def busy(until, stamps):
        while True:
            now = time.perf_counter()
            if until(now):
                return now
            stamps.append(now)
            time.sleep(0)  # lets a waiting worker take the GIL back between its calls

    alone, start = [], time.perf_counter()
    busy(lambda now: now > start + 0.05, alone)
    old = sys.getswitchinterval()
    sys.setswitchinterval(2.0)  # no forced GIL hand-over during the measurement
    try:
        stamps = []
        thread = threading.Thread(target=worker)
        thread.start()
        ready.wait()
        begin = time.perf_counter()
        end = busy(lambda now: now > begin + seconds and len(intervals) >= min_calls, stamps)
        stop.set()
        thread.join()
    finally:
        sys.setswitchinterval(old)
    s = np.array(stamps)
    judged = [(t0, t1) for t0, t1 in intervals if t1 <= end]
    hit = [np.any((s > t0) & (s < t1)) for t0, t1 in judged]
    rate = len(stamps) / (end - begin) / (len(alone) / 0.05)
    return float(np.mean(hit)), rate, len(judged)


def gil_kernels(n=128):
    rng = np.random.default_rng(2)
    data = rng.standard_normal((n, n, n)).astype(np.float32)
    index = np.hstack([np.eye(3) * 0.97, np.full((3, 1), 1.3)])
    f = _core.map_to_sf(data, float(n) ** 3, 1)
    edges = np.linspace(0, 0.5, 21)
    shells = _core.shell_index((n, n, n), (float(n),) * 3, edges, 1)
    pts = rng.uniform(0, n - 1, (100000, 3))
    values = rng.standard_normal(len(pts)).astype(np.float32)
    a = data.ravel()
    b = np.roll(a, 1)
    return {
        "resample_affine": lambda: _core.resample_affine(data, index, (n, n, n), 3, 0.0, 1),
        "spline_prefilter": lambda: _core.spline_prefilter(data, 1),
        "interpolate_points": lambda: _core.interpolate_points(data, (0, 0, 0), (1, 1, 1), pts,
                                                               3, 0.0, True, 1),
        "map_to_sf": lambda: _core.map_to_sf(data, 1e6, 1),
        "sf_to_map": lambda: _core.sf_to_map(f, n, 1e6, 1),
        "pearson": lambda: _core.pearson(a, b, None, 1),
        "shell_index": lambda: _core.shell_index((n, n, n), (float(n),) * 3, edges, 1),
        "shell_sums": lambda: _core.shell_sums(f, f, shells, 20, 1),
        "rigid_score": lambda: _core.rigid_score(data, (0, 0, 0), (1, 1, 1), pts, values,
                                                 np.eye(3), (0.1, 0, 0), (64.0, 64.0, 64.0), 3,
                                                 1),
        "local_extrema": lambda: _core.local_extrema(data, 2.0, 1),
        "label_regions": lambda: _core.label_regions(data, 2.0),
    }


@pytest.fixture(scope="module")
def gil_calls():
    return gil_kernels()


def test_gil_kernel_list_is_complete(gil_calls):
    # settings and queries, not kernels: nothing to release the GIL around
    settings = {"has_openmp", "resolve_threads", "simd_level", "detected_simd", "set_simd_limit"}
    public = {n for n in dir(_core) if not n.startswith("_")} - settings
    assert public == set(gil_calls), "a kernel of voxscale._core is missing from the GIL test"


@pytest.mark.parametrize("name", sorted(gil_kernels(4)))
def test_kernel_releases_the_gil(gil_calls, name):
    fraction, rate, n_calls = _main_thread_runs_during(gil_calls[name])
    assert n_calls >= 3
    assert fraction >= 0.5, (f"{name}: the main thread ran Python code during only "
                             f"{100 * fraction:.0f} % of {n_calls} calls (GIL held?)")


def test_gil_detector_catches_a_held_gil():
    """The measurement itself: code that keeps the GIL (a pure Python loop, which with a 2 s
    switch interval is never interrupted) must be caught."""
    fraction, rate, n_calls = _main_thread_runs_during(
        lambda: sum(i * i for i in range(200000)), seconds=0.1)
    assert n_calls >= 3 and fraction < 0.2, (fraction, n_calls)


def test_busy_python_loop_progresses_while_resample_runs():
    """The issue's own check: resample of a 128³ map (cubic) in a worker thread; a busy loop
    in the main thread keeps most of its speed meanwhile."""
    m = Map(np.random.default_rng(4).standard_normal((128, 128, 128)).astype(np.float32), 1.0)
    fraction, rate, n_calls = _main_thread_runs_during(
        lambda: voxscale.resample(m, m, _rigid(), 1.01, 3, nthreads=1), seconds=0.6)
    assert fraction >= 0.5, f"main thread ran during {100 * fraction:.0f} % of the calls"
    assert rate >= 0.2, f"the main loop ran at {100 * rate:.0f} % of its speed alone"
