"""Fitting the target into the reference: placement, rigid fits, the voxel-scale scan.

Modules
-------
points
    The target's fit points (molecular envelope).
optimise
    The quasi-Newton ascent every fit uses.
rotations
    Rotation vectors and angles (scipy), the 24 axis rotations.
rigid
    The reference prepared for scoring (:class:`ReferenceGrid`) and :func:`rigid_fit`.
superpose
    Residue pairs of two models and their Kabsch superposition.
placement
    Initial placement from models or from the maps alone.
scan
    The voxel-scale scan (:func:`scan_voxel_scale`, :class:`ScanOptions`).
anisotropic
    A symmetric 3x3 scale matrix refined with the rigid fit.
"""
from .optimise import ascend
from .placement import Placement, place_by_maps, superpose_models
from .points import ENVELOPE_RESOLUTION, FitPoints, auto_contour, fit_points
from .rigid import FitResult, ReferenceGrid, TransformSummary, rigid_fit
from .rotations import rotation_angle_deg, rotation_from_vector
from .scan import (ScaleSweep, ScanOptions, ScanResult, corrected_target,
                   correction_index_map, refine_peak, resampling_round_trip, scan_voxel_scale,
                   target_coverage)
from .superpose import residue_pairs, superpose

__all__ = ["ascend", "Placement", "place_by_maps", "superpose_models", "ENVELOPE_RESOLUTION",
           "FitPoints", "auto_contour", "fit_points", "FitResult", "ReferenceGrid",
           "TransformSummary", "rigid_fit", "rotation_angle_deg", "rotation_from_vector",
           "ScaleSweep", "ScanOptions", "ScanResult", "corrected_target",
           "correction_index_map", "refine_peak", "resampling_round_trip", "scan_voxel_scale",
           "target_coverage", "residue_pairs", "superpose"]
