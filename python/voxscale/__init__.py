"""voxscale: find and correct voxel-scale errors between cryo-EM maps and compare them properly.

Maps are :class:`Map` objects: float32 data of shape (nz, ny, nx) (x fastest), voxel size and
origin (x, y, z) in Å. Transforms map target coordinates into the reference frame,
x_ref = R·x_tgt + t. See the project's ``DESIGN.md`` for every convention.

The method (Wang et al., J. Struct. Biol. 214 (2022) 107902): place the target on the
reference (:func:`superpose_models` or :func:`place_by_maps`), scan its voxel-size factor
with a rigid refit at each (:func:`scan_voxel_scale`), resample it corrected onto the
reference grid (:func:`corrected_target`), scale the amplitudes by resolution
(:func:`scale_amplitudes`) and compute the vector-difference map (:func:`difference_map`)
and its peaks (:func:`find_peaks`).
"""
from . import _core
from .correlation import correlation
from .difference import difference_map, real_space_difference, vector_difference
from .errors import MapFormatError, ModelFormatError, VoxscaleError
from .fit import FitResult, rigid_fit
from .io import Map, read_map
from .models import read_model
from .mtz import write_mtz
from .peaks import Peak, PeakTable, find_peaks
from .placement import Placement, place_by_maps, superpose_models
from .sampling import Interpolator, interpolate, resample, spline_coefficients
from .scaling import ScalingResult, scale_amplitudes
from .scan import ScanResult, corrected_target, scan_voxel_scale
from .sf import (StructureFactors, half_transform, low_pass, map_from_half_transform,
                 map_from_structure_factors, structure_factors)
from .shells import ShellSums, shell_edges, shell_index, shell_sums

__version__ = "0.1.0"

__all__ = [
    "Map", "read_map", "read_model",
    "resample", "interpolate", "Interpolator", "spline_coefficients",
    "correlation",
    "StructureFactors", "structure_factors", "map_from_structure_factors",
    "half_transform", "map_from_half_transform", "low_pass",
    "ShellSums", "shell_edges", "shell_index", "shell_sums",
    "Placement", "superpose_models", "place_by_maps", "FitResult", "rigid_fit",
    "ScanResult", "scan_voxel_scale", "corrected_target",
    "ScalingResult", "scale_amplitudes",
    "difference_map", "vector_difference", "real_space_difference",
    "Peak", "PeakTable", "find_peaks", "write_mtz",
    "VoxscaleError", "MapFormatError", "ModelFormatError",
    "has_openmp",
]


def __getattr__(name):
    # voxscale.batch is a module (it needs dask and pandas, imported only when it is used);
    # voxscale.batch(...) then calls it, as voxscale.batch.batch(...).
    if name == "batch":
        import importlib
        return importlib.import_module(".batch", __name__)
    raise AttributeError(f"module 'voxscale' has no attribute {name!r}")


def has_openmp() -> bool:
    """Whether the C++ core was built with OpenMP (otherwise its kernels run serially).

    Returns
    -------
    bool
    """
    return bool(_core.has_openmp())
