"""The Dask cluster of a survey: a client of a running scheduler or of a new local cluster,
and the memory its workers declare."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Optional

from ..errors import VoxscaleError
from .task import squash

__all__ = ["connect", "worker_memory"]

log = logging.getLogger("voxscale.batch")


def connect(scheduler, workers, threads_per_task, memory_per_worker, own):
    """A client of the scheduler at ``scheduler``, or of a new local cluster; both in ``own``."""
    from distributed import Client

    if scheduler:
        try:
            client = Client(scheduler)
        except (OSError, ValueError) as err:
            raise VoxscaleError(f"cannot connect to the Dask scheduler {scheduler}: "
                                f"{squash(err)}") from None
        own.append(client)
        return client
    try:
        cluster, client = _start_local(workers, threads_per_task, memory_per_worker)
    except (ValueError, VoxscaleError):
        raise
    except Exception as err:  # noqa: BLE001 - distributed raises RuntimeError and others
        raise VoxscaleError(f"cannot start a local Dask cluster: {squash(err)} (a script "
                            "that calls voxscale.batch must guard its code with "
                            "'if __name__ == \"__main__\":', as multiprocessing requires)"
                            ) from None
    own.extend([client, cluster])
    return client


def _default_workers(threads_per_task: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, threads_per_task))


def _start_local(workers: Optional[int], threads_per_task: int, memory_per_worker):
    """A LocalCluster of worker processes, one thread each, declaring MEMORY; and a Client."""
    from dask.utils import parse_bytes
    from distributed import Client, LocalCluster
    from distributed.system import MEMORY_LIMIT

    n = _default_workers(threads_per_task) if workers is None else int(workers)
    if n < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if memory_per_worker is None:
        limit = int(MEMORY_LIMIT / n)
    else:
        limit = int(parse_bytes(memory_per_worker) if isinstance(memory_per_worker, str)
                    else memory_per_worker)
    # Leave a fifth of each worker's limit for the worker process itself: the nanny
    # restarts a worker that passes 95 % of its limit.
    # The worker processes inherit an ignored SIGINT: Ctrl-C in a terminal reaches the whole
    # process group, and only this process should handle it (saving the rows, closing the
    # cluster), not every worker with a traceback of its own.
    with _sigint_ignored():
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               memory_limit=limit, resources={"MEMORY": int(0.8 * limit)},
                               dashboard_address=":0", silence_logs=logging.ERROR)
    return cluster, Client(cluster)


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore SIGINT while worker processes are started (main thread only; else no-op)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def worker_memory(client):
    """(largest MEMORY resource of a worker or None, largest memory limit or None)."""
    try:
        client.wait_for_workers(1, timeout=120)
    except TimeoutError:
        raise VoxscaleError("no Dask worker joined the scheduler within 120 s (start workers "
                            "with 'dask worker SCHEDULER_ADDRESS')") from None
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    resources = [w.get("resources", {}).get("MEMORY") for w in workers.values()]
    declared = [float(r) for r in resources if r is not None]
    limits = [float(w.get("memory_limit") or 0) for w in workers.values()]
    limits = [x for x in limits if x > 0]
    return (max(declared) if declared else None), (max(limits) if limits else None)


