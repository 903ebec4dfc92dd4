"""Exceptions raised by voxscale.

Every error voxscale raises on purpose is a :class:`VoxscaleError`; the command line turns
exactly these into one line on stderr and exit status 2, so that anything else (a bug) still
shows its traceback. Each class also derives from the built-in exception a caller would
expect (``ValueError`` for bad values, ``OSError`` for files).
"""
from __future__ import annotations

__all__ = ["VoxscaleError", "MapFormatError", "ModelFormatError", "ModelMismatchError",
           "GridMismatchError",
           "ResolutionRangeError", "OptionError", "InputFileError", "MissingInputError"]


class VoxscaleError(Exception):
    """Base class of every error voxscale raises on purpose."""


class MapFormatError(VoxscaleError, ValueError):
    """A map file cannot be read as a density: the message names the file and the field."""


class ModelFormatError(VoxscaleError, ValueError):
    """A model file cannot be read or holds no usable atoms: the message names the file."""


class ModelMismatchError(ModelFormatError):
    """Two models that are not of one molecule: too few paired residues, or an RMSD after
    superposition far above what a voxel-size error could cause."""


class GridMismatchError(VoxscaleError, ValueError):
    """Two maps that must share a grid (shape, voxel size, origin) do not."""


class ResolutionRangeError(VoxscaleError, ValueError):
    """A resolution range is not 0 < d_min < d_max (d_max may be None for no limit)."""


class OptionError(VoxscaleError, ValueError):
    """An option or parameter value is outside its allowed range: the message names the
    option, the value and what is allowed."""


class InputFileError(VoxscaleError, OSError):
    """An input file cannot be used: not a regular file (a folder, a FIFO, a device) or not
    readable. The message names the file."""


class MissingInputError(InputFileError, FileNotFoundError):
    """An input file does not exist."""
