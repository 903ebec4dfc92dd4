"""Benchmark of ``voxscale compare`` with and without half maps at 256³ (issue 14).

The 6VXX spike pair of the scan benchmarks (256³ model maps, the target 2 % off in scale and
moved), each map with two half maps of independent noise (0.5 × its σ, low-passed to 3 Å) and
the full map their average. Each run is a fresh process (``compare_files`` on the files, as
``voxscale compare`` runs it), so that its peak RSS (VmHWM of the child) is its own.
Rows, in one session:

- time with half maps against 1.5 × the time without (target: met when under 1.5×);
- peak RSS with half maps against 4 × the bytes of the six maps read (target: under 4×);
- for information, peak RSS without half maps against 4 × the bytes of its two maps.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from test_bench_compare import OWN_PEAK_RSS
from test_bench_scan import SPIKE, THREADS, _harness, make_pair
from voxscale.testing.variants import with_half_maps

ROUNDS = 2
TIME_FACTOR = 1.5
MEMORY_FACTOR = 4.0

_CHILD = OWN_PEAK_RSS + """
import json, sys, time
from voxscale.pipeline.compare import compare_files
from voxscale.pipeline.memory import estimate_bytes
ref, target, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
halves = sys.argv[4:]
estimate = estimate_bytes("compare", ref, target, halves)
options = {}
if halves:
    options = {"ref_halves_paths": halves[:2], "target_halves_paths": halves[2:]}
t0 = time.perf_counter()
r = compare_files(ref, target, nthreads=threads, **options)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_rss": own_peak_rss(), "best_scale": r.scan.best_scale,
    "sigma_source": r.difference.sigma_source, "peaks": len(r.peaks),
    "d_min": r.d_min, "status": r.quality.status, "estimate": estimate}))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    pair = make_pair(SPIKE, 256)
    folder = tmp_path_factory.mktemp("halves256")
    paths = {}
    for role, m, seed in (("ref", pair.ref, 1), ("target", pair.target, 11)):
        full, h1, h2 = with_half_maps(m, 0.5, seed=seed, d_min=3.0)
        for name, x in ((role, full), (f"{role}_h1", h1), (f"{role}_h2", h2)):
            paths[name] = folder / f"{name}.mrc"
            x.write(paths[name])
    return paths


def _run(files, with_halves: bool) -> dict:
    args = [sys.executable, "-c", _CHILD, str(files["ref"]), str(files["target"]), str(THREADS)]
    if with_halves:
        args += [str(files[k]) for k in ("ref_h1", "ref_h2", "target_h1", "target_h2")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1200, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# timed by hand in child processes, so the fixture stays unused
@pytest.mark.filterwarnings("ignore::pytest_benchmark.logger.PytestBenchmarkWarning")
@pytest.mark.benchmark(group="compare")
def test_compare_with_half_maps_256(compare, files):
    results, result_cls, _ = _harness(compare)
    without, with_halves = [], []
    for _ in range(ROUNDS):  # interleaved: the machine's load touches both alike
        without.append(_run(files, False))
        with_halves.append(_run(files, True))
    map_bytes = files["ref"].stat().st_size
    t_without = [r["seconds"] for r in without]
    t_with = [r["seconds"] for r in with_halves]
    name = "compare 256^3 with half maps vs 1.5 x without"
    results[name] = result_cls(name, t_with, [TIME_FACTOR * t for t in t_without], 1.0,
                               note=f"ref = {TIME_FACTOR} x compare without half maps (best "
                                    f"{min(t_without):.2f} s); fresh processes, 2 threads")
    gib = 2.0 ** 30
    rss_with = [r["peak_rss"] / gib for r in with_halves]
    rss_without = [r["peak_rss"] / gib for r in without]
    name = "peak RSS with half maps vs 4 x maps read"
    results[name] = result_cls(name, rss_with, [MEMORY_FACTOR * 6 * map_bytes / gib] * ROUNDS,
                               1.0, note="columns in GiB, not seconds: ours = peak RSS of the "
                                         "process, ref = 4 x the bytes of the 6 MRC files "
                                         f"read ({6 * map_bytes / gib:.2f} GiB); memory "
                                         "guard's estimate "
                                         f"{with_halves[0]['estimate'] / gib:.2f} GiB")
    name = "peak RSS without half maps vs 4 x maps read"
    results[name] = result_cls(name, rss_without, [MEMORY_FACTOR * 2 * map_bytes / gib] * ROUNDS,
                               None, note="columns in GiB: for information (2 maps read)")
    print(f"\n  without half maps: {without[-1]}\n  with half maps:    {with_halves[-1]}")
    for r in without + with_halves:
        assert abs(r["best_scale"] - 1 / 1.02) < 5e-4
    assert with_halves[-1]["sigma_source"] == "half_maps"
    for r in without + with_halves:
        assert r["estimate"] >= r["peak_rss"], "the memory guard's estimate must bound the peak"
    assert np.isfinite(with_halves[-1]["d_min"])
