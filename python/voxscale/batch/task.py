"""One pair of a survey: the task a Dask worker runs, and the memory it declares.

The task runs the same pipeline as ``voxscale compare`` (:func:`voxscale.pipeline.compare_files`
without the difference maps) and keeps :func:`voxscale.pipeline.survey_row` of its summary.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import VoxscaleError
from ..fit.scan import ScanOptions
from ..maps.mrc import read_map_header
from ..pipeline.compare import compare_files
from ..pipeline.memory import BASE_BYTES, FACTORS, peak_bytes
from ..pipeline.summary import SURVEY_COLUMNS, SURVEY_QUALITY_COLUMNS, summary, survey_row

__all__ = ["COLUMNS", "run_pair", "estimate_memory", "map_voxels", "MEMORY_FACTOR_REF",
           "MEMORY_FACTOR_TARGET", "MEMORY_BASE", "squash", "error_row"]

#: Columns of ``results.csv`` / ``results.parquet`` and of the returned DataFrame, in order.
COLUMNS = ("id", "ref", "target", "status", "error") + SURVEY_COLUMNS + (
    "seconds", "memory_estimate", "worker") + SURVEY_QUALITY_COLUMNS

#: Peak memory of one pair per byte of the reference and of the target map, and the fixed
#: part: the memory model of ``voxscale compare`` (:data:`voxscale.pipeline.memory.FACTORS`).
MEMORY_FACTOR_REF, MEMORY_FACTOR_TARGET = FACTORS["compare"]
MEMORY_BASE = BASE_BYTES

_MAX_MESSAGE = 600


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
    voxscale.MissingInputError, voxscale.InputFileError
        If the file does not exist or is not a regular file.
    voxscale.MapFormatError
        If the header is not a valid density-map header, or an uncompressed file is shorter
        than its header declares (the message starts with the path).
    """
    return int(read_map_header(path).n_voxels)


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
        target_voxels)``, as :func:`voxscale.pipeline.memory.peak_bytes` for "compare".
    """
    return peak_bytes("compare", ref_voxels, target_voxels)


def squash(err: BaseException) -> str:
    """An exception as one line (at most 600 characters), naming the file of an OSError."""
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


def error_row(spec: dict, message: str) -> dict:
    """A result row with status "error" and a one-line message."""
    row = dict.fromkeys(COLUMNS)
    row.update(id=spec["id"], ref=spec["ref"], target=spec["target"], status="error",
               error=message)
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
    start = time.perf_counter()
    names = f"{Path(spec['target']).name} against {Path(spec['ref']).name}"
    try:
        options = ScanOptions(scale_range=(spec["range_lo"], spec["range_hi"]),
                              step=spec["step"], contour=spec.get("contour"))
        result = compare_files(spec["ref"], spec["target"], ref_model_path=spec.get("ref_model"),
                               target_model_path=spec.get("target_model"),
                               d_max=spec.get("d_max"), d_min=spec.get("d_min"),
                               scan_options=options, difference=False, nthreads=nthreads)
        row = error_row(spec, "")
        row.update(status="ok", **survey_row(summary(result)))
    except VoxscaleError as err:  # unusable input: the message names the file or option
        row = error_row(spec, squash(err))
    except Exception as err:  # noqa: BLE001 - every failure of a pair is a row, not a crash
        row = error_row(spec, f"comparison of {names}: {squash(err)}")
    row["seconds"] = time.perf_counter() - start
    row["worker"] = _worker_address()
    return row
