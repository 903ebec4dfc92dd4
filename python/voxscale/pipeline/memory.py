"""The memory model: what a command needs, estimated from the map headers alone, and the
guard that refuses a command, before any large allocation, when it exceeds a limit
(``--max-memory``). ``voxscale batch`` declares the same estimate to Dask for each pair.

The estimates are multiples of the maps' float32 sizes, fitted to the peak resident memory
(``ru_maxrss``) of fresh processes with about 25 % to spare in the worst cases measured
(2026-12-06, 2 threads; docs/batch.md has the table): ``voxscale compare`` on 256³ pairs and
on a 400³ reference with a 360³ target, with and without models, at the default resolution
and with d_min at the Nyquist limit (the most reflections: the worst case, about 13 × the
reference's size at 400³ on the command line, outputs included), and with half maps (each
half map read adds about 2 × its size); ``voxscale diff`` likewise (12.6 × at Nyquist).
"""
from __future__ import annotations

import os
import re

from ..errors import OptionError, VoxscaleError
from ..maps.mrc import read_map_header

__all__ = ["available_memory", "parse_size", "peak_bytes", "estimate_bytes", "check_memory",
           "BASE_BYTES", "FACTORS", "HALF_MAP_FACTOR"]

#: Interpreter, numpy, gemmi and matplotlib.
BASE_BYTES = 120 * 2**20

#: (reference-grid arrays, target-grid arrays) held at the peak of each command, in float32
#: map sizes. A survey's pair runs the comparison without difference maps: "compare" bounds it.
FACTORS = {"scan": (4.0, 3.0), "diff": (15.0, 1.0), "compare": (15.0, 3.0),
           "absolute": (6.0, 0.0), "info": (2.0, 0.0)}

#: Arrays held per half map read (in its float32 sizes): the map, its share of the noise
#: realisation and of the half-map FSC.
HALF_MAP_FACTOR = 2.5


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable, else physical memory).

    Returns
    -------
    int
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def parse_size(text: str) -> int:
    """Bytes of a size such as "8G", "512M", "1.5GB" or "2000000000".

    Parameters
    ----------
    text : str

    Returns
    -------
    int
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise OptionError(f"memory size {text!r} must look like 8G, 512M or 2000000000")
    power = " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * 1024**power)


def peak_bytes(command: str, ref_voxels: int, target_voxels: int = 0,
               half_map_voxels: int = 0) -> int:
    """Peak memory of a command for maps of these sizes.

    Parameters
    ----------
    command : {"scan", "diff", "compare", "absolute", "info"}
    ref_voxels, target_voxels : int
        Voxel counts of the maps.
    half_map_voxels : int, optional
        Voxel count of all the half maps read, together (``compare`` with half maps).

    Returns
    -------
    int
        Bytes: :data:`BASE_BYTES` + 4 × (reference factor × ref_voxels + target factor ×
        target_voxels + :data:`HALF_MAP_FACTOR` × half_map_voxels), the factors from
        :data:`FACTORS`.
    """
    ref_factor, tgt_factor = FACTORS[command]
    return int(BASE_BYTES + 4 * (ref_factor * int(ref_voxels) + tgt_factor * int(target_voxels)
                                 + HALF_MAP_FACTOR * int(half_map_voxels)))


def estimate_bytes(command: str, ref_path, target_path=None, half_map_paths=()) -> int:
    """Peak memory a command will need, from the map headers only.

    Parameters
    ----------
    command : {"scan", "diff", "compare", "absolute"}
    ref_path, target_path : str or os.PathLike
        Map files (the target is optional for single-map commands).
    half_map_paths : iterable of str or os.PathLike, optional
        Half-map files read as well (``compare`` with half maps).

    Returns
    -------
    int
        Bytes (see :func:`peak_bytes`).
    """
    ref_voxels = read_map_header(ref_path).n_voxels  # the reference first: its errors first
    target_voxels = 0 if target_path is None else read_map_header(target_path).n_voxels
    halves = sum(read_map_header(p).n_voxels for p in half_map_paths)
    return peak_bytes(command, ref_voxels, target_voxels, halves)


def check_memory(command: str, ref_path, target_path=None, *, limit=None,
                 half_map_paths=()) -> int:
    """Refuse a command whose estimated memory exceeds the limit.

    Parameters
    ----------
    command : str
        See :func:`estimate_bytes`.
    ref_path, target_path : str or os.PathLike
    limit : int or str, optional
        Bytes (or a size string); default 80 % of the memory available now.
    half_map_paths : iterable, optional
        See :func:`estimate_bytes`.

    Returns
    -------
    int
        The estimate in bytes.

    Raises
    ------
    VoxscaleError
        If the estimate exceeds the limit.
    """
    half_map_paths = list(half_map_paths)
    need = estimate_bytes(command, ref_path, target_path, half_map_paths)
    cap = int(0.8 * available_memory()) if limit is None else (
        parse_size(limit) if isinstance(limit, str) else int(limit))
    if need > cap:
        raise VoxscaleError(
            f"{command} on {ref_path}{'' if target_path is None else f' and {target_path}'}"
            f"{f' with {len(half_map_paths)} half maps' if half_map_paths else ''} "
            f"needs about {need / 2**30:.2f} GiB, more than the limit of {cap / 2**30:.2f} GiB "
            "(raise it with --max-memory, or crop or bin the maps)")
    return need
