"""Surveys of many map pairs on a Dask cluster (``voxscale batch``).

Each pair of a table (a CSV file, a :class:`pandas.DataFrame` or a list of dicts) becomes one
task on a dask.distributed cluster: read both maps, scan the target's voxel-scale factor
(:func:`voxscale.scan_voxel_scale`), resample the target onto the reference grid without and
with the correction, and compare the amplitudes of each with the reference's after scaling by
resolution (:func:`voxscale.pipeline.compare_files`), as ``voxscale compare`` does.
Every finished pair is one row of ``results.csv``, appended and synced to disk as soon as it
arrives, so a crash or Ctrl-C loses no finished row; ``results.parquet`` is rewritten from it
(atomically) every ``parquet_interval`` seconds and at the end. A pair that fails (missing
file, corrupt header, no overlap) is a row with status ``error`` and a one-line message; the
batch goes on.

Memory
------
Each task declares the memory it needs to Dask as the worker resource ``MEMORY`` (bytes), so
that a worker never runs more pairs at once than it can hold. The need is estimated from the
map headers alone (:func:`estimate_memory`): ``MEMORY_BASE`` plus ``MEMORY_FACTOR_REF`` × the
float32 size of the reference map plus ``MEMORY_FACTOR_TARGET`` × that of the target. A pair
whose estimate exceeds every worker's ``MEMORY`` is an error row. The local cluster started
by :func:`batch` declares ``MEMORY`` on its workers by itself; the workers of a remote
cluster declare it with ``dask worker --resources MEMORY=...`` (see ``docs/batch.md``). When
no worker declares it, tasks are submitted without the constraint and pairs larger than the
largest worker's memory limit are error rows.

The module imports dask and pandas only when a batch runs, so the rest of voxscale works
without them (``pip install voxscale[batch]`` installs them).
"""
from __future__ import annotations

import contextlib
import logging
import math
import uuid
from pathlib import Path
from typing import Callable, Optional, Union

from ..errors import OptionError, VoxscaleError
from ..pipeline.output import OutputLock, normalised_path
from ..threads import MAX_THREADS
from .cluster import connect, worker_memory
from .pairs import read_pairs
from .results import Results, compact, read_results
from .task import error_row, estimate_memory, map_voxels, run_pair, squash

__all__ = ["batch"]

log = logging.getLogger("voxscale.batch")


def batch(pairs, client=None, *, out=None, scheduler: Optional[str] = None,
          workers: Optional[int] = None, threads_per_task: int = 1, memory_per_worker=None,
          resume: bool = False, force: bool = False,
          progress: Optional[Callable[[int, int, str], None]] = None, base=None,
          parquet_interval: float = 30.0):
    """Measure the voxel-scale factor and amplitude agreement of many map pairs on Dask.

    Parameters
    ----------
    pairs : str, os.PathLike, pandas.DataFrame or sequence of dict
        The pair table (see :func:`read_pairs`): columns ``ref``, ``target`` and optionally
        ``id``, ``ref_model``, ``target_model``, ``d_max``, ``d_min``, ``range_lo``,
        ``range_hi``, ``step``, ``contour``.
    client : distributed.Client, optional
        Run on this client's cluster. Default: connect to ``scheduler``, or start a
        :class:`distributed.LocalCluster` (closed again at the end).
    out : str or os.PathLike, optional
        Folder for ``results.csv`` and ``results.parquet``; default write nothing.
    scheduler : str, optional
        Address of a running scheduler, e.g. ``"tcp://host:8786"`` (ignored with ``client``).
    workers : int, optional
        Worker processes of the local cluster (default: cores // ``threads_per_task``).
    threads_per_task : int, optional
        Threads of the kernels in each task (default 1). The local cluster's workers run one
        task at a time each.
    memory_per_worker : int or str, optional
        Memory limit of each local worker, e.g. ``"4GB"`` (default: the machine's memory
        divided among the workers); 80 % of it is the worker's ``MEMORY`` resource.
    resume : bool, optional
        Keep the rows of an existing ``results.csv`` with status ``ok`` and skip their ids
        (rows with status ``error`` are run again).
    force : bool, optional
        Discard existing results and start again.
    progress : callable, optional
        ``progress(done, total, message)`` after each row, the message counting the pairs
        ok, failed, remaining and skipped (the command line passes its progress bar).
    base : str or os.PathLike, optional
        Folder that relative paths of a DataFrame or dicts are relative to (see
        :func:`read_pairs`).
    parquet_interval : float, optional
        Seconds between rewrites of ``results.parquet`` while running (default 30).

    Returns
    -------
    pandas.DataFrame
        One row per pair id (the table's order, then ids only in earlier results), columns
        :data:`COLUMNS`: ``status`` ``"ok"`` or ``"error"``, ``error`` the message,
        ``best_scale`` ± ``uncertainty`` and ``percent`` from the scan, ``cc_before``/
        ``cc_after`` the correlation at s = 1 and at the best factor, ``r_before``/
        ``r_after`` the amplitude R (%) against the reference after scaling by resolution,
        of the uncorrected and of the corrected target, ``d_max``/``d_min`` the resolution
        range used, ``seconds`` the task's wall time, ``memory_estimate`` the bytes declared
        to Dask, ``worker`` the worker's address.

    Raises
    ------
    VoxscaleError, ValueError, OSError
        If the table is unusable, or ``out`` holds results and neither ``resume`` nor
        ``force`` is given. A failing pair is never an exception but an ``error`` row.
    KeyboardInterrupt
        Re-raised after the finished rows were saved and the pending tasks cancelled.

    Examples
    --------
    The pair table is checked before any cluster starts:

    >>> from voxscale.batch import read_pairs
    >>> [p.id for p in read_pairs([{"ref": "a.mrc", "target": "b.mrc"}], base="/data")]
    ['1']

    On a cluster of your own (not run here: it starts worker processes):

    >>> from distributed import Client, LocalCluster            # doctest: +SKIP
    >>> with LocalCluster(n_workers=2, threads_per_worker=1,     # doctest: +SKIP
    ...                   resources={"MEMORY": 2e9}) as cluster, Client(cluster) as client:
    ...     table = voxscale.batch.batch("pairs.csv", client, out="survey")
    """
    try:
        import distributed  # noqa: F401
        import pandas  # noqa: F401
    except ImportError as err:
        raise VoxscaleError(f"voxscale batch needs dask[distributed] and pandas ({err}); "
                            "pip install 'voxscale[batch]'") from None
    threads_per_task = int(threads_per_task)
    if not 1 <= threads_per_task <= MAX_THREADS:
        raise OptionError(f"threads_per_task = {threads_per_task} is out of range: give 1 to "
                          f"{MAX_THREADS}")
    if (client is not None or scheduler) and (workers is not None
                                              or memory_per_worker is not None):
        log.warning("workers and memory_per_worker apply to a local cluster only; ignored "
                    "with a running scheduler")
    specs = read_pairs(pairs, base=base)
    folder = None if out is None else normalised_path(out)
    lock = None if folder is None else OutputLock(folder).acquire()
    try:
        return _survey(specs, folder, client, scheduler, workers, threads_per_task,
                       memory_per_worker, resume, force, progress, parquet_interval)
    finally:
        if lock is not None:
            lock.release()


def _survey(specs, folder, client, scheduler, workers, threads_per_task, memory_per_worker,
            resume, force, progress, parquet_interval):
    """The survey once the table is read and the output folder locked (see :func:`batch`)."""
    previous = None
    if folder is not None:
        if folder.exists() and not folder.is_dir():
            raise VoxscaleError(f"{folder}: exists and is not a folder")
        existing = folder / "results.csv"
        if existing.exists() and not (resume or force):
            raise VoxscaleError(f"{existing} exists; use --resume to continue that survey or "
                                "--force to start again")
        if existing.exists() and resume and not force:
            previous = compact(read_results(existing))
        elif force:
            for name in ("results.csv", "results.parquet"):
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).unlink()

    done_ok = set()
    if previous is not None:
        by_id = {s.id: s for s in specs}
        changed, unreadable = [], []
        for rec in previous.itertuples(index=False):
            spec = by_id.get(rec.id)
            if rec.status != "ok":
                continue
            if not all(math.isfinite(getattr(rec, c)) for c in ("best_scale", "uncertainty",
                                                                 "percent")):
                unreadable.append(rec.id)  # an "ok" row whose numbers do not parse: run again
                continue
            if spec is not None and (rec.ref, rec.target) != (spec.ref, spec.target):
                changed.append(rec.id)
                continue
            done_ok.add(rec.id)
        if changed:
            log.warning("%d pair(s) name other maps than in the earlier results and are run "
                        "again: %s", len(changed), ", ".join(changed[:10])
                        + (", ..." if len(changed) > 10 else ""))
        if unreadable:
            log.warning("%d earlier ok row(s) have numbers that cannot be read and are run "
                        "again: %s", len(unreadable), ", ".join(unreadable[:10]))
        # keep earlier ok rows and those of ids not in this table; errors are retried
        keep = previous[previous["id"].isin(done_ok)
                        | ~previous["id"].isin([s.id for s in specs])]
        previous = keep
    todo = [s for s in specs if s.id not in done_ok]

    results = Results(folder, [s.id for s in specs], parquet_interval)
    counts = {"done": 0, "failed": 0}

    def record(row: dict) -> None:
        results.append(row)
        counts["done"] += 1
        counts["failed"] += row["status"] != "ok"
        if progress is not None:
            skipped = f" skipped {len(done_ok)}" if done_ok else ""
            progress(counts["done"], len(todo),
                     f"ok {counts['done'] - counts['failed']} failed {counts['failed']} "
                     f"remaining {len(todo) - counts['done']}{skipped}")

    own = []
    futures = {}
    try:
        if todo and client is None:
            client = connect(scheduler, workers, threads_per_task, memory_per_worker, own)
        results.start(previous)  # only now: a cluster that fails to start leaves no files
        if todo:
            _run(client, todo, threads_per_task, record, futures)
    finally:
        for fut in futures:
            with contextlib.suppress(Exception):
                fut.cancel()
        results.finish()
        for thing in own:
            with contextlib.suppress(Exception):
                thing.close()
    return results.table()


def _run(client, todo, threads_per_task, record, futures) -> None:
    """Estimate, submit and collect; every outcome goes to ``record``."""
    from distributed import as_completed

    memory, limit = worker_memory(client)
    if memory is None:
        log.warning("no worker declares a MEMORY resource (dask worker --resources "
                    "MEMORY=<bytes>); tasks are submitted without memory constraints")
    capacity = memory if memory is not None else limit
    token = uuid.uuid4().hex[:8]
    for spec in todo:
        d = spec.as_dict()
        try:
            estimate = estimate_memory(map_voxels(spec.ref), map_voxels(spec.target))
        except (OSError, ValueError, VoxscaleError) as err:
            record(error_row(d, squash(err)))
            continue
        if capacity is not None and estimate > capacity:
            kind = "MEMORY resource" if memory is not None else "memory limit"
            row = error_row(d, f"needs about {estimate / 1e9:.2f} GB (estimated from the map "
                                f"headers), more than any worker's {kind} "
                                f"({capacity / 1e9:.2f} GB)")
            row["memory_estimate"] = estimate
            record(row)
            continue
        resources = {"MEMORY": estimate} if memory is not None else None
        fut = client.submit(run_pair, d, threads_per_task, key=f"voxscale-pair-{spec.id}-{token}",
                            pure=False, resources=resources)
        futures[fut] = (d, estimate)
    for fut in as_completed(list(futures)):
        d, estimate = futures[fut]
        try:
            row = fut.result()
        except Exception as err:  # noqa: BLE001 - a lost worker or task: an error row
            name = type(err).__name__
            hint = " (the worker died: out of memory?)" if name == "KilledWorker" else ""
            row = error_row(d, f"task failed on the cluster{hint}: {squash(err)}")
        row["memory_estimate"] = estimate
        record(row)
        fut.release()
        del futures[fut]
