"""Reciprocal space: structure factors, resolution shells, amplitude scaling, difference maps
and their peaks (docs/method.md §1 steps 4–6).

Modules
-------
transform
    Structure factors of maps (the Fourier convention of CCP4 and gemmi), low-pass filters.
shells
    Resolution shells of the half-transform and per-shell sums.
scaling
    Amplitude scaling by resolution (k, B; isotropic or anisotropic).
difference
    Vector-difference and real-space difference maps.
peaks
    Peaks of difference maps and their nearest atoms.
resolution
    The resolution range of a comparison, from the signal both maps share.
noise
    A map's noise and resolution from its half maps.
residue_scores
    Per-residue scores of a difference map on a model.
model_map
    The density of an atomic model on a map's grid.
"""
from .difference import (DifferenceResult, compare_amplitudes, difference_map,
                         estimate_resolution, real_space_difference, resampling_floor,
                         vector_difference)
from .model_map import model_map
from .noise import HalfMapNoise, half_map_noise
from .residue_scores import ResidueScore, ResidueScores, residue_scores
from .resolution import ResolutionChoice, signal_resolution
from .peaks import Peak, PeakTable, find_peaks, nearest_atoms
from .scaling import ScalingResult, scale_amplitudes, scale_arrays
from .shells import ShellSums, check_resolution_range, shell_edges, shell_index, shell_sums
from .transform import (StructureFactors, gaussian_smooth, half_transform, low_pass,
                        map_from_half_transform, map_from_structure_factors,
                        structure_factors)

__all__ = ["DifferenceResult", "compare_amplitudes", "difference_map", "estimate_resolution",
           "real_space_difference", "resampling_floor", "vector_difference", "model_map",
           "Peak", "PeakTable", "find_peaks", "nearest_atoms", "ScalingResult",
           "scale_amplitudes", "scale_arrays", "ShellSums", "check_resolution_range",
           "shell_edges", "shell_index", "shell_sums", "StructureFactors", "gaussian_smooth",
           "half_transform", "low_pass", "map_from_half_transform",
           "map_from_structure_factors", "structure_factors", "HalfMapNoise", "half_map_noise",
           "ResidueScore", "ResidueScores", "residue_scores", "ResolutionChoice",
           "signal_resolution"]
