"""Files in and out: inputs are opened only when they are regular files, outputs are written
to a private temporary file beside their destination and renamed into place.

A FIFO, a device or a folder given as an input would block or mislead a reader, so every
reader of voxscale checks its input with :func:`require_regular_file` first. Every writer goes
through :func:`atomic_write`: the temporary file gets a random name and is created exclusively
(``O_EXCL``, so a symlink planted under a predictable name is never followed), and the final
rename replaces a symlink at the destination rather than writing through it.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator, Union

from .errors import InputFileError, MissingInputError

__all__ = ["require_regular_file", "atomic_write", "current_umask"]

PathLike = Union[str, "os.PathLike[str]"]

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def require_regular_file(path: PathLike, what: str = "input file") -> Path:
    """Check that ``path`` is a regular file (or a symlink to one) before it is opened.

    Parameters
    ----------
    path : str or os.PathLike
    what : str, optional
        What the file is, for the message ("map file", "model file", ...).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    MissingInputError
        If nothing exists at ``path`` (a dangling symlink included).
    InputFileError
        If it is a folder, FIFO, device or socket, or cannot be inspected.
    """
    p = Path(path)
    try:
        mode = os.stat(p).st_mode  # follows symlinks: a link to a regular file is fine
    except FileNotFoundError:
        raise MissingInputError(errno.ENOENT, f"{what} not found", str(p)) from None
    except OSError as err:
        raise InputFileError(f"{p}: cannot open the {what} ({err.strerror or err})") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise InputFileError(f"{p}: the {what} is {kind}, not a regular file")
    return p


@contextlib.contextmanager
def atomic_write(path: PathLike) -> Iterator[Path]:
    """Write a file under a temporary name and rename it to ``path`` only on success.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Its folder must exist.

    Yields
    ------
    pathlib.Path
        The temporary file (created empty, mode 0644 by the umask) for the writer to fill;
        it keeps the destination's suffix, for writers that choose a format by it.

    Notes
    -----
    The data are flushed to disk before the rename, so a crash leaves either the old file or
    the complete new one. On any exception (KeyboardInterrupt included) the temporary file is
    removed and the destination is untouched.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('hello', ['a.txt'])
    """
    final = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp" + final.suffix,
                                dir=final.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        os.close(fd)
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def current_umask() -> int:
    """The process's file-mode creation mask (read without changing it for long)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
