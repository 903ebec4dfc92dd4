"""Exceptions raised by voxscale."""


class VoxscaleError(Exception):
    """Base class of every error voxscale raises on purpose."""


class MapFormatError(VoxscaleError, ValueError):
    """A map file cannot be read as a density: the message names the file and the field."""


class ModelFormatError(VoxscaleError, ValueError):
    """A model file cannot be read or holds no usable atoms: the message names the file."""


class GridMismatchError(VoxscaleError, ValueError):
    """Two maps that must share a grid (shape, voxel size, origin) do not."""


class ResolutionRangeError(VoxscaleError, ValueError):
    """A resolution range is not 0 < d_min < d_max (d_max may be None for no limit)."""
