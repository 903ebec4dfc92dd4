"""Tests of voxscale.maps.correlation (Pearson correlation about the mean, sums in double).

Checked against numpy.corrcoef and a direct float64 formula for the weighted version, on data
with a large offset where single-pass float32 sums fail (the test demonstrates that they do).
"""
import pickle

import numpy as np
import pytest

from voxscale import _core, correlation


def offset_pair(n, seed, offset=1e4, rho=0.6):
    """Two float32 arrays of values ~ offset + unit noise with correlation about rho."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    return (offset + x).astype(np.float32), (offset + 0.5 * y).astype(np.float32)


def naive_single_pass_float32(a, b):
    """The textbook one-pass formula accumulated in float32: what the library must not do."""
    n = np.float32(len(a))
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    sa, sb = np.cumsum(a32)[-1], np.cumsum(b32)[-1]
    saa, sbb, sab = np.cumsum(a32 * a32)[-1], np.cumsum(b32 * b32)[-1], np.cumsum(a32 * b32)[-1]
    cov = sab - sa * sb / n
    var_a, var_b = saa - sa * sa / n, sbb - sb * sb / n
    with np.errstate(invalid="ignore"):
        return float(cov / np.sqrt(var_a * var_b))


@pytest.mark.parametrize("n,offset", [(10, 0.0), (1000, 0.0), (200_000, 1e4), (50_000, -3e4)])
def test_matches_numpy_corrcoef(n, offset):
    a, b = offset_pair(n, seed=n, offset=offset)
    expected = np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1]
    assert abs(correlation(a, b) - expected) < 1e-9
    assert abs(_core.pearson(a, b, None, 1) - expected) < 1e-9


def test_large_offset_defeats_naive_float32_sums():
    """The data really are hard: the naive formula is far off, the library is not."""
    a, b = offset_pair(200_000, seed=1)
    expected = np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1]
    naive = naive_single_pass_float32(a, b)
    assert not abs(naive - expected) < 0.05
    assert abs(correlation(a, b) - expected) < 1e-9


def test_weighted_matches_direct_formula():
    a, b = offset_pair(100_000, seed=2)
    w = np.random.default_rng(3).random(a.size).astype(np.float32)
    w[::7] = 0.0
    a64, b64, w64 = (v.astype(np.float64) for v in (a, b, w))
    ma, mb = np.sum(w64 * a64) / w64.sum(), np.sum(w64 * b64) / w64.sum()
    expected = np.sum(w64 * (a64 - ma) * (b64 - mb)) / np.sqrt(
        np.sum(w64 * (a64 - ma) ** 2) * np.sum(w64 * (b64 - mb) ** 2))
    assert abs(correlation(a, b, w) - expected) < 1e-9
    # unit weights are the unweighted correlation; zero weights drop values
    assert abs(correlation(a, b, np.ones_like(a)) - correlation(a, b)) < 1e-12
    keep = w > 0
    mask = keep.astype(np.float32)
    assert abs(correlation(a, b, mask) - correlation(a[keep], b[keep])) < 1e-9
    # integer weights are repetitions
    reps = np.random.default_rng(4).integers(0, 4, 2000)
    a2, b2 = a[:2000], b[:2000]
    assert abs(correlation(a2, b2, reps) -
               np.corrcoef(np.repeat(a2, reps).astype(float), np.repeat(b2, reps))[0, 1]) < 1e-9


def test_known_answers():
    x = np.linspace(-3, 5, 101)
    assert correlation(x, 2 * x + 7) == pytest.approx(1.0, abs=1e-12)
    assert correlation(x, -0.5 * x + 1) == pytest.approx(-1.0, abs=1e-12)
    assert correlation(np.sin(np.arange(200) * 2 * np.pi / 200),
                       np.cos(np.arange(200) * 2 * np.pi / 200)) == pytest.approx(0.0, abs=1e-7)
    # symmetric, and any shape is flattened
    a, b = offset_pair(600, seed=5)
    assert correlation(a, b) == pytest.approx(correlation(b, a), abs=1e-15)
    assert correlation(a.reshape(6, 10, 10), b.reshape(6, 10, 10)) == correlation(a, b)
    # float64 input is converted to float32
    assert correlation(a.astype(np.float64), b.astype(np.float64)) == correlation(a, b)


def test_constant_input_gives_nan():
    a = np.full(100, 3.25, np.float32)
    b = np.random.default_rng(6).random(100).astype(np.float32)
    assert np.isnan(correlation(a, b))
    assert np.isnan(correlation(b, a))
    assert np.isnan(correlation(a, a))
    assert np.isnan(correlation(np.full(100, 1e4, np.float32), b))
    assert np.isnan(correlation(b, b, np.zeros(100)))  # no weight at all
    w = np.zeros(100)
    w[5] = 1.0
    assert np.isnan(correlation(b, b[::-1].copy(), w))  # one point carries all the weight
    assert np.isnan(correlation(b[:1], b[:1]))
    assert np.isnan(_core.pearson(np.zeros(0, np.float32), np.zeros(0, np.float32), None, 1))


def test_negative_weights_rejected():
    a, b = offset_pair(10, seed=7)
    w = np.ones(10)
    w[3] = -1
    with pytest.raises(ValueError, match="weights"):
        correlation(a, b, w)


def test_size_mismatch_rejected():
    with pytest.raises(ValueError):
        correlation(np.ones(5), np.ones(6))
    with pytest.raises(ValueError):
        correlation(np.arange(5.0), np.arange(5.0), np.ones(4))


def test_one_and_two_threads_agree():
    a, b = offset_pair(300_001, seed=8)
    w = np.random.default_rng(9).random(a.size).astype(np.float32)
    for weights in (None, w):
        c1 = correlation(a, b, weights, nthreads=1)
        c2 = correlation(a, b, weights, nthreads=2)
        assert abs(c1 - c2) < 1e-12
    assert abs(correlation(a, b, nthreads=0) - correlation(a, b, nthreads=1)) < 1e-12


def test_unpickled_arrays_are_accepted():
    """Arrays that went through pickle (e.g. multiprocessing) work through the public API."""
    a, b = offset_pair(100, seed=10)
    a2, b2 = pickle.loads(pickle.dumps(a)), pickle.loads(pickle.dumps(b))
    assert correlation(a2, b2) == correlation(a, b)
