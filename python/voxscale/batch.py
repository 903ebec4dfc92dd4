"""Surveys of many map pairs on a Dask cluster (``voxscale batch``).

Each pair of a table (a CSV file, a :class:`pandas.DataFrame` or a list of dicts) becomes one
task on a dask.distributed cluster: read both maps, scan the target's voxel-scale factor
(:func:`voxscale.scan_voxel_scale`), resample the target onto the reference grid without and
with the correction, and compare the amplitudes of each with the reference's after scaling by
resolution (:func:`voxscale.difference.compare_amplitudes`), as ``voxscale compare`` does.
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
import csv
import errno
import logging
import math
import os
import sys
import time
import types
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from .errors import MapFormatError, VoxscaleError

__all__ = ["batch", "read_pairs", "run_pair", "PairSpec", "estimate_memory", "map_voxels",
           "add_cli", "COLUMNS", "MEMORY_FACTOR_REF", "MEMORY_FACTOR_TARGET", "MEMORY_BASE"]

log = logging.getLogger(__name__)

#: Columns of ``results.csv`` / ``results.parquet`` and of the returned DataFrame, in order.
COLUMNS = ("id", "ref", "target", "status", "error", "best_scale", "uncertainty", "percent",
           "cc_before", "cc_after", "r_before", "r_after", "d_max", "d_min", "seconds",
           "memory_estimate", "worker")
_TEXT_COLUMNS = ("id", "ref", "target", "status", "error", "worker")
_FLOAT_COLUMNS = tuple(c for c in COLUMNS if c not in _TEXT_COLUMNS and c != "memory_estimate")

#: Peak working memory of one pair per byte of the reference map (nx·ny·nz·4 bytes): the
#: resampled targets, the half-transforms, the shell indices and the scaling's reflection
#: arrays all live on the reference grid, and the peak is in the amplitude comparison.
#: Measured with tracemalloc and ru_maxrss on model-map pairs of 96³ to 256³ voxels with
#: unequal boxes and d_min at the Nyquist limit (the worst case; at 2.5 voxels the peak is
#: 40 % of it): about 13-14 × the reference's size plus 1 × the target's, independent of the
#: thread count. Rounded up (see docs/batch.md).
MEMORY_FACTOR_REF = 15.0
#: Peak working memory per byte of the target map (the map and, briefly, its spline
#: coefficients).
MEMORY_FACTOR_TARGET = 2.0
#: Fixed part of a task's estimate, bytes (modules loaded by the task, models, temporaries).
MEMORY_BASE = 64 * 2**20

_OPTION_COLUMNS = ("ref_model", "target_model", "d_max", "d_min", "range_lo", "range_hi",
                   "step", "contour")
_KNOWN_COLUMNS = ("id", "ref", "target") + _OPTION_COLUMNS
_MAX_MESSAGE = 600


# --------------------------------------------------------------------------------------------
# The pair table
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairSpec:
    """One row of the pair table, validated; paths absolute.

    Attributes
    ----------
    id : str
    ref, target : str
        Map paths.
    ref_model, target_model : str or None
        Model paths.
    d_max, d_min : float or None
        Resolution range of the amplitude statistics (Å); default no low limit and, as in
        ``voxscale compare``, the resolution where the FSC of the reference and the corrected
        target falls below 0.143 (:func:`voxscale.difference.estimate_resolution`).
    range_lo, range_hi, step : float
        Scan range and finest step.
    contour : float or None
        Target contour level of the fit points.
    """

    id: str
    ref: str
    target: str
    ref_model: Optional[str] = None
    target_model: Optional[str] = None
    d_max: Optional[float] = None
    d_min: Optional[float] = None
    range_lo: float = 0.95
    range_hi: float = 1.05
    step: float = 0.002
    contour: Optional[float] = None

    def as_dict(self) -> dict:
        """dict : The fields as a plain dict (what a task receives)."""
        return dict(self.__dict__)


def _cell(value) -> Optional[str]:
    """A table cell as stripped text, or None when empty / missing."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip()
    return text or None


def read_pairs(pairs, *, base=None) -> list:
    """Read and validate a pair table.

    Parameters
    ----------
    pairs : str, os.PathLike, pandas.DataFrame or sequence of dict
        A CSV file with columns ``ref``, ``target`` and optionally ``id``, ``ref_model``,
        ``target_model``, ``d_max``, ``d_min``, ``range_lo``, ``range_hi``, ``step``,
        ``contour`` (empty cells take the defaults), or the same as a DataFrame or as dicts.
    base : str or os.PathLike, optional
        Folder that relative paths are relative to: default the CSV file's folder, or the
        current folder for a DataFrame or dicts.

    Returns
    -------
    list of PairSpec
        In table order. A missing ``id`` is the row number (1 for the first row).

    Raises
    ------
    FileNotFoundError
        If the CSV file does not exist.
    VoxscaleError
        If the table cannot be read, lacks ``ref`` or ``target``, has an empty ``ref`` or
        ``target`` cell, a value that is not a number, an invalid range or duplicate ids.
        The message names the file, row and column.
    """
    import pandas as pd

    if isinstance(pairs, (str, os.PathLike)):
        source = Path(pairs)
        if not source.exists():
            raise FileNotFoundError(errno.ENOENT, "pair table not found", str(source))
        if not source.is_file():
            raise VoxscaleError(f"{source}: not a regular file")
        try:
            table = pd.read_csv(source, dtype=str, keep_default_na=False,
                                skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise VoxscaleError(f"{source}: cannot read as a CSV table ({_squash(err)})") from None
        rows = table.to_dict("records")
        columns = list(table.columns)
        where = str(source)
        folder = Path(base) if base is not None else source.resolve().parent
    else:
        if isinstance(pairs, pd.DataFrame):
            columns = list(pairs.columns)
            rows = pairs.to_dict("records")
        else:
            rows = [dict(r) for r in pairs]
            columns = sorted({k for r in rows for k in r})
        where = "pair table"
        folder = Path(base) if base is not None else Path.cwd()

    names = {str(c).strip().lower(): c for c in columns}
    for required in ("ref", "target"):
        if required not in names:
            raise VoxscaleError(f"{where}: no '{required}' column (columns: "
                                f"{', '.join(map(str, columns)) or 'none'}); the table needs "
                                "at least 'ref' and 'target'")
    unknown = [str(names[n]) for n in names if n not in _KNOWN_COLUMNS]
    if unknown:
        log.warning("%s: ignoring unknown column(s) %s (known: %s)", where, ", ".join(unknown),
                    ", ".join(_KNOWN_COLUMNS))
    if not rows:
        raise VoxscaleError(f"{where}: no pairs in the table")

    def path(text: Optional[str]) -> Optional[str]:
        if text is None:
            return None
        p = Path(os.path.expanduser(text))
        return os.path.normpath(p if p.is_absolute() else folder / p)

    specs, seen = [], {}
    for number, raw in enumerate(rows, start=1):
        row = {n: _cell(raw.get(c)) for n, c in names.items()}
        here = f"{where}: row {number}"

        def number_or_none(column: str) -> Optional[float]:
            text = row.get(column)
            if text is None:
                return None
            try:
                value = float(text)
            except ValueError:
                raise VoxscaleError(f"{here}: column {column}: {text!r} is not a number") from None
            if not math.isfinite(value):
                raise VoxscaleError(f"{here}: column {column}: {text!r} is not finite")
            return value

        for required in ("ref", "target"):
            if row.get(required) is None:
                raise VoxscaleError(f"{here}: column {required} is empty")
        ident = row.get("id") or str(number)
        if ident in seen:
            raise VoxscaleError(f"{here}: id {ident!r} already used in row {seen[ident]}")
        seen[ident] = number
        values = {c: number_or_none(c) for c in ("d_max", "d_min", "range_lo", "range_hi",
                                                 "step", "contour")}
        lo = 0.95 if values["range_lo"] is None else values["range_lo"]
        hi = 1.05 if values["range_hi"] is None else values["range_hi"]
        step = 0.002 if values["step"] is None else values["step"]
        if not 0 < lo < 1 < hi:
            raise VoxscaleError(f"{here}: the scan range range_lo..range_hi = {lo}..{hi} must "
                                "be positive and contain 1")
        if not 0 < step < hi - lo:
            raise VoxscaleError(f"{here}: step {step} must be positive and smaller than the "
                                "scan range")
        d_max, d_min = values["d_max"], values["d_min"]
        if d_min is not None and not d_min > 0:
            raise VoxscaleError(f"{here}: d_min {d_min} Å must be positive")
        if d_max is not None and d_min is not None and not d_max > d_min:
            raise VoxscaleError(f"{here}: d_max {d_max} Å must be larger than d_min {d_min} Å")
        specs.append(PairSpec(id=ident, ref=path(row["ref"]), target=path(row["target"]),
                              ref_model=path(row.get("ref_model")),
                              target_model=path(row.get("target_model")), d_max=d_max,
                              d_min=d_min, range_lo=lo, range_hi=hi, step=step,
                              contour=values["contour"]))
    return specs


# --------------------------------------------------------------------------------------------
# Memory estimate from the headers
# --------------------------------------------------------------------------------------------

def map_voxels(path) -> int:
    """Number of voxels of a map file, from its header alone.

    Parameters
    ----------
    path : str or os.PathLike
        MRC/CCP4 map, plain, gzip or bzip2.

    Returns
    -------
    int
        nx·ny·nz.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    voxscale.MapFormatError
        If the header is not a valid density-map header (:func:`voxscale.io.read_map_header`),
        or an uncompressed file is shorter than its header declares (the message starts with
        the path).
    """
    import mrcfile.utils

    from .io import read_map_header

    path = Path(path)
    if path.exists() and not path.is_file():
        raise MapFormatError(f"{path}: not a regular file")
    header = read_map_header(path)
    n = header.n_voxels
    with open(path, "rb") as fh:
        magic = fh.read(3)
    compressed = magic[:2] == b"\x1f\x8b" or magic == b"BZh"
    if not compressed:
        # a lower bound (the extended header is not counted): a truncated file fails here
        # rather than after its memory estimate was taken from the header's sizes
        needed = 1024 + n * mrcfile.utils.dtype_from_mode(header.mode).itemsize
        size = path.stat().st_size
        if size < needed:
            raise MapFormatError(
                f"{path}: data shorter than the header declares (file truncated, or header "
                f"sizes wrong): {header.shape[::-1]} voxels of mode {header.mode} need at "
                f"least {needed} bytes, the file has {size}")
    return int(n)


def estimate_memory(ref_voxels: int, target_voxels: int) -> int:
    """Estimated peak memory (bytes) of one pair's task.

    Parameters
    ----------
    ref_voxels, target_voxels : int
        Voxel counts of the two maps (see :func:`map_voxels`).

    Returns
    -------
    int
        ``MEMORY_BASE + 4 × (MEMORY_FACTOR_REF × ref_voxels + MEMORY_FACTOR_TARGET ×
        target_voxels)``: for two 256³ maps about 1.2 GB.
    """
    return int(MEMORY_BASE + 4 * (MEMORY_FACTOR_REF * int(ref_voxels)
                                  + MEMORY_FACTOR_TARGET * int(target_voxels)))


# --------------------------------------------------------------------------------------------
# The task (runs on a worker)
# --------------------------------------------------------------------------------------------

def _squash(err: BaseException) -> str:
    """An exception as one line, naming the file of an OSError."""
    if isinstance(err, OSError) and err.filename:
        text = f"{err.filename}: {err.strerror or err}"
    else:
        text = str(err) or type(err).__name__
    if not isinstance(err, (VoxscaleError, OSError, ValueError, MemoryError)):
        text = f"{type(err).__name__}: {text}"
    elif isinstance(err, MemoryError):
        text = f"out of memory ({text})"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 3] + "..."


def _blank_row(spec: dict) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(id=spec["id"], ref=spec["ref"], target=spec["target"], status="error", error="")
    return row


def _worker_address() -> str:
    try:
        from distributed import get_worker
        return str(get_worker().address)
    except (ImportError, ValueError):
        return ""


def run_pair(spec: dict, nthreads: int = 1) -> dict:
    """Measure one pair: the task each Dask worker runs. Never raises for a bad pair.

    Parameters
    ----------
    spec : dict
        :meth:`PairSpec.as_dict` of the pair.
    nthreads : int, optional
        Threads of the kernels.

    Returns
    -------
    dict
        A result row (keys :data:`COLUMNS`); ``status`` is ``"ok"``, or ``"error"`` with a
        one-line ``error`` message naming the file or the step and the problem.
    """
    import numpy as np

    from .difference import compare_amplitudes, estimate_resolution
    from .io import read_map
    from .models import read_model
    from .sampling import resample
    from .scan import corrected_target, scan_voxel_scale

    start = time.perf_counter()
    row = _blank_row(spec)
    names = f"{Path(spec['target']).name} against {Path(spec['ref']).name}"
    stage = "reading"
    try:
        if (spec.get("ref_model") is None) != (spec.get("target_model") is None):
            raise VoxscaleError("give both ref_model and target_model, or neither")
        ref, target = read_map(spec["ref"]), read_map(spec["target"])
        ref_model = target_model = None
        if spec.get("ref_model"):
            ref_model, target_model = read_model(spec["ref_model"]), read_model(
                spec["target_model"])
        stage = f"scan of {names}"
        result = scan_voxel_scale(ref, target, ref_model, target_model,
                                  contour=spec.get("contour"), nthreads=nthreads,
                                  scale_range=(spec["range_lo"], spec["range_hi"]),
                                  step=spec["step"])
        stage = f"amplitude statistics of {names}"
        # as 'voxscale compare': the corrected target on the reference grid gives the default
        # resolution limit (FSC 0.143); the uncorrected one is fitted at s = 1
        after = corrected_target(ref, target, result, nthreads=nthreads)
        d_max = spec.get("d_max")
        d_min = spec.get("d_min") or estimate_resolution(ref, after, nthreads=nthreads)
        r_after = compare_amplitudes(ref, after, d_max, d_min, nthreads=nthreads).r_overall
        del after
        unit = result.fits.get(1.0)
        unit_transform = unit.transform if unit is not None else result.transform
        before = resample(target, ref, unit_transform, 1.0, order=3, nthreads=nthreads)
        r_before = compare_amplitudes(ref, before, d_max, d_min, nthreads=nthreads).r_overall
        del before
        row.update(status="ok", best_scale=result.best_scale, uncertainty=result.uncertainty,
                   percent=result.percent, cc_before=result.cc_at_unit, cc_after=result.cc_best,
                   r_before=r_before, r_after=r_after,
                   d_max=None if d_max is None else float(d_max), d_min=float(d_min))
        for key in ("best_scale", "uncertainty", "percent", "cc_before", "cc_after",
                    "r_before", "r_after"):
            row[key] = float(np.float64(row[key]))
    except Exception as err:  # noqa: BLE001 - every failure of a pair is a row, not a crash
        message = _squash(err)
        if stage != "reading":
            message = f"{stage}: {message}"
        row.update(status="error", error=message)
    row["seconds"] = time.perf_counter() - start
    row["worker"] = _worker_address()
    return row


# --------------------------------------------------------------------------------------------
# Results files
# --------------------------------------------------------------------------------------------

def _format(value) -> str:
    """A cell of results.csv: empty for missing, floats exactly (shortest repr)."""
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(float(value))
    return str(value)


def _read_results(path: Path):
    """results.csv as a DataFrame with the standard columns and types (every row).

    Read with the csv module, so that a last line cut short by a crash (too few fields, or an
    unterminated quote) is dropped with a warning instead of making the file unreadable.
    """
    import pandas as pd

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            records = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as err:
        raise VoxscaleError(f"{path}: cannot read the existing results ({_squash(err)}); "
                            "use --force to start again") from None
    if not records:
        return _typed(pd.DataFrame(columns=list(COLUMNS)))
    header, rows = records[0], records[1:]
    if "id" not in header or "status" not in header:
        raise VoxscaleError(f"{path}: not a voxscale results table (no id or status column); "
                            "use --force to start again")
    whole = [r for r in rows if len(r) == len(header)]
    if len(whole) < len(rows):
        log.warning("%s: ignoring %d incomplete line(s) (an interrupted write); those pairs "
                    "are run again", path, len(rows) - len(whole))
    return _typed(pd.DataFrame(whole, columns=header))


def _typed(table):
    """Reindex to COLUMNS and give every column its type."""
    import pandas as pd

    table = table.reindex(columns=list(COLUMNS))
    for column in _TEXT_COLUMNS:
        table[column] = table[column].fillna("").astype(str)
    for column in _FLOAT_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
    table["memory_estimate"] = pd.to_numeric(table["memory_estimate"],
                                             errors="coerce").astype("Int64")
    return table.reset_index(drop=True)


def _compact(table, order=()):
    """The last row of each id, in the given id order first, then the others as they came."""
    table = table[table["id"] != ""]
    last = table.drop_duplicates("id", keep="last").set_index("id", drop=False)
    first = [i for i in order if i in last.index]
    wanted = set(first)
    rest = [i for i in last.index if i not in wanted]
    return last.loc[first + rest].reset_index(drop=True)


class _Results:
    """results.csv (append-only while running, one fsync per row) and results.parquet."""

    def __init__(self, folder: Optional[Path], order, parquet_interval: float):
        self.folder, self.order = folder, list(order)
        self.rows: list = []
        self.parquet_interval = parquet_interval
        self._last_parquet = time.monotonic()
        self._handle = None
        self._parquet_ok = True
        self._started = False

    @property
    def csv(self) -> Path:
        return self.folder / "results.csv"

    @property
    def parquet(self) -> Path:
        return self.folder / "results.parquet"

    def start(self, previous) -> None:
        """Rewrite results.csv from the previous rows (compacted), then open it to append."""
        self.rows = previous.to_dict("records") if previous is not None else []
        self._started = True
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_csv_atomically(self.rows)
        self._handle = open(self.csv, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)

    def _write_csv_atomically(self, rows) -> None:
        tmp = self.folder / ".results.csv.tmp"
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(COLUMNS)
                for row in rows:
                    writer.writerow([_format(row.get(c)) for c in COLUMNS])
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.csv)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def append(self, row: dict) -> None:
        self.rows.append(row)
        if self._handle is None:
            return
        self._writer.writerow([_format(row.get(c)) for c in COLUMNS])
        self._handle.flush()
        os.fsync(self._handle.fileno())
        if time.monotonic() - self._last_parquet >= self.parquet_interval:
            self.write_parquet()

    def table(self):
        import pandas as pd

        frame = pd.DataFrame([{c: _plain(r.get(c)) for c in COLUMNS} for r in self.rows],
                             columns=list(COLUMNS))
        return _compact(_typed(frame), self.order)

    def write_parquet(self) -> None:
        self._last_parquet = time.monotonic()
        if self.folder is None or not self._parquet_ok:
            return
        tmp = self.folder / ".results.parquet.tmp"
        try:
            self.table().to_parquet(tmp, index=False)
            os.replace(tmp, self.parquet)
        except ImportError as err:
            self._parquet_ok = False
            log.warning("results.parquet not written: %s (pip install pyarrow); results.csv "
                        "has every row", _squash(err))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def finish(self) -> None:
        """Close results.csv, rewrite it compacted (last row per id), write the parquet."""
        if not self._started:
            return
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._write_csv_atomically(self.table().to_dict("records"))
        self.write_parquet()


def _plain(value):
    """pandas missing values (NA, NaN) as None, numpy scalars as Python ones."""
    if value is None:
        return None
    try:
        import pandas as pd
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------

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


def _worker_memory(client):
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


# --------------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------------

def batch(pairs, client=None, *, out=None, scheduler: Optional[str] = None,
          workers: Optional[int] = None, threads_per_task: int = 1, memory_per_worker=None,
          resume: bool = False, force: bool = False,
          progress: Union[bool, Callable, None] = None, base=None,
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
    progress : bool or callable, optional
        True draws a progress bar on stderr; a callable is called as
        ``progress(done, failed, remaining, row)`` after each row.
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
    >>> from distributed import Client, LocalCluster            # doctest: +SKIP
    >>> with LocalCluster(n_workers=2, threads_per_worker=1,
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
    if threads_per_task < 1:
        raise ValueError(f"threads_per_task must be at least 1, got {threads_per_task}")
    if (client is not None or scheduler) and (workers is not None
                                              or memory_per_worker is not None):
        log.warning("workers and memory_per_worker apply to a local cluster only; ignored "
                    "with a running scheduler")
    specs = read_pairs(pairs, base=base)
    folder = None if out is None else Path(out)
    previous = None
    if folder is not None:
        if folder.exists() and not folder.is_dir():
            raise VoxscaleError(f"{folder}: exists and is not a folder")
        existing = folder / "results.csv"
        if existing.exists() and not (resume or force):
            raise VoxscaleError(f"{existing} exists; use --resume to continue that survey or "
                                "--force to start again")
        if existing.exists() and resume and not force:
            previous = _compact(_read_results(existing))
        elif force:
            for name in ("results.csv", "results.parquet"):
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).unlink()

    done_ok = set()
    if previous is not None:
        by_id = {s.id: s for s in specs}
        changed = []
        for rec in previous.itertuples(index=False):
            spec = by_id.get(rec.id)
            if rec.status != "ok":
                continue
            if spec is not None and (rec.ref, rec.target) != (spec.ref, spec.target):
                changed.append(rec.id)
                continue
            done_ok.add(rec.id)
        if changed:
            log.warning("%d pair(s) name other maps than in the earlier results and are run "
                        "again: %s", len(changed), ", ".join(changed[:10])
                        + (", ..." if len(changed) > 10 else ""))
        # keep earlier ok rows and those of ids not in this table; errors are retried
        keep = previous[previous["id"].isin(done_ok)
                        | ~previous["id"].isin([s.id for s in specs])]
        previous = keep
    todo = [s for s in specs if s.id not in done_ok]

    results = _Results(folder, [s.id for s in specs], parquet_interval)
    bar = None
    callback = progress if callable(progress) else None
    counts = {"done": 0, "failed": 0}

    def record(row: dict) -> None:
        results.append(row)
        counts["done"] += 1
        counts["failed"] += row["status"] != "ok"
        remaining = len(todo) - counts["done"]
        if bar is not None:
            skipped = f" skipped {len(done_ok)}" if done_ok else ""
            bar.update(counts["done"], f"ok {counts['done'] - counts['failed']} failed "
                                       f"{counts['failed']} remaining {remaining}{skipped}")
        if callback is not None:
            callback(counts["done"], counts["failed"], remaining, row)

    own = []
    futures = {}
    try:
        if todo and client is None:
            client = _connect(scheduler, workers, threads_per_task, memory_per_worker, own)
        results.start(previous)  # only now: a cluster that fails to start leaves no files
        if progress is True:
            from .progress import ProgressBar
            bar = ProgressBar("batch", len(todo))
        if todo:
            _run(client, todo, threads_per_task, record, futures)
    finally:
        for fut in futures:
            with contextlib.suppress(Exception):
                fut.cancel()
        results.finish()
        if bar is not None:
            bar.close()
        for thing in own:
            with contextlib.suppress(Exception):
                thing.close()
    return results.table()


def _connect(scheduler, workers, threads_per_task, memory_per_worker, own):
    """A client of the scheduler at ``scheduler``, or of a new local cluster; both in ``own``."""
    from distributed import Client

    if scheduler:
        try:
            client = Client(scheduler)
        except (OSError, ValueError) as err:
            raise VoxscaleError(f"cannot connect to the Dask scheduler {scheduler}: "
                                f"{_squash(err)}") from None
        own.append(client)
        return client
    try:
        cluster, client = _start_local(workers, threads_per_task, memory_per_worker)
    except (ValueError, VoxscaleError):
        raise
    except Exception as err:  # noqa: BLE001 - distributed raises RuntimeError and others
        raise VoxscaleError(f"cannot start a local Dask cluster: {_squash(err)} (a script "
                            "that calls voxscale.batch must guard its code with "
                            "'if __name__ == \"__main__\":', as multiprocessing requires)"
                            ) from None
    own.extend([client, cluster])
    return client


def _run(client, todo, threads_per_task, record, futures) -> None:
    """Estimate, submit and collect; every outcome goes to ``record``."""
    from distributed import as_completed

    memory, limit = _worker_memory(client)
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
            record(_error_row(d, _squash(err)))
            continue
        if capacity is not None and estimate > capacity:
            kind = "MEMORY resource" if memory is not None else "memory limit"
            row = _error_row(d, f"needs about {estimate / 1e9:.2f} GB (estimated from the map "
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
            row = _error_row(d, f"task failed on the cluster{hint}: {_squash(err)}")
        row["memory_estimate"] = estimate
        record(row)
        fut.release()
        del futures[fut]


def _error_row(spec: dict, message: str) -> dict:
    row = _blank_row(spec)
    row["error"] = message
    return row


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def _cmd_batch(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise VoxscaleError("--workers must be at least 1")
    if args.threads_per_task < 1:
        raise VoxscaleError("--threads-per-task must be at least 1")
    if args.resume and args.force:
        raise VoxscaleError("give --resume or --force, not both")
    try:
        table = batch(args.pairs, out=args.out, scheduler=args.scheduler, workers=args.workers,
                      threads_per_task=args.threads_per_task,
                      memory_per_worker=args.memory_per_worker, resume=args.resume,
                      force=args.force, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"voxscale batch: interrupted; finished rows are in {Path(args.out) / 'results.csv'}"
              "; run again with --resume to continue", file=sys.stderr)
        return 130
    if not args.quiet:
        ok = int((table["status"] == "ok").sum())
        print(f"{len(table)} pairs: {ok} ok, {len(table) - ok} failed; written to "
              f"{Path(args.out) / 'results.csv'} and results.parquet")
    return 0


def add_cli(subparsers) -> None:
    """Add the ``batch`` sub-command to the ``voxscale`` command line.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From :meth:`argparse.ArgumentParser.add_subparsers`.
    """
    p = subparsers.add_parser(
        "batch", help="survey many map pairs on a Dask cluster",
        description="Scan the voxel-scale factor of every pair of PAIRS.csv (columns ref, "
                    "target, optional id, ref_model, target_model, d_max, d_min, range_lo, "
                    "range_hi, step, contour; relative paths relative to the CSV's folder) and "
                    "compare the amplitudes before and after correction, one Dask task per "
                    "pair. Rows go to OUT/results.csv as they finish and to "
                    "OUT/results.parquet. Exit status 0 when the batch ran, even if pairs "
                    "failed (they are rows with status error).")
    p.add_argument("pairs", help="CSV table of the pairs")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="running Dask scheduler, e.g. tcp://host:8786 (default: start a local "
                        "cluster)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the local cluster (default cores // T)")
    p.add_argument("--threads-per-task", type=int, default=1, metavar="T",
                   help="threads of each pair's kernels (default 1)")
    p.add_argument("--memory-per-worker", default=None, metavar="BYTES",
                   help="memory limit of each local worker, e.g. 4GB (default: memory / N)")
    p.add_argument("--resume", action="store_true",
                   help="keep the ok rows of OUT/results.csv and run the rest")
    p.add_argument("--force", action="store_true", help="discard existing results")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(run=_cmd_batch)


class _CallableModule(types.ModuleType):
    """Lets ``voxscale.batch(pairs, ...)`` call :func:`batch` once the module is imported."""

    def __call__(self, *args, **kwargs):
        return batch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
