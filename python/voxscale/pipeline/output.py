"""Output folders: every file of a command appears together, or none does.

A command's outputs are written into a private stage, a folder with a random name
(:func:`tempfile.mkdtemp`, mode 0700) beside the output folder, and moved into place only when
every file is complete. If anything fails, or the run is interrupted (SIGINT, SIGTERM), the
stage is removed and the output folder is as it was. A lock beside the output folder refuses a
second run into the same folder while one is running. Existing outputs are replaced only with
``force``; a symlink at an output's name is replaced, never written through.

``--out`` is normalised first (``D/x/../out`` is ``D/out``; ``D/x`` is never created), and
missing parent folders are created only when the outputs are moved into place.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import VoxscaleError
from ..files import atomic_write, current_umask

__all__ = ["OutputDir", "OutputLock", "to_jsonable", "normalised_path"]


def to_jsonable(value):
    """numpy scalars and arrays (nested in dicts, lists, tuples) as plain Python for json.

    Parameters
    ----------
    value : object

    Returns
    -------
    object
        NaN and infinities become None, so the file is strict JSON.

    Examples
    --------
    >>> to_jsonable({"a": np.float32(1.5), "b": [np.nan, np.int64(2)]})
    {'a': 1.5, 'b': [None, 2]}
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def normalised_path(path) -> Path:
    """An output path made absolute and normalised lexically (``..`` and ``.`` removed).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> str(normalised_path("/data/x/../out/"))
    '/data/out'
    """
    return Path(os.path.normpath(os.path.abspath(os.fspath(path))))


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.is_dir():
            return parent
    raise VoxscaleError(f"{path}: no existing folder above it")  # pragma: no cover


class OutputLock:
    """A lock file beside an output folder: one voxscale run writes into a folder at a time.

    The lock is created exclusively (``O_EXCL``) in the nearest existing folder above the
    output folder, named after the output folder's absolute path, and holds the host and the
    process id. A lock left by a process that no longer runs on this host is taken over.

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder (need not exist).

    Raises
    ------
    VoxscaleError
        From :meth:`acquire` when another running process holds the lock.
    """

    def __init__(self, folder):
        self.folder = normalised_path(folder)
        digest = hashlib.sha1(str(self.folder).encode()).hexdigest()[:12]
        self.path = (_existing_ancestor(self.folder)
                     / f".{self.folder.name}.voxscale-lock-{digest}")
        self._held = False

    def acquire(self) -> "OutputLock":
        """Take the lock.

        Returns
        -------
        OutputLock
            self.
        """
        me = f"{socket.gethostname()} {os.getpid()}\n"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if self._stale():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path)
                    continue
                raise VoxscaleError(f"{self.folder}: another voxscale run is writing into it "
                                    f"(lock {self.path}); wait for it to finish, or remove "
                                    "the lock if no such run is left") from None
            except OSError as err:
                raise VoxscaleError(f"{self.folder}: cannot take the output lock {self.path} "
                                    f"({err.strerror or err})") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            self._held = True
            return self
        raise VoxscaleError(f"{self.folder}: cannot take the output lock {self.path}")

    def _stale(self) -> bool:
        """True when the lock names a process of this host that no longer runs."""
        try:
            host, pid = Path(self.path).read_text().split()
            pid = int(pid)
        except (OSError, ValueError):
            return False  # being written, or not ours: do not touch it
        if host != socket.gethostname():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def release(self) -> None:
        """Remove the lock (if this object holds it)."""
        if self._held:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self._held = False

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class OutputDir:
    """The outputs of one command, staged and moved into place together.

    Use it as a context manager around the command's work::

        with OutputDir(args.out, ["scan.json", "scan.png"], force=args.force) as out:
            result = ...                    # the work; nothing written yet
            out.create()                    # the private stage
            out.write_json("scan.json", ...)
            plot(result, out / "scan.png")  # any writer, into the stage

    Leaving the block normally moves every staged file into the output folder; leaving it
    with an exception (KeyboardInterrupt and SystemExit included) removes the stage, and the
    output folder is as it was.

    Parameters
    ----------
    path : str or os.PathLike
        The output folder; normalised (:func:`normalised_path`).
    names : sequence of str
        The files the command may write (only these may be written).
    force : bool, optional
        Allow replacing existing files of those names.

    Raises
    ------
    VoxscaleError
        If the folder is a file, one of the names exists (a dangling symlink counts) and
        ``force`` is False, another run holds the folder's lock, or the outputs cannot be
        written or moved into place.
    """

    def __init__(self, path, names: Sequence[str], *, force: bool = False):
        self.path = normalised_path(path)
        self.names = tuple(names)
        if os.path.lexists(self.path) and not self.path.is_dir():
            raise VoxscaleError(f"{self.path}: exists and is not a folder")
        existing = [n for n in self.names if os.path.lexists(self.path / n)]
        if existing and not force:
            raise VoxscaleError(f"{self.path / existing[0]} exists; use --force to replace it")
        self._lock = OutputLock(self.path)
        self._stage: Optional[Path] = None

    # -- the context ----------------------------------------------------------------------------

    def __enter__(self) -> "OutputDir":
        self._lock.acquire()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None and self._stage is not None:
                self._commit()
        finally:
            self._discard()
            self._lock.release()

    # -- writing --------------------------------------------------------------------------------

    def create(self) -> "OutputDir":
        """Make the private stage (call once all inputs are read and the work is done).

        Returns
        -------
        OutputDir
            self.
        """
        if self._stage is None:
            ancestor = _existing_ancestor(self.path)
            try:
                self._stage = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.voxscale-",
                                                    dir=ancestor))
            except OSError as err:
                raise VoxscaleError(f"{self.path}: cannot write beside it in {ancestor} "
                                    f"({err.strerror or err})") from None
        return self

    def __truediv__(self, name: str) -> Path:
        if self._stage is None:
            raise RuntimeError("OutputDir.create() must be called before files are written")
        if name not in self.names:
            raise RuntimeError(f"{name} is not one of the outputs declared: {self.names}")
        return self._stage / name

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file (UTF-8) into the stage.

        Parameters
        ----------
        name : str
        text : str

        Returns
        -------
        pathlib.Path
            Where it will be once the outputs are moved into place.
        """
        with atomic_write(self / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return self.path / name

    def write_json(self, name: str, obj) -> Path:
        """Write ``obj`` as indented, strict JSON into the stage.

        Parameters
        ----------
        name : str
        obj : object

        Returns
        -------
        pathlib.Path
        """
        return self.write_text(name, json.dumps(to_jsonable(obj), indent=2) + "\n")

    # -- moving into place ----------------------------------------------------------------------

    def _commit(self) -> None:
        staged = sorted(p.name for p in self._stage.iterdir())
        try:
            if not os.path.lexists(self.path):
                # a new folder appears whole: one rename of the stage
                os.chmod(self._stage, 0o777 & ~current_umask())
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.rename(self._stage, self.path)
                self._stage = None
                return
            blocked = [n for n in staged if (self.path / n).is_dir()
                       and not (self.path / n).is_symlink()]
            if blocked:
                raise VoxscaleError(f"{self.path / blocked[0]} is a folder; it cannot be "
                                    "replaced by an output file (nothing was written)")
            for name in staged:  # os.replace replaces a symlink, never writes through it
                os.replace(self._stage / name, self.path / name)
        except OSError as err:
            raise VoxscaleError(f"{self.path}: cannot move the outputs into place "
                                f"({err.strerror or err})") from None

    def _discard(self) -> None:
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None
