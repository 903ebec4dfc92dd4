"""Maps and models as data: the :class:`Map` type, MRC/CCP4 files, atomic models, MTZ output,
interpolation and resampling, correlation. No part of the method lives here.

Modules
-------
map
    The :class:`Map` type (data (nz, ny, nx), voxel size and origin x, y, z in Å).
mrc
    Reading and writing MRC2014/CCP4 files.
models
    Atomic models through gemmi; the one Cα selection of voxscale.
mtz
    Structure factors as MTZ files.
interpolation
    Interpolation at points and resampling onto another grid.
correlation
    Correlation about the mean.
"""
from .correlation import correlation
from .map import Map, relabel_voxel_size
from .models import (CalphaResidue, calpha_residues, check_model_in_map, model_atom_positions,
                     read_model, transform_structure)
from .mrc import MapHeader, read_map, read_map_header, write_map
from .mtz import write_mtz
from .interpolation import (Interpolator, index_map, interpolate, resample, resample_by_index,
                            spline_coefficients)

__all__ = ["correlation", "Map", "relabel_voxel_size", "CalphaResidue", "calpha_residues",
           "check_model_in_map", "model_atom_positions", "read_model", "transform_structure",
           "MapHeader", "read_map", "read_map_header", "write_map", "write_mtz",
           "Interpolator", "index_map", "interpolate", "resample", "resample_by_index",
           "spline_coefficients"]
