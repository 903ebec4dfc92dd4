"""Reading and writing density maps in the MRC2014 / CCP4 format.

Conventions (docs/method.md §2)
---------------------------------
* ``Map.data`` is a float32, C-contiguous array of shape ``(nz, ny, nx)``: x runs fastest in
  memory. Files stored in another axis order (header fields ``mapc``, ``mapr``, ``maps`` other
  than 1, 2, 3) are transposed once, when they are read.
* ``voxel_size`` and ``origin`` are float64 arrays in x, y, z order, in Å. Voxel
  ``(ix, iy, iz)`` (that is ``data[iz, iy, ix]``) sits at ``origin + (ix*vx, iy*vy, iz*vz)``.

How the header is interpreted
-----------------------------
* Voxel size: ``cella / (mx, my, mz)`` (x, y, z), as mrcfile's ``voxel_size``.
* Axis order: the columns of the stored array (its fastest axis) run along physical axis
  ``mapc`` (1 = x, 2 = y, 3 = z), the rows along ``mapr``, the sections along ``maps``.
* Origin: the MRC2014 ``origin`` field (x, y, z, Å) when any of its components is non-zero,
  otherwise ``nstart × voxel size``. ``nxstart``, ``nystart`` and ``nzstart`` are the indices of
  the first column, row and section, so they belong to the physical axes ``mapc``, ``mapr``
  and ``maps``. This is the rule of ChimeraX and of most EM software; CCP4 programs read only
  ``nstart``, which is why :meth:`Map.write` fills in both when it can.
* Modes 0 (int8), 1 (int16), 2 (float32), 6 (uint16) and 12 (float16) are read as float32.
  Complex modes (3, 4) and any other mode raise :class:`~voxscale.errors.MapFormatError`.
* Plain, gzip and bzip2 files are accepted (detected from their content, as ``mrcfile.open``
  does).

The header is parsed by mrcfile (its byte-order detection included) and every field is checked
before any data are read. The data block is then read from the (decompressed) stream, never
more bytes than the file really holds, so a header that declares absurd sizes costs neither
time nor memory. ``mrcfile.open`` itself is not used for reading because it allocates
whatever extended-header size the header declares and decompresses gzip files twice. Every
problem with a file is a :class:`~voxscale.errors.MapFormatError` whose message starts with the
file's path and names the offending field.

Maps are written through mrcfile (see :meth:`Map.write`).
"""
from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import io
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import mrcfile
import mrcfile.utils
import numpy as np
from mrcfile.mrcinterpreter import MrcInterpreter

from ..errors import MapFormatError
from ..files import atomic_write, require_regular_file
from .map import Map

__all__ = ["MapHeader", "read_map", "read_map_header", "write_map"]

PathLike = Union[str, "os.PathLike[str]"]

_HEADER_BYTES = 1024
_MAP_ID_OFFSET = 208
_READ_CHUNK = 1 << 22  # 4 MiB: bounds the memory spent on a stream shorter than declared
_DENSITY_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}
_COMPLEX_MODES = {3: "complex int16", 4: "complex float32"}
_NSTART_TOLERANCE = 1e-4  # voxels

@dataclass(frozen=True)
class MapHeader:
    """What a map file's header says, read without its data.

    Attributes
    ----------
    path : pathlib.Path
    shape : tuple of int
        (nz, ny, nx) after transposition to the standard axis order.
    voxel_size, origin : numpy.ndarray
        x, y, z in Å.
    mode : int
        MRC data mode.
    """

    path: Path
    shape: tuple
    voxel_size: np.ndarray
    origin: np.ndarray
    mode: int

    @property
    def n_voxels(self) -> int:
        """int : nx·ny·nz."""
        return int(np.prod(self.shape, dtype=object))

    @property
    def float32_bytes(self) -> int:
        """int : Bytes of the map once read (float32)."""
        return 4 * self.n_voxels


def read_map_header(path: PathLike) -> MapHeader:
    """Read and check only the header of a map file (no data, negligible memory).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MapHeader

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    voxscale.errors.MapFormatError
        If the header is not that of a readable density map.
    """
    path = require_regular_file(path, "map file")
    stream, compressed = _open_content(path)
    with stream:
        try:
            raw = stream.read(_HEADER_BYTES)
        except (EOFError, OSError, zlib.error) as err:
            if not compressed:
                raise
            raise MapFormatError(f"{path}: compressed file is truncated or corrupt ({err})") from None
    if len(raw) < _HEADER_BYTES:
        raise MapFormatError(f"{path}: not an MRC map file: its content is {len(raw)} bytes "
                             f"long, shorter than the {_HEADER_BYTES}-byte MRC header")
    header, _ = _parse_header(raw)
    try:
        layout = _layout_from_header(header)
    except _HeaderProblem as err:
        raise MapFormatError(f"{path}: {err}") from None
    if not compressed:
        needed = _HEADER_BYTES + layout.nsymbt + layout.data_bytes
        size = path.stat().st_size
        if size < needed:
            raise MapFormatError(
                f"{path}: data shorter than the header declares (file truncated, or header "
                f"sizes wrong): it needs {needed} bytes, the file has {size}")
    shape = tuple(layout.stored_shape[i] for i in layout.to_zyx)
    return MapHeader(path, shape, layout.voxel_size, layout.origin, int(header.mode))


def read_map(path: PathLike) -> Map:
    """Read a density map file; same as :meth:`Map.read`.

    Parameters
    ----------
    path : str or os.PathLike
        An MRC2014 / CCP4 map file (plain, ``.gz`` or ``.bz2``).

    Returns
    -------
    Map
        The map, data (nz, ny, nx) float32, voxel size and origin x, y, z in Å.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    voxscale.errors.MapFormatError
        If the file is not a readable density map: not an MRC file, truncated or corrupt,
        inconsistent header (dimensions, mode, axis order, voxel size, origin), complex or
        unknown mode, non-finite values. The message starts with the path and names the
        problem.
    voxscale.errors.InputFileError
        If the path is not a regular file (a folder, a FIFO).
    """
    path = require_regular_file(path, "map file")
    data, voxel_size, origin = _read_map_arrays(path)
    try:
        return Map(data, voxel_size, origin)
    except ValueError as err:
        raise MapFormatError(f"{path}: {err}") from None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

class _HeaderProblem(ValueError):
    """A header field is invalid (the message names it); converted to MapFormatError."""


class _MainHeaderParser(MrcInterpreter):
    """mrcfile's parser of the 1024-byte main header, byte-order detection included.

    Permissive, so that problems are warnings and are judged by :func:`_layout_from_header`.
    The extended header is not read: its declared size is checked against the file first.
    """

    def __init__(self, raw: bytes):
        super().__init__(permissive=True)
        self._read_only = True
        self._iostream = io.BytesIO(raw)
        self._read(header_only=True)

    def _read_extended_header(self) -> None:
        self._extended_header = np.empty(0, dtype="V1")


@dataclass(frozen=True)
class _Layout:
    """What a validated header says about the file: everything needed to read the data."""

    dtype: np.dtype
    stored_shape: tuple[int, int, int]  # (sections, rows, columns) as stored
    to_zyx: tuple[int, int, int]  # transpose of the stored array giving (z, y, x)
    nsymbt: int
    voxel_size: np.ndarray
    origin: np.ndarray

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.stored_shape, dtype=object)) * self.dtype.itemsize


def _parse_header(raw: bytes):
    """Parse a main header with mrcfile; return it and mrcfile's complaints (strings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        header = _MainHeaderParser(raw).header
    notes = [str(w.message) for w in caught if "Map ID" not in str(w.message)]
    return header, notes


def _layout_from_header(header) -> _Layout:
    """Check every header field the reader relies on; raise _HeaderProblem naming the field."""
    ncrs = (int(header.nx), int(header.ny), int(header.nz))
    if min(ncrs) < 1:
        raise _HeaderProblem(f"dimensions nx, ny, nz = {ncrs} must all be positive")

    mode = int(header.mode)
    if mode in _COMPLEX_MODES:
        raise _HeaderProblem(f"complex mode {mode} ({_COMPLEX_MODES[mode]}) cannot be a density")
    if mode not in _DENSITY_MODES:
        raise _HeaderProblem(f"unsupported or unknown data mode {mode} (readable modes: "
                             + ", ".join(f"{m} {n}" for m, n in _DENSITY_MODES.items()) + ")")

    nsymbt = int(header.nsymbt)
    if nsymbt < 0:
        raise _HeaderProblem(f"extended header size nsymbt = {nsymbt} is negative")

    axes = (int(header.mapc), int(header.mapr), int(header.maps))
    if sorted(axes) != [1, 2, 3]:
        raise _HeaderProblem(
            f"axis order mapc, mapr, maps = {axes} is not a permutation of 1, 2, 3")

    ispg, mz = int(header.ispg), int(header.mz)
    if mrcfile.utils.spacegroup_is_volume_stack(ispg) and mz != ncrs[2]:
        raise _HeaderProblem(f"space group ispg = {ispg} with nz = {ncrs[2]}, mz = {mz} marks a "
                             "stack of volumes; only a single volume can be read")

    sampling = np.array([int(header.mx), int(header.my), mz], dtype=np.float64)
    cella = np.array([float(header.cella.x), float(header.cella.y), float(header.cella.z)])
    with np.errstate(divide="ignore", invalid="ignore"):
        voxel_size = cella / sampling
    if not (np.all(sampling > 0) and np.all(np.isfinite(voxel_size)) and np.all(voxel_size > 0)):
        raise _HeaderProblem(
            f"voxel size = cella / (mx, my, mz) = {tuple(cella.tolist())} / "
            f"{tuple(sampling.astype(int).tolist())} must be positive and finite")

    origin = np.array([float(header.origin.x), float(header.origin.y), float(header.origin.z)])
    if not np.all(np.isfinite(origin)):
        raise _HeaderProblem(f"origin field {tuple(origin.tolist())} is not finite")
    if not np.any(origin):
        # nxstart, nystart, nzstart index columns, rows, sections: put each on its axis.
        nstart_xyz = np.zeros(3)
        for axis, start in zip(axes, (header.nxstart, header.nystart, header.nzstart)):
            nstart_xyz[axis - 1] = int(start)
        origin = nstart_xyz * voxel_size

    # The stored array is (sections, rows, columns) = physical axes (maps, mapr, mapc);
    # output axis j of (z, y, x) is physical axis 3 - j.
    stored_axes = axes[::-1]
    to_zyx = tuple(stored_axes.index(3 - j) for j in range(3))
    return _Layout(dtype=mrcfile.utils.data_dtype_from_header(header),
                   stored_shape=ncrs[::-1], to_zyx=to_zyx, nsymbt=nsymbt,
                   voxel_size=voxel_size, origin=origin)


def _open_content(path: Path):
    """Open a binary stream of the file's content, decompressing gzip or bzip2.

    Compression is detected as ``mrcfile.open`` does: from the magic bytes, unless the
    file has the 'MAP ' identifier of an uncompressed MRC file. Returns (stream, compressed).
    """
    with open(path, "rb") as fh:
        start = fh.read(_MAP_ID_OFFSET + 4)
    if start[_MAP_ID_OFFSET:] != b"MAP ":
        if start[:2] == b"\x1f\x8b":
            return gzip.open(path, "rb"), True
        if start[:3] == b"BZh":
            return bz2.open(path, "rb"), True
    return open(path, "rb"), False


def _read_up_to(stream, nbytes: int, known: bool = False) -> bytearray:
    """Read nbytes, or fewer at the end of the stream; memory grows only with what is read,
    unless the stream is ``known`` to hold them (a plain file): then the buffer is allocated
    once at its size (a grown one ends up to 1/16 larger than the map, and copied)."""
    if known:
        buf = bytearray(nbytes)
        view, done = memoryview(buf), 0
        while done < nbytes:
            got = stream.readinto(view[done:done + _READ_CHUNK])
            if not got:
                break
            done += got
        view.release()
        del buf[done:]
        return buf
    buf = bytearray()
    while len(buf) < nbytes:
        chunk = stream.read(min(_READ_CHUNK, nbytes - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _skip(stream, nbytes: int, compressed: bool) -> int:
    """Move past nbytes of the stream (fewer at its end); return how many were passed."""
    if nbytes <= 0:
        return 0
    if not compressed:
        start = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(min(start + nbytes, end))
        return stream.tell() - start
    passed = 0
    while passed < nbytes:
        chunk = stream.read(min(_READ_CHUNK, nbytes - passed))
        if not chunk:
            break
        passed += len(chunk)
    return passed


def _read_map_arrays(path: Path):
    """Read and check a (regular) map file; return (data (z, y, x) float32, voxel_size,
    origin)."""

    def fail(problem: str, notes=()) -> MapFormatError:
        extra = f" (header notes: {'; '.join(notes)})" if notes else ""
        return MapFormatError(f"{path}: {problem}{extra}")

    stream, compressed = _open_content(path)
    with stream:
        try:
            raw = stream.read(_HEADER_BYTES)
            if len(raw) < _HEADER_BYTES:
                raise fail(f"not an MRC map file: its content is {len(raw)} bytes long, "
                           f"shorter than the {_HEADER_BYTES}-byte MRC header")
            header, notes = _parse_header(raw)
            not_mrc = "" if raw[_MAP_ID_OFFSET:_MAP_ID_OFFSET + 3] == b"MAP" else (
                f"not an MRC map file (no 'MAP ' identifier at byte {_MAP_ID_OFFSET}): ")
            try:
                layout = _layout_from_header(header)
            except _HeaderProblem as err:
                raise fail(not_mrc + str(err), notes) from None

            needed = layout.nsymbt + layout.data_bytes
            available = None if compressed else os.fstat(stream.fileno()).st_size - _HEADER_BYTES
            if available is None or available >= needed:
                # the extended header is skipped, never held: whatever size it declares, it
                # costs no memory (and, in a plain file, no time)
                skipped = _skip(stream, layout.nsymbt, compressed)
                body = _read_up_to(stream, layout.data_bytes, known=not compressed) \
                    if skipped == layout.nsymbt \
                    else b""
                available = skipped + len(body)
            if available < needed:
                raise fail(
                    f"{not_mrc}data shorter than the header declares (file truncated, or header "
                    f"sizes wrong): nx, ny, nz = {layout.stored_shape[::-1]} voxels of mode "
                    f"{int(header.mode)} ({layout.dtype.itemsize} bytes each) plus nsymbt = "
                    f"{layout.nsymbt} extended-header bytes need {needed} bytes after the "
                    f"{_HEADER_BYTES}-byte header, but only {available} follow it", notes)
            longer = bool(stream.read(1))
        except (EOFError, OSError, zlib.error) as err:
            if not compressed:
                raise
            raise fail(f"compressed file is truncated or corrupt ({err})") from None

    if longer:
        notes.append("the file is longer than its header declares; the extra bytes are ignored")
    if not_mrc:
        notes.append(f"no 'MAP ' identifier at byte {_MAP_ID_OFFSET}; read as MRC anyway")
    for note in notes:
        warnings.warn(f"{path}: {note}", RuntimeWarning, stacklevel=3)

    stored = np.frombuffer(body, dtype=layout.dtype,
                           count=int(np.prod(layout.stored_shape))).reshape(layout.stored_shape)
    data = np.require(stored.transpose(layout.to_zyx), dtype=np.float32,
                      requirements=["C", "A", "W"])
    return data, layout.voxel_size, layout.origin


def write_map(map: Map, path: PathLike, *, overwrite: bool = True) -> None:
    """Write a map as an MRC2014 file (mode 2, float32), gzip-compressed for ``.gz``.

    See :meth:`voxscale.Map.write` for the header written. The file is written through
    :func:`voxscale.files.atomic_write`, so an interrupted write never leaves a truncated map
    under ``path``.

    Parameters
    ----------
    map : Map
    path : str or os.PathLike
    overwrite : bool, optional
        Replace an existing file (default); if False and ``path`` exists,
        :class:`FileExistsError` is raised and nothing is written.
    """
    path = Path(path)
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST,
                              "map file exists (pass overwrite=True to replace it)", str(path))
    compression = "gzip" if path.name.lower().endswith(".gz") else None
    with atomic_write(path) as tmp:
        with mrcfile.new(tmp, compression=compression, overwrite=True) as mrc:
            mrc.set_data(map.data)  # mode 2; nx, ny, nz = mx, my, mz; statistics
            mrc.voxel_size = tuple(map.voxel_size)  # cella = n * voxel size
            mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 1, 2, 3
            mrc.header.origin = tuple(map.origin)
            mrc.nstart = tuple(map._integral_nstart())
            mrc.add_label("voxscale")
