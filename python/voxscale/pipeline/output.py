"""Output folders of the command line: nothing overwritten without ``force``, every file
written through :func:`voxscale.files.atomic_write`, so an interrupted run never leaves a
truncated file behind."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import VoxscaleError
from ..files import atomic_write

__all__ = ["OutputDir", "to_jsonable"]


def to_jsonable(value):
    """numpy scalars and arrays (nested in dicts, lists, tuples) as plain Python for json.

    Parameters
    ----------
    value : object

    Returns
    -------
    object
        NaN and infinities become None, so the file is strict JSON.
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


class OutputDir:
    """A folder receiving a command's outputs.

    Parameters
    ----------
    path : str or os.PathLike
        The folder; created by :meth:`create`, so that a run that fails before writing
        leaves nothing behind.
    names : sequence of str
        The files the command will write.
    force : bool, optional
        Allow replacing existing files of those names.

    Raises
    ------
    VoxscaleError
        If one of the files exists and ``force`` is False, or the folder cannot be made.
    """

    def __init__(self, path, names, *, force: bool = False):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise VoxscaleError(f"{self.path}: exists and is not a folder")
        existing = [n for n in names if (self.path / n).exists()]
        if existing and not force:
            raise VoxscaleError(f"{self.path / existing[0]} exists; use --force to replace it")

    def create(self) -> "OutputDir":
        """Create the folder (call once all inputs are read and the work is done).

        Returns
        -------
        OutputDir
            self.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VoxscaleError(f"{self.path}: cannot create the output folder ({err})") from None
        return self

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file atomically.

        Parameters
        ----------
        name : str
        text : str

        Returns
        -------
        pathlib.Path
        """
        final = self.path / name
        with atomic_write(final) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return final

    def write_json(self, name: str, obj) -> Path:
        """Write ``obj`` as indented, strict JSON, atomically.

        Parameters
        ----------
        name : str
        obj : object

        Returns
        -------
        pathlib.Path
        """
        return self.write_text(name, json.dumps(to_jsonable(obj), indent=2) + "\n")
