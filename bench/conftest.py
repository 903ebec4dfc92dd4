"""Benchmark harness: times voxscale beside a scipy/numpy reference and prints the ratios.

Run from the repository root with ``python -m pytest bench -q -s`` (``pytest`` alone runs only
``tests/``, see pyproject.toml). Every benchmark times our kernel with pytest-benchmark's
``benchmark.pedantic`` and the reference in the ``setup`` hook of the same rounds, so the two
alternate call by call and see the same machine load. The table printed at the end of the
session gives, per benchmark, the best time of each and their ratio reference / ours; since
absolute times on a shared machine are noise, only the ratios mean anything.

Environment:

``VOXSCALE_BENCH_STRICT=1``
    Fail a benchmark whose best-time ratio misses its target (default: only report it).
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

STRICT = os.environ.get("VOXSCALE_BENCH_STRICT", "") not in ("", "0")


@dataclass
class Result:
    """One comparison: best and per-round times of ours and of the reference."""

    name: str
    ours: list
    reference: list
    target: Optional[float]
    note: str = ""

    @property
    def ours_best(self) -> float:
        return min(self.ours)

    @property
    def reference_best(self) -> float:
        return min(self.reference)

    @property
    def ratio(self) -> float:
        """Best reference time over best time of ours."""
        return self.reference_best / self.ours_best

    @property
    def paired_median_ratio(self) -> float:
        """Median over rounds of reference / ours, each pair timed back to back."""
        pairs = [r / o for r, o in zip(self.reference, self.ours)]
        return statistics.median(pairs) if pairs else float("nan")

    @property
    def met(self) -> Optional[bool]:
        return None if self.target is None else self.ratio >= self.target


#: Results of the session, in the order the benchmarks ran; printed by pytest_terminal_summary.
RESULTS: dict = {}


@pytest.fixture
def compare(benchmark):
    """``compare(name, ours, reference, *, rounds, target=None, note="")``.

    Runs ``rounds`` rounds; in each, ``reference()`` is timed with ``time.perf_counter`` (in the
    pedantic ``setup`` hook) and then ``ours()`` by pytest-benchmark. One untimed call of
    ``ours`` comes first as warm-up (the reference's first call is timed: the slow references
    are far too slow to run an extra time, and their first call is not special). Returns
    ``(result_of_ours, result_of_reference)`` from the last round, for correctness checks, and
    records the timings in :data:`RESULTS`. With VOXSCALE_BENCH_STRICT=1 a missed target
    fails the test at teardown.
    """

    recorded: list = []

    def run(name: str, ours: Callable, reference: Callable, *, rounds: int,
            target: Optional[float] = None, note: str = ""):
        ref_times: list = []
        ref_out: list = [None]

        def setup():
            t0 = time.perf_counter()
            ref_out[0] = reference()
            ref_times.append(time.perf_counter() - t0)

        ours()  # warm-up: first-touch allocations, thread pool start-up, caches
        if benchmark.disabled:
            # --benchmark-disable: pedantic then runs setup and target once, untimed; time ours
            # by hand in the same interleaving, the last round through pedantic.
            our_times = []

            def timed_ours():
                t0 = time.perf_counter()
                out = ours()
                our_times.append(time.perf_counter() - t0)
                return out

            for _ in range(rounds - 1):
                setup()
                timed_ours()
            our_out = benchmark.pedantic(timed_ours, setup=setup, rounds=1)
        else:
            our_out = benchmark.pedantic(ours, setup=setup, rounds=rounds, warmup_rounds=0,
                                         iterations=1)
            our_times = list(benchmark.stats.stats.data)
        benchmark.extra_info.update(reference_best_s=min(ref_times),
                                    ratio=min(ref_times) / min(our_times), target=target)
        res = Result(name, our_times, ref_times, target, note)
        RESULTS[name] = res
        recorded.append(res)
        return our_out, ref_out[0]

    yield run
    # A missed target fails only with VOXSCALE_BENCH_STRICT=1 (timings here are noisy); it is
    # checked after the test body so that the correctness assertions run first.
    missed = [r for r in recorded if r.met is False]
    if STRICT and missed:
        pytest.fail("; ".join(f"{r.name}: ratio {r.ratio:.2f} below target {r.target:g}"
                              for r in missed))


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.write_sep("=", "voxscale vs reference (ratio = best reference time / best ours)")
    w = max(len(n) for n in RESULTS) + 2
    head = (f"{'benchmark':<{w}}{'ours (s)':>10}{'ref (s)':>10}{'ratio':>9}"
            f"{'med.ratio':>11}{'target':>8}  met?")
    tr.write_line(head)
    tr.write_line("-" * len(head))
    for res in RESULTS.values():
        target = "-" if res.target is None else f"{res.target:.3g}x"
        met = "info" if res.met is None else ("yes" if res.met else "NO")
        tr.write_line(f"{res.name:<{w}}{res.ours_best:>10.4f}{res.reference_best:>10.4f}"
                      f"{res.ratio:>8.2f}x{res.paired_median_ratio:>10.2f}x{target:>8}  {met}")
    notes = [(n, r.note) for n, r in RESULTS.items() if r.note]
    if notes:
        tr.write_line("")
        for name, note in notes:
            tr.write_line(f"  {name}: {note}")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a production-size case, run only with -m slow")


def pytest_collection_modifyitems(config, items):
    """Slow cases (production-size maps) run only when asked for with ``-m slow``."""
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="production-size case: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
