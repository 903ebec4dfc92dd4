"""Benchmark of the whole voxel-scale scan against a plain scipy scan of the same map pair.

Ours is ``scan_voxel_scale(ref, target, initial_transform=..., nthreads=2)`` with its defaults:
range 0.95–1.05, coarse step 0.01 and then step 0.002 around the coarse maximum, a rigid refit
at every factor, parabola refinement of the peak. The reference is the plain way to do a scan
with scipy: for each of 41 factors (0.95–1.05, step 0.0025), ``scipy.ndimage.affine_transform``
of the whole target box onto the reference grid at that factor through the *known true* rigid
transform (order 1), then a numpy Pearson correlation over the reference voxels above its
contour (mean + 1σ), no refit, and the argmax. The plain scan gets the true pose for free and
does less than ours (no refit, no sub-step peak), so the ratio understates our advantage.

Pairs are model maps at 3 Å (``voxscale.reciprocal.model_map.model_map``) with a known voxel-size error:
the target model is rotated by 10° and shifted, sampled every v/f Å with f = 1.02 and labelled
v (docs/method.md §6), so the correction factor is exactly s = 1/f. 128³: haemoglobin 5ME2; 256³:
the SARS-CoV-2 spike trimer 6VXX. Both need ``../shared/data`` beside the repository and skip
with a reason without it. Run with ``python -m pytest bench/test_bench_scan.py -q -s``; see
bench/README.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi

import voxscale
from voxscale.fit import rotation_from_vector
from voxscale.maps.interpolation import index_map
from voxscale.fit.scan import scan_voxel_scale
from voxscale.maps import relabel_voxel_size, transform_structure
from voxscale.reciprocal.model_map import model_map
MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "models"
HAEMOGLOBIN = "pdb5me2_haemoglobin.pdb"
SPIKE = "pdb6vxx_spike_closed_BIOVIA_reexport.pdb.gz"

THREADS = 2          # ours; scipy.ndimage and numpy run on one thread
RESOLUTION = 3.0     # Å, model maps
REF_VOXEL = 1.1      # Å
TGT_VOXEL = 1.05     # Å, the target's (wrong) header voxel size
TRUE_F = 1.02        # target sampled every TGT_VOXEL / TRUE_F Å
S_TRUE = 1.0 / TRUE_F
PLAIN_FACTORS = 0.95 + 0.0025 * np.arange(41)   # the plain scan's grid, 0.95 ... 1.05

#: Wall-time goals of our scan on 2 cores, and the speed-up goal over the plain scan at 256³.
BUDGET_S = {128: 1.5, 256: 6.0}
SPEEDUP_256 = 5.0
#: Wall-time goals of the map-only scan (issue 13: global search, both directions, matching).
MAP_ONLY_BUDGET_S = {128: 3.0, 256: 6.0}
#: A Python interpreter with an older voxscale installed, for the "before" rows: for example
#: a venv with the release before issue 13 (``pip install voxscale==<old>`` or a worktree).
BEFORE_PYTHON = os.environ.get("VOXSCALE_BENCH_BEFORE")


# -- data ------------------------------------------------------------------------------------

@dataclass
class Pair:
    """A reference / target model-map pair with a known voxel-scale error."""

    label: str
    ref: voxscale.Map
    target: voxscale.Map
    truth: np.ndarray   # x_ref = R·x_tgt + t for target coordinates scaled by S_TRUE
    start: np.ndarray   # initial placement given to the scan: truth off by 1° and ~1.1 Å


def _model(name: str):
    path = MODELS / name
    if not path.exists():
        pytest.skip(f"model not available: {path} not present (expected ../shared/data beside "
                    f"the repository, see its MANIFEST.md)")
    return voxscale.read_model(str(path))


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    return rotation_from_vector(np.radians(degrees) * axis / np.linalg.norm(axis))


def make_pair(name: str, n: int) -> Pair:
    """n³ reference at REF_VOXEL around the model; n³ target of the model moved by T
    (10° about (1, 2, −1) through its centroid, then (3, −2, 4) Å), sampled every
    TGT_VOXEL / TRUE_F Å and labelled TGT_VOXEL (box centre kept)."""
    st = _model(name)
    xyz = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r])
    c = xyz.mean(axis=0)
    shape = (n, n, n)
    ref = model_map(st, voxel_size=REF_VOXEL, shape=shape, origin=c - REF_VOXEL * (n - 1) / 2,
                    d_min=RESOLUTION, nthreads=THREADS)
    applied = np.eye(4)
    applied[:3, :3] = _rotation((1, 2, -1), 10.0)
    applied[:3, 3] = c - applied[:3, :3] @ c + np.array([3.0, -2.0, 4.0])
    ct = applied[:3, :3] @ c + applied[:3, 3]
    spacing = TGT_VOXEL / TRUE_F
    true_target = model_map(transform_structure(st, applied), voxel_size=spacing, shape=shape,
                            origin=ct - spacing * (n - 1) / 2, d_min=RESOLUTION,
                            nthreads=THREADS)
    target = relabel_voxel_size(true_target, TGT_VOXEL)
    truth = np.linalg.inv(applied)
    # A realistic start (as from a model superposition): 1° and (0.8, −0.5, 0.6) Å off.
    off = np.eye(4)
    off[:3, :3] = _rotation((0, 1, 1), 1.0)
    off[:3, 3] = [0.8, -0.5, 0.6]
    return Pair(f"{name.split('_')[0][3:].upper()} {n}^3", ref, target, truth, off @ truth)


@pytest.fixture(scope="module")
def pair_128():
    return make_pair(HAEMOGLOBIN, 128)


@pytest.fixture(scope="module")
def pair_256():
    return make_pair(SPIKE, 256)


# -- the two scans ---------------------------------------------------------------------------

def ours(pair: Pair, nthreads: int = THREADS):
    return lambda: scan_voxel_scale(pair.ref, pair.target, initial_transform=pair.start,
                                    nthreads=nthreads)


def plain_scipy_scan(pair: Pair):
    """The plain scan: returns (argmax factor, correlations at PLAIN_FACTORS)."""
    ref = pair.ref.data
    mask = ref > ref.mean(dtype=np.float64) + ref.std(dtype=np.float64)
    r = ref[mask].astype(np.float64)
    r -= r.mean()
    rr = r @ r
    cc = np.empty(len(PLAIN_FACTORS))
    for k, s in enumerate(PLAIN_FACTORS):
        # index_map: reference (x, y, z) index -> target (x, y, z) index at factor s; reversed
        # for scipy's (z, y, x) order.
        m = index_map(pair.target, pair.ref, pair.truth, float(s))
        out = ndi.affine_transform(pair.target.data, m[::-1, :3][:, ::-1], offset=m[::-1, 3],
                                   output_shape=ref.shape, order=1, mode="constant", cval=0.0)
        t = out[mask].astype(np.float64)
        t -= t.mean()
        cc[k] = (r @ t) / np.sqrt(rr * (t @ t))
    return float(PLAIN_FACTORS[int(np.argmax(cc))]), cc


# -- recording -------------------------------------------------------------------------------

def _harness(compare):
    """conftest's RESULTS table, Result class and STRICT flag, reached through the ``compare``
    closure (so nothing depends on how pytest names the conftest module)."""
    g = compare.__globals__
    return g["RESULTS"], g["Result"], g["STRICT"]


def record_budget(compare, n: int, our_times, scan, at_least: int = 3, *,
                  kind: str = "scan", budget: float = None) -> object:
    """A table row 'our scan vs a wall-time budget': ref (s) is the budget, ratio = budget /
    best time of ours, target 1x (met when the best time is within the budget). The times are
    those of the comparison, plus extra timed runs of ``scan`` up to ``at_least``."""
    results, result_cls, _ = _harness(compare)
    budget = BUDGET_S[n] if budget is None else budget
    our_times = list(our_times)
    while len(our_times) < at_least:
        t0 = time.perf_counter()
        scan()
        our_times.append(time.perf_counter() - t0)
    res = result_cls(f"{kind} {n}^3 vs {budget:g} s budget", our_times,
                     [budget] * len(our_times), 1.0,
                     note=f"ref (s) = the goal: whole {kind} < {budget:g} s on {THREADS} "
                          f"threads")
    results[res.name] = res
    return res


def fail_if_strict(compare, *results):
    _, _, strict = _harness(compare)
    missed = [r for r in results if r.met is False]
    if strict and missed:
        pytest.fail("; ".join(f"{r.name}: ratio {r.ratio:.2f} below target {r.target:g}"
                              for r in missed))


class OtherLoad:
    """Context manager: how many cores *other* processes kept busy meanwhile, on average.

    The machine-wide busy time (/proc/stat) less this process's own CPU time, over the wall
    time. Near 0 the absolute times are clean; at ~1 on a 2-core machine another job shared
    the cores and the times (the budget rows above all) are inflated. ``cores`` is None where
    /proc/stat is unavailable.
    """

    cores = None

    @staticmethod
    def _busy():
        try:
            with open("/proc/stat") as fh:
                f = [int(x) for x in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
        return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own():
        t = os.times()
        return t.user + t.system

    def __enter__(self):
        self._t0, self._b0, self._o0 = time.perf_counter(), self._busy(), self._own()
        return self

    def __exit__(self, *exc):
        b1 = self._busy()
        if self._b0 is not None and b1 is not None:
            wall = time.perf_counter() - self._t0
            self.cores = max(0.0, (b1 - self._b0) - (self._own() - self._o0)) / wall
        return False

    def __str__(self):
        return "n/a" if self.cores is None else f"{self.cores:.2f} of {os.cpu_count()} cores"


def add_load_note(compare, load: OtherLoad, *names):
    results = _harness(compare)[0]
    for name in names:
        results[name].note += f"; other processes used {load} meanwhile"


def describe(pair: Pair, scan, plain_best, plain_cc, times, ref_times) -> str:
    iters = sum(f.iterations for f in scan.fits.values())
    lines = [
        f"  {pair.label}: truth s = 1/{TRUE_F} = {S_TRUE:.6f}",
        f"    ours : s = {scan.best_scale:.6f}  error {scan.best_scale - S_TRUE:+.2e}  "
        f"(uncertainty {scan.uncertainty:.1e}), cc {scan.cc_best:.5f}, "
        f"{len(scan.scales)} factors refitted ({iters} quasi-Newton steps), "
        f"{scan.n_points} fit points, scan.seconds {scan.seconds:.3f} s; "
        f"timed {', '.join(f'{t:.3f}' for t in times)} s",
        f"    scipy: s = {plain_best:.6f}  error {plain_best - S_TRUE:+.2e}  (argmax of "
        f"{len(PLAIN_FACTORS)}, cc {plain_cc.max():.5f}); timed "
        f"{', '.join(f'{t:.2f}' for t in ref_times)} s",
    ]
    return "\n".join(lines)


def check(scan, plain_best, plain_cc):
    # Ours: the issues ask for 0.0005 without noise; it gets ~1e-5 on these pairs.
    assert abs(scan.best_scale - S_TRUE) < 5e-4, scan.best_scale
    assert scan.cc_best > 0.99 and scan.cc_best > scan.cc_at_unit
    # The plain scan can do no better than its 0.0025 grid.
    assert abs(plain_best - S_TRUE) <= 0.0025 / 2 + 1e-9, plain_best
    assert plain_cc.max() > 0.95


# -- benchmarks ------------------------------------------------------------------------------

def scan_vs_plain(compare, pair: Pair, n: int, *, rounds: int, target, note: str):
    """The comparison row, the budget row, the printout and the checks for one pair."""
    name = f"scan {n}^3 vs plain scipy scan"
    with OtherLoad() as load:
        scan, (plain_best, plain_cc) = compare(name, ours(pair), lambda: plain_scipy_scan(pair),
                                               rounds=rounds, target=target, note=note)
        res = _harness(compare)[0][name]
        budget = record_budget(compare, n, res.ours, ours(pair))
    add_load_note(compare, load, name, budget.name)
    print("\n" + describe(pair, scan, plain_best, plain_cc, budget.ours, res.reference))
    print(f"    other processes used {load} during this test")
    check(scan, plain_best, plain_cc)
    fail_if_strict(compare, budget)


PLAIN_NOTE = (f"ours: default coarse-to-fine scan with refits, {THREADS} threads; scipy: 41 x "
              f"affine_transform(order=1) of the whole box at the true pose + masked Pearson, "
              f"1 thread")


@pytest.mark.benchmark(group="scan")
def test_scan_128(compare, pair_128):
    scan_vs_plain(compare, pair_128, 128, rounds=2, target=None,
                  note=f"5ME2 haemoglobin, 3 A; {PLAIN_NOTE}")


@pytest.mark.benchmark(group="scan")
def test_scan_128_threads(compare, pair_128):
    """For information: the same scan on 2 threads against 1 (ratio = speed-up)."""
    name = "scan 128^3 nthreads=2 vs 1"
    with OtherLoad() as load:
        two, one = compare(name, ours(pair_128, 2), ours(pair_128, 1), rounds=3,
                           note="ref = the same scan with nthreads=1; ratio = speed-up")
    add_load_note(compare, load, name)
    res = _harness(compare)[0][name]
    print(f"\n  128^3 scan: nthreads=1 best {res.reference_best:.3f} s, nthreads=2 best "
          f"{res.ours_best:.3f} s, speed-up {res.ratio:.2f}x (scan.seconds {one.seconds:.3f} / "
          f"{two.seconds:.3f} s); other processes used {load} during this test")
    # Threads must not change the answer beyond reduction-order rounding.
    assert abs(one.best_scale - two.best_scale) < 1e-6


@pytest.mark.benchmark(group="scan")
def test_scan_256(compare, pair_256):
    scan_vs_plain(compare, pair_256, 256, rounds=1, target=SPEEDUP_256,
                  note="6VXX spike trimer, 3 A; 1 round (the plain scan takes about a minute); "
                       "as 128^3")


# -- map-only scans, before and after issue 13 -----------------------------------------------

_BEFORE_SCRIPT = """
import json, sys, time
import voxscale
ref, target = voxscale.read_map(sys.argv[1]), voxscale.read_map(sys.argv[2])
times = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    r = voxscale.scan_voxel_scale(ref, target, nthreads=int(sys.argv[4]))
    times.append(time.perf_counter() - t0)
print(json.dumps({"times": times, "best_scale": r.best_scale,
                  "file": voxscale.__file__}))
"""


def before_scan(ref_path: Path, target_path: Path, rounds: int) -> dict:
    """The map-only scan of the older voxscale in ``VOXSCALE_BENCH_BEFORE``, timed inside its
    own process (the scan alone: not the start-up, the import or the reading)."""
    done = subprocess.run([BEFORE_PYTHON, "-c", _BEFORE_SCRIPT, str(ref_path), str(target_path),
                           str(rounds), str(THREADS)], capture_output=True, text=True,
                          timeout=1200, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def map_only(compare, pair: Pair, n: int, folder: Path, *, rounds: int):
    """Our map-only scan (no start: global search, mirror, both directions, matching) against
    its budget and, with VOXSCALE_BENCH_BEFORE set, against the same scan before issue 13."""
    ref_path, target_path = folder / "ref.mrc", folder / "target.mrc"
    pair.ref.write(ref_path)
    pair.target.write(target_path)
    ref, target = voxscale.read_map(ref_path), voxscale.read_map(target_path)
    results, result_cls, _ = _harness(compare)
    scan = lambda: scan_voxel_scale(ref, target, nthreads=THREADS)  # noqa: E731
    last = scan()  # warm-up
    with OtherLoad() as load:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            last = scan()
            times.append(time.perf_counter() - t0)
        budget = record_budget(compare, n, times, scan, kind="map-only scan",
                               budget=MAP_ONLY_BUDGET_S[n])
    add_load_note(compare, load, budget.name)
    print(f"\n  {pair.label} map-only: s = {last.best_scale:.6f}, error "
          f"{last.best_scale - S_TRUE:+.2e} (uncertainty {last.uncertainty:.1e}), "
          f"{last.quality.status} {last.quality.codes}; placement cc {last.placement.cc:.3f}, "
          f"gap {last.placement.gap:.3f}; timed {', '.join(f'{t:.2f}' for t in budget.ours)} s;"
          f" other processes used {load}")
    assert abs(last.best_scale - S_TRUE) < 5e-4 and last.quality.status == "ok"
    if BEFORE_PYTHON:
        with OtherLoad() as load:
            old = before_scan(ref_path, target_path, len(budget.ours))
        name = f"map-only scan {n}^3 vs before issue 13"
        res = result_cls(name, budget.ours, old["times"], None,
                         note=f"ref = the same map-only scan by {old['file']} "
                              f"(VOXSCALE_BENCH_BEFORE); ratio < 1: slower now; other "
                              f"processes used {load} meanwhile")
        results[name] = res
        print(f"    before issue 13: s = {old['best_scale']:.6f}, error "
              f"{old['best_scale'] - S_TRUE:+.2e}; timed "
              f"{', '.join(f'{t:.2f}' for t in old['times'])} s")
    else:
        print("    before issue 13: not timed (set VOXSCALE_BENCH_BEFORE to a Python with the "
              "older voxscale installed)")
    fail_if_strict(compare, budget)


# timed by hand (the "before" scan runs in another process), so the fixture stays unused
@pytest.mark.filterwarnings("ignore::pytest_benchmark.logger.PytestBenchmarkWarning")
@pytest.mark.benchmark(group="scan")
def test_map_only_scan_128(compare, pair_128, tmp_path):
    map_only(compare, pair_128, 128, tmp_path, rounds=3)


# timed by hand (the "before" scan runs in another process), so the fixture stays unused
@pytest.mark.filterwarnings("ignore::pytest_benchmark.logger.PytestBenchmarkWarning")
@pytest.mark.benchmark(group="scan")
def test_map_only_scan_256(compare, pair_256, tmp_path):
    map_only(compare, pair_256, 256, tmp_path, rounds=2)
