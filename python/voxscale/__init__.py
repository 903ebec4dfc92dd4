"""voxscale: find and correct voxel-scale errors between cryo-EM maps and compare them properly.

Maps are :class:`Map` objects: float32 data of shape (nz, ny, nx) (x fastest), voxel size and
origin (x, y, z) in Å. See ``DESIGN.md`` of the project for every convention.
"""
from . import _core
from .correlation import correlation
from .errors import MapFormatError, ModelFormatError, VoxscaleError
from .io import Map, read_map
from .models import read_model
from .sampling import Interpolator, interpolate, resample, spline_coefficients
from .sf import (StructureFactors, half_transform, map_from_half_transform,
                 map_from_structure_factors, structure_factors)
from .shells import ShellSums, shell_edges, shell_index, shell_sums

__version__ = "0.1.0"

__all__ = [
    "Map", "read_map", "read_model",
    "resample", "interpolate", "Interpolator", "spline_coefficients",
    "correlation",
    "StructureFactors", "structure_factors", "map_from_structure_factors",
    "half_transform", "map_from_half_transform",
    "ShellSums", "shell_edges", "shell_index", "shell_sums",
    "VoxscaleError", "MapFormatError", "ModelFormatError",
    "has_openmp",
]


def has_openmp() -> bool:
    """Whether the C++ core was built with OpenMP (otherwise its kernels run serially).

    Returns
    -------
    bool
    """
    return bool(_core.has_openmp())
