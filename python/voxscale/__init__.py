"""voxscale: find and correct voxel-scale errors between cryo-EM maps and compare them properly.

Maps are :class:`Map` objects: float32 data of shape (nz, ny, nx) (x fastest), voxel size and
origin (x, y, z) in Å. Transforms map target coordinates into the reference frame,
x_ref = R·x_tgt + t. ``docs/method.md`` of the repository states every convention.

The method (Wang et al., J. Struct. Biol. 214 (2022) 107902): place the target on the
reference (:func:`superpose_models` or :func:`place_by_maps`), scan its voxel-size factor
with a rigid refit at each (:func:`scan_voxel_scale`), resample it corrected onto the
reference grid (:func:`corrected_target`), scale the amplitudes by resolution
(:func:`scale_amplitudes`) and compute the vector-difference map (:func:`difference_map`)
and its peaks (:func:`find_peaks`). :func:`compare` runs all of it.

Subpackages, bottom to top: :mod:`voxscale.maps` (data: maps, models, files, resampling),
:mod:`voxscale.reciprocal` (structure factors, shells, scaling, differences, peaks),
:mod:`voxscale.fit` (placement, rigid fits, the scan), :mod:`voxscale.analysis` (model
expansion, absolute scale, local realignment), :mod:`voxscale.pipeline` (the comparison,
summary, report), :mod:`voxscale.batch` (surveys on Dask) and :mod:`voxscale.cli`;
:mod:`voxscale.testing` makes known-answer test material.
"""
from . import _core
from .errors import (GridMismatchError, InputFileError, MapFormatError, MissingInputError,
                     ModelMismatchError,
                     ModelFormatError, OptionError, ResolutionRangeError, VoxscaleError)
from .fit import (FitResult, Placement, ScanOptions, ScanResult, corrected_target,
                  place_by_maps, rigid_fit, scan_voxel_scale, superpose_models)
from .maps import (Interpolator, Map, correlation, interpolate, read_map, read_map_header,
                   read_model, resample, spline_coefficients, write_mtz)
from .pipeline import CompareResult, compare
from .reciprocal import (Peak, PeakTable, ScalingResult, ShellSums, StructureFactors,
                         difference_map, find_peaks, half_transform, low_pass,
                         map_from_half_transform, map_from_structure_factors,
                         real_space_difference, scale_amplitudes, shell_edges, shell_index,
                         shell_sums, structure_factors, vector_difference)

from ._version import __version__  # noqa: E402

__all__ = [
    "Map", "read_map", "read_map_header", "read_model",
    "resample", "interpolate", "Interpolator", "spline_coefficients",
    "correlation",
    "StructureFactors", "structure_factors", "map_from_structure_factors",
    "half_transform", "map_from_half_transform", "low_pass",
    "ShellSums", "shell_edges", "shell_index", "shell_sums",
    "Placement", "superpose_models", "place_by_maps", "FitResult", "rigid_fit",
    "ScanOptions", "ScanResult", "scan_voxel_scale", "corrected_target",
    "ScalingResult", "scale_amplitudes",
    "difference_map", "vector_difference", "real_space_difference",
    "Peak", "PeakTable", "find_peaks", "write_mtz",
    "CompareResult", "compare",
    "VoxscaleError", "MapFormatError", "ModelFormatError", "ModelMismatchError",
    "GridMismatchError",
    "ResolutionRangeError", "OptionError", "InputFileError", "MissingInputError",
    "has_openmp",
]


def __getattr__(name):
    # voxscale.batch is a subpackage (it needs dask and pandas, imported only when a survey
    # runs); voxscale.batch(...) then calls it, as voxscale.batch.batch(...).
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
