"""Difference maps (docs/method.md §1 steps 6 and 8).

The vector difference ΔF = F_tgt'·exp(iφ_tgt) − F_ref·exp(iφ_ref) is formed within
[d_max, d_min] after the target's amplitudes were put on the reference's scale
(:mod:`voxscale.reciprocal.scaling`), and transformed back onto the reference grid; the result is in units
of its standard deviation σ over the whole box or over a mask (best the solvent) or, with the
maps' noise from half maps, noise-calibrated: shells weighted by the signal-to-noise of the
difference and the map in z-scores of the propagated noise. The sign is target − reference:
positive density is more in the target.

The real-space difference (both maps normalised to equal σ, optionally low-passed to a common
resolution first) is offered for comparison; it is misleading when the resolutions or B
factors of the maps differ, which is what the scaling removes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import GridMismatchError, VoxscaleError
from ..maps.map import Map, is_constant, mean_std
from ..threads import resolve_threads
from .scaling import SIGNAL_FSC_CAP, SIGNAL_FSC_FLOOR, ScalingResult, scale_reflections
from .shells import (check_resolution_range, resolution_from_fsc,
                     shell_edges, shell_index, shell_sums)
from .transform import (StructureFactors, _sphere_mask, gaussian_smooth_transform,
                        half_grid_frequencies, half_transform, low_pass, low_pass_of_transform,
                        map_from_half_transform, resolution_mask, unique_reflection_mask)

__all__ = ["DifferenceResult", "difference_map", "vector_difference",
           "compare_amplitudes", "real_space_difference", "resampling_floor", "floor_summary",
           "FLOOR_WIDTH",
           "default_d_min", "check_same_grid", "estimate_resolution", "resolution_from_fsc"]


def default_d_min(map: Map) -> float:
    """Nyquist resolution of a map: 2 × its largest voxel size, in Å.

    Parameters
    ----------
    map : Map

    Returns
    -------
    float
    """
    return 2.0 * float(np.max(map.voxel_size))


def estimate_resolution(ref: Map, target: Map, *, threshold: float = 0.143,
                        n_shells: int = 100, nthreads: int = 0) -> float:
    """Resolution (Å) up to which two maps on one grid share signal, from their FSC.

    Used as the default high-resolution limit of the comparison: beyond it the amplitudes
    are noise (or, for maps filtered at their resolution, nothing), and R and the difference
    map would only measure that. The FSC (not mean-subtracted, docs/method.md §2) is computed in
    ``n_shells`` shells equal in 1/d³ up to the Nyquist limit; the limit returned is the
    inner edge of the last shell before the first one below ``threshold``, so that a shell
    that straddles a sharp filter edge is left out (the Nyquist limit if no shell fails).

    Parameters
    ----------
    ref, target : Map
        Maps on the same grid.
    threshold : float, optional
        FSC threshold (default 0.143).
    n_shells : int, optional
        Shells up to Nyquist (default 100).
    nthreads : int, optional

    Returns
    -------
    float
        d in Å.
    """
    nthreads = resolve_threads(nthreads)
    check_same_grid(ref, target)
    nyquist = default_d_min(ref)
    edges = shell_edges(None, nyquist, n_shells)
    shells = shell_index(ref.shape, ref.cell, edges, nthreads=nthreads)
    sums = shell_sums(half_transform(ref, nthreads=nthreads),
                      half_transform(target, nthreads=nthreads), shells, n_shells,
                      nthreads=nthreads)
    return resolution_from_fsc(np.nan_to_num(sums.fsc, nan=0.0), edges, threshold=threshold)


def _triple(v, digits: int) -> tuple:
    return tuple(np.round(np.asarray(v, dtype=np.float64), digits).tolist())


def check_same_grid(ref: Map, target: Map) -> None:
    """Raise GridMismatchError unless both maps share shape, voxel size and origin.

    Parameters
    ----------
    ref, target : Map
    """
    if (ref.shape != target.shape or not np.allclose(ref.voxel_size, target.voxel_size,
                                                     rtol=1e-5)
            or not np.allclose(ref.origin, target.origin, atol=1e-3 * float(ref.voxel_size.min()))):
        raise GridMismatchError(
            f"the target (shape {target.shape}, voxel {_triple(target.voxel_size, 5)} Å, "
            f"origin {_triple(target.origin, 3)} Å) is not on the reference grid (shape "
            f"{ref.shape}, voxel {_triple(ref.voxel_size, 5)} Å, origin "
            f"{_triple(ref.origin, 3)} Å); resample it first, e.g. with 'voxscale scan' "
            "(target_corrected.mrc) or voxscale.resample")


#: A difference whose σ is below this fraction of the reference's is rounding: the maps are
#: the same and the difference map is all zero.
ROUNDING_SIGMA = 1e-5


def _sigma_units(data: np.ndarray, sigma: float) -> np.ndarray:
    """The map divided by σ; a flat map (identical inputs) stays all zero."""
    return (data / sigma).astype(np.float32) if sigma > 0 else np.zeros_like(data)


def _mask_array(mask, shape) -> np.ndarray:
    arr = mask.data if isinstance(mask, Map) else np.asarray(mask)
    if arr.shape != tuple(shape):
        raise ValueError(f"mask has shape {arr.shape}, the maps {tuple(shape)}")
    arr = arr > 0.5 if arr.dtype != bool else arr
    if not arr.any():
        raise ValueError("the mask is empty")
    return arr


@dataclass
class DifferenceResult:
    """A vector-difference map with the scaling it used.

    Attributes
    ----------
    map : Map
        Difference target − reference in σ units.
    scaling : ScalingResult
        Amplitude scaling of the target onto the reference.
    sigma : float
        The σ (in the maps' density units) that the map was divided by (with a resampling
        floor, √(σ² + floor) per voxel); 0 when the maps do not differ in the range (the map
        is then all zero).
    sources : tuple of Map
        The reference and the target the difference was made from (not copied).
    sigma_source : str
        What σ is the standard deviation of: ``"half_maps"`` (the noise from half maps, the
        map in z-scores), ``"mask"`` (the difference over a mask), ``"box"`` (the
        difference over the whole box); :func:`voxscale.compare` names its masks
        ``"solvent"`` or ``"molecule"``.
    weights : list of dict or None
        With half maps: per shell ``d_max``, ``d_min`` (Å), ``weight``,
        ``power_difference`` and ``power_noise``.
    resampling_floor : dict or None
        When the map was divided by √(σ² + floor) (``floor`` of :func:`vector_difference`,
        the local mean square of the resampling error, :func:`resampling_floor`): its width
        (``width_fwhm_d_min``) and the median and largest √floor / σ
        (``rms_over_sigma_median``, ``rms_over_sigma_max``, :func:`floor_summary`) over
        ``floor_region`` (default the σ region); :func:`voxscale.compare` takes them over the
        region of the peaks.
    """

    map: Map
    scaling: ScalingResult
    sigma: float
    sources: tuple = field(repr=False)
    sigma_source: str = "box"
    weights: Optional[list] = None
    resampling_floor: Optional[dict] = None

    # The half transforms are computed from the maps when asked (for MTZ output), not held:
    # two maps' worth of memory through the rest of a comparison.
    @property
    def f_ref(self) -> np.ndarray:
        """numpy.ndarray of complex64 : Half transform of the reference (computed)."""
        return half_transform(self.sources[0])

    @property
    def f_tgt_scaled(self) -> np.ndarray:
        """numpy.ndarray of complex64 : Half transform of the target scaled onto the
        reference by :attr:`scaling` (computed)."""
        f = half_transform(self.sources[1])
        apply_target_factor(f, self.sources[0], self.scaling)
        return f

    def structure_factors(self):
        """Unique reflections to d_min of the reference and of the scaled target.

        Returns
        -------
        sf_ref, sf_tgt : StructureFactors
            Same reflections (for :func:`voxscale.write_mtz`).
        """
        keep = unique_reflection_mask(self.map.shape, self.map.cell, None,
                                      self.scaling.d_min)
        # one half transform at a time: each is selected and let go (memory)
        return (StructureFactors._view(self.f_ref, keep, self.map, f000=0.0)._detach(),
                StructureFactors._view(self.f_tgt_scaled, keep, self.map, f000=0.0)._detach())

    def write_mtz(self, path) -> None:
        """Write both maps' structure factors and the difference coefficients as MTZ.

        The difference (DELFWT, PHDELWT) is limited to the resolution range of the map, and
        the phases refer to the map's absolute position (see :func:`voxscale.write_mtz`).

        Parameters
        ----------
        path : str or os.PathLike
        """
        from ..maps.mtz import write_mtz
        write_mtz(path, *self.structure_factors(), d_max=self.scaling.d_max)


def _scaled_half_transforms(ref: Map, target: Map, d_max, d_min, *, scaling: str,
                            scaling_target: str, n_shells: int, nthreads: int,
                            transforms=(None, None)):
    """Half-transforms of both maps with the target's scaled onto the reference's, and the
    scaling (fitted on the unique reflections in the range). ``transforms``: the maps' half
    transforms when the caller has them (either may be None); the reference's is only read,
    the target's is scaled in place."""
    nthreads = resolve_threads(nthreads)
    check_same_grid(ref, target)
    d_max, d_min = check_resolution_range(d_max, d_min)
    for name, m in (("reference", ref), ("target", target)):
        if is_constant(m.data):
            raise VoxscaleError(f"the {name} map is constant: it has no structure factors to "
                                "compare")
    f_ref, f_tgt = (f if f is not None else half_transform(m, nthreads=nthreads)
                    for f, m in zip(transforms, (ref, target)))
    keep = unique_reflection_mask(ref.shape, ref.cell, d_max, d_min)
    selected = [f_ref[keep], f_tgt[keep], _selected_frequencies(ref, keep, squared=True),
                _selected_frequencies(ref, keep) if scaling == "anisotropic" else None]
    del keep
    # the selections handed over (popped, held by nothing here, and as positional arguments,
    # not through a tuple): scale_reflections frees what it is done with (memory)
    result = scale_reflections(selected.pop(0), selected.pop(0), selected.pop(0),
                               selected.pop(0), d_max=d_max, d_min=d_min, model=scaling,
                               target=scaling_target, n_shells=n_shells, nthreads=nthreads)
    apply_target_factor(f_tgt, ref, result)
    return f_ref, f_tgt, result


def _selected_frequencies(ref: Map, keep: np.ndarray, squared: bool = False) -> np.ndarray:
    """(n, 3) reciprocal vectors x, y, z (Å⁻¹) of the half-grid reflections where ``keep``,
    or with ``squared`` their (n,) |s|² (Å⁻²), selected from broadcast views: no
    per-reflection indices."""
    n = int(np.count_nonzero(keep))
    out = np.zeros(n) if squared else np.empty((n, 3))
    for axis, s_axis in enumerate(half_grid_frequencies(ref.shape, ref.cell)):
        if squared:
            out += np.broadcast_to(s_axis * s_axis, keep.shape)[keep]
        else:
            out[:, axis] = np.broadcast_to(s_axis, keep.shape)[keep]
    return out


#: z-planes of the half grid whose scale factors are made at once (memory: a slab, not a map).
FACTOR_SLAB = 16


def apply_target_factor(f: np.ndarray, ref: Map, result: ScalingResult) -> None:
    """f ← k·exp(−¼ sᵀBs)·f in place over the reference's half grid (f of shape
    (nz, ny, nx//2 + 1)): the scaling's factor, made in float32 slab by slab, never as a
    map-sized array (memory)."""
    sx, sy, sz = (a.astype(np.float32) for a in half_grid_frequencies(ref.shape, ref.cell))
    b = result.b_tensor.astype(np.float32)
    # the (y, x) part of sᵀBs, the same for every z-plane
    plane = b[1, 1] * sy * sy + b[0, 0] * sx * sx
    if b[0, 1]:
        plane = plane + 2 * b[0, 1] * sx * sy
    k = np.float32(result.k)
    for start in range(0, f.shape[0], FACTOR_SLAB):
        z = sz[start:start + FACTOR_SLAB]
        quad = b[2, 2] * z * z + plane
        if b[1, 2] or b[0, 2]:
            quad += 2 * z * (b[1, 2] * sy + b[0, 2] * sx)
        quad *= np.float32(-0.25)
        np.exp(quad, out=quad)
        quad *= k
        f[start:start + FACTOR_SLAB] *= quad


def compare_amplitudes(ref: Map, target: Map, d_max=None, d_min=None, *,
                       scaling: str = "isotropic", scaling_target: str = "wilson",
                       n_shells: int = 20, transforms=(None, None),
                       nthreads: int = 0) -> ScalingResult:
    """Amplitude scaling and per-shell statistics of two maps on one grid (no difference map).

    Parameters
    ----------
    ref, target, d_max, d_min, scaling, scaling_target, n_shells, nthreads
        See :func:`vector_difference`.
    transforms : tuple, optional
        ``(half_transform(ref), half_transform(target))`` when the caller has them, either
        may be None (the default: computed here); the reference's is only read, the
        target's is changed.

    Returns
    -------
    ScalingResult
    """
    nthreads = resolve_threads(nthreads)
    d_min = default_d_min(ref) if d_min is None else float(d_min)
    return _scaled_half_transforms(ref, target, d_max, d_min, scaling=scaling,
                                   scaling_target=scaling_target, n_shells=n_shells,
                                   nthreads=nthreads, transforms=transforms)[2]


def vector_difference(ref: Map, target: Map, d_max=None, d_min=None, *,
                      scaling: str = "isotropic", scaling_target: str = "wilson", mask=None,
                      noise=None, floor=None, floor_region=None, n_shells: int = 20,
                      transforms=(None, None), nthreads: int = 0) -> DifferenceResult:
    """Scale the target onto the reference by resolution and form the vector difference.

    Parameters
    ----------
    ref, target : Map
        Maps on the same grid (resample the target onto the reference first).
    d_max, d_min : float, optional
        Resolution range in Å (default: no low limit, and the Nyquist limit 2 × voxel).
    scaling : {"isotropic", "anisotropic", "scale"}, optional
        Scale model (see :func:`voxscale.scale_amplitudes`).
    scaling_target : {"wilson", "lsq"}, optional
        Fitting target of the scaling.
    mask : Map or numpy.ndarray, optional
        Region whose σ sets the units (default the whole box): without ``noise``, best the
        solvent, so that σ is the noise of the maps and not the difference itself.
    noise : tuple of Map, optional
        Realisations of the reference's and of the corrected target's noise on the
        reference grid (from half maps, :func:`voxscale.reciprocal.half_map_noise`, the
        target's resampled like the target). The difference is then noise-calibrated: each
        shell weighted by max(0, 1 − noise power / difference power), and the map divided by
        the standard deviation of the noise propagated through the same scaling and weights
        (over ``mask`` when given), so that its values are z-scores.
    floor : Map or numpy.ndarray, optional
        Without ``noise``: a per-voxel variance (density units²) added to σ², so that the map
        is Δ / √(σ² + floor): the resampling floor (:func:`resampling_floor`), which keeps
        the error of resampling between two grids from passing for peaks (see
        :attr:`DifferenceResult.resampling_floor`). Not changed. A Map may cover a box of
        the reference grid only (``resampling_floor(boxed=True)``): the floor is 0 outside.
    floor_region : Map or numpy.ndarray, optional
        Where the floor's size against σ is summarised (default ``mask``, the σ region), e.g.
        the region where peaks are sought.
    n_shells : int, optional
        Shells of the statistics.
    transforms : tuple of numpy.ndarray, optional
        ``(half_transform(ref), half_transform(target))`` when the caller has them; either
        None (the default) is computed here. The reference's is only read; the target's
        is overwritten (scaled, then the difference: memory).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    DifferenceResult
    """
    nthreads = resolve_threads(nthreads)
    d_min = default_d_min(ref) if d_min is None else float(d_min)
    f_ref, f_tgt, result = _scaled_half_transforms(
        ref, target, d_max, d_min, scaling=scaling, scaling_target=scaling_target,
        n_shells=n_shells, nthreads=nthreads, transforms=transforms)
    in_range = resolution_mask(ref.shape, ref.cell, d_max, d_min)
    # the difference in place of the target's transform (memory: a map less)
    delta = f_tgt
    delta -= f_ref
    del f_tgt, f_ref
    delta *= in_range
    region = None if mask is None else _mask_array(mask, ref.shape)
    weights = floor_stats = floor_box = None
    if floor is not None:
        if noise is not None:
            raise VoxscaleError("floor is for a difference without noise: with half maps the "
                                "noise of the difference bounds the resampling error")
        if isinstance(floor, Map):
            floor_box = _box_of(ref, floor, "the floor")
            floor = floor.data
        else:
            floor = np.asarray(floor)
            if floor.shape != ref.shape:
                raise GridMismatchError(f"the floor has shape {floor.shape}, not the "
                                        f"reference grid's {ref.shape}")
        # a float64 sum of float32 values is finite iff every value is (no boolean temporary)
        if not (np.isfinite(np.add.reduce(floor.reshape(-1), dtype=np.float64))
                and float(np.min(floor)) >= 0):
            raise VoxscaleError("the floor must be a variance: finite and not negative")
    if noise is None:
        diff = map_from_half_transform(delta, ref, overwrite=True, nthreads=nthreads)
        del delta
        sigma = mean_std(diff.data, mask=region)[1]
        source = "box" if mask is None else "mask"
        if sigma < ROUNDING_SIGMA * mean_std(ref.data)[1]:
            sigma = 0.0
        if floor is not None and sigma > 0:
            floor_stats = _divide_with_floor(
                diff.data, sigma, floor,
                region if floor_region is None else _mask_array(floor_region, ref.shape),
                floor_box)
    else:
        noise_delta = _noise_of_difference(noise, ref, result, in_range, nthreads)
        weights, per_reflection = _difference_weights(delta, noise_delta, ref, d_max, d_min,
                                                      nthreads)
        delta *= per_reflection
        noise_delta *= per_reflection
        del per_reflection
        diff = map_from_half_transform(delta, ref, overwrite=True, nthreads=nthreads)
        del delta
        noise_map = map_from_half_transform(noise_delta, ref, overwrite=True,
                                             nthreads=nthreads).data
        del noise_delta
        sigma = mean_std(noise_map, mask=region)[1]
        del noise_map
        source = "half_maps"
    del in_range
    if floor_stats is None:
        diff = Map._on_grid_of(_sigma_units(diff.data, sigma), ref)
    return DifferenceResult(diff, result, sigma, (ref, target), sigma_source=source,
                            weights=weights, resampling_floor=floor_stats)


#: Width (FWHM, in units of d_min) of the local mean square of the resampling error.
FLOOR_WIDTH = 1.0


def resampling_floor(ref: Map, round_trip: Map, d_max=None, d_min=None, *, transform=None,
                     scale_uncertainty: float = 0.0, centre=None, boxed: bool = False,
                     nthreads: int = 0) -> Map:
    """The resampling floor: local mean square of the error that resampling between two grids
    makes, as it would appear in a vector difference.

    The round trip is scaled onto the reference as a target is (k·exp(−B s²/4), fitted to
    the log intensity ratios of its shells, weighted by reflections and shared signal, at
    the shells' centres), the reference subtracted, the result limited to [d_max, d_min],
    squared and smoothed by a Gaussian of FWHM ``FLOOR_WIDTH`` × d_min. The part of the
    resampling's attenuation that such a scale absorbs is absorbed here too; the rest stays
    in a maps' difference, and so in the floor.

    With ``scale_uncertainty`` u, the first-order change of the reference under a scale error
    u about ``centre``, u·(x − c)·∇ρ (ρ limited to the range), is added in quadrature before
    the smoothing: a difference that the fitted factor's own uncertainty explains is no
    change (for a map against itself, the pose is fitted to ~1e-4 voxel, which at σ of a
    difference of identical noise would otherwise be tens of σ).

    Parameters
    ----------
    ref : Map
        The reference.
    round_trip : Map
        The reference after resampling to the other grid and back
        (:func:`voxscale.fit.resampling_round_trip`), on the reference grid or on a box of it
        (``region``); for a box, the floor is computed there (its outer d_min tapered to 0)
        and is 0 elsewhere.
    d_max, d_min : float, optional
        Resolution range in Å (default: no low limit, and the Nyquist limit 2 × voxel).
    transform : numpy.ndarray, optional
        ``half_transform(ref)`` when the caller has it (only read; not used for a box).
    scale_uncertainty : float, optional
        Standard uncertainty of the voxel-scale factor (a fraction, e.g. ``scan.uncertainty``;
        default 0: none).
    centre : array_like, shape (3,), optional
        x, y, z (Å) in the reference frame about which that factor scales (the target's box
        centre, moved by the fit); default the reference's centre.
    boxed : bool, optional
        For a round trip on a box: return the floor on that box only (it is 0 beyond it),
        not embedded in the whole grid (default False). :func:`vector_difference` takes
        either (memory: a map's worth less for a box of a small part of the grid).
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    Map
        The floor on the reference grid (or its box), in the reference's density units
        squared (for :func:`vector_difference`'s ``floor``).
    """
    nthreads = resolve_threads(nthreads)
    d_min = default_d_min(ref) if d_min is None else float(d_min)
    d_max, d_min = check_resolution_range(d_max, d_min)
    box = _box_of(ref, round_trip, "the round trip")
    window = None
    if box is None:
        grid = ref
        f_ref = half_transform(ref, nthreads=nthreads) if transform is None else transform
    else:
        # a box of the grid: both maps taken to 0 smoothly over d_min at its inner faces, so
        # that its transform sees no edge (the box's margin keeps the taper from the region
        # the floor is for)
        window = _taper(ref, box, d_min)
        ref_box = ref.data[box] * window
        grid = Map._on_grid_of(ref_box, round_trip)
        f_ref = half_transform(grid, nthreads=nthreads)
        grid = Map._grid_only(grid)  # only its geometry from here: the box's data go
        del ref_box
    in_range = resolution_mask(grid.shape, grid.cell, d_max, d_min)
    # the pose term first, squared, while the round trip's transform does not exist yet: the
    # derivative's map and temporaries and that transform are never held together (memory)
    pose = None
    if scale_uncertainty > 0:
        pose = _radial_derivative(f_ref, in_range, grid, ref.center if centre is None
                                  else np.asarray(centre, dtype=np.float64), nthreads)
        pose *= np.float32(scale_uncertainty)
        np.square(pose, out=pose)
    f_back = half_transform(round_trip if window is None
                            else Map._on_grid_of(round_trip.data * window, round_trip),
                            nthreads=nthreads)
    del window
    edges = shell_edges(d_max, d_min, WEIGHT_SHELLS)
    shells = shell_index(grid.shape, grid.cell, edges, nthreads=nthreads)
    sums = shell_sums(f_ref, f_back, shells, WEIGHT_SHELLS, nthreads=nthreads)
    del shells
    k, b = _shell_scale(sums, edges)
    # k·exp(−B s²/4) factorises by axis; then the range, both Friedel mates kept
    f_back *= np.float32(k)
    for s_axis in half_grid_frequencies(grid.shape, grid.cell):
        f_back *= np.exp(-0.25 * b * s_axis * s_axis).astype(np.float32)
    f_back -= f_ref
    f_back *= in_range
    del f_ref, in_range
    error = map_from_half_transform(f_back, grid, overwrite=True, nthreads=nthreads).data
    del f_back
    np.square(error, out=error)
    if pose is not None:
        error += pose
        del pose
    f_square = half_transform(Map._on_grid_of(error, grid), nthreads=nthreads)
    del error
    floor = gaussian_smooth_transform(f_square, grid, FLOOR_WIDTH * d_min, nthreads=nthreads)
    np.maximum(floor.data, 0.0, out=floor.data)  # a mean square: rounding may dip below 0
    if box is None or boxed:
        return floor  # on round_trip's grid: the reference's, or its box
    whole = np.zeros(ref.shape, np.float32)
    whole[box] = floor.data
    return Map._on_grid_of(whole, ref)


def _radial_derivative(f: np.ndarray, in_range: np.ndarray, grid: Map, centre: np.ndarray,
                       nthreads: int) -> np.ndarray:
    """(x − c)·∇ρ on the grid (density units), ρ the map whose half transform is ``f``, limited
    to ``in_range``: the change of ρ under a unit scale about c, to first order. With
    ρ(x) = (1/V) Σ F(h) exp(−2πi h·x) (docs/method.md), ∂ρ/∂x is the synthesis of −2πi·h_x·F."""
    out = None
    v, o = grid.voxel_size, grid.origin
    for axis, s_axis in enumerate(half_grid_frequencies(grid.shape, grid.cell)):
        # the range (0 or 1) first, then the axis's factor broadcast: no complex128 map
        g = f * in_range
        g *= (-2j * np.pi * s_axis).astype(np.complex64)
        d = map_from_half_transform(g, grid, overwrite=True, nthreads=nthreads).data
        del g
        shape = [1, 1, 1]
        shape[2 - axis] = grid.shape[2 - axis]
        x = (o[axis] + v[axis] * np.arange(grid.shape[2 - axis]) - centre[axis])
        d *= x.astype(np.float32).reshape(shape)
        if out is None:
            out = d
        else:
            out += d
        del d
    return out


def _box_of(ref: Map, part: Map, what: str):
    """None when ``part`` is on the reference grid; the (z, y, x) slices of the box of it that
    ``part`` covers (same voxel size, origin on a voxel); else GridMismatchError naming
    ``what``."""
    if part.shape == ref.shape and np.allclose(part.origin, ref.origin, rtol=0,
                                               atol=1e-3 * float(ref.voxel_size.min())):
        check_same_grid(ref, part)
        return None
    first = (part.origin - ref.origin) / ref.voxel_size
    lo = np.rint(first).astype(int)[::-1]
    hi = lo + np.asarray(part.shape)
    if (not np.allclose(part.voxel_size, ref.voxel_size, rtol=1e-5)
            or not np.allclose(first, np.rint(first), atol=1e-3)
            or np.any(lo < 0) or np.any(hi > np.asarray(ref.shape))):
        raise GridMismatchError(f"{what} (shape {part.shape}, origin "
                                f"{_triple(part.origin, 3)} Å) is neither on the reference grid "
                                f"nor on a box of it")
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _taper(ref: Map, box, width: float) -> np.ndarray:
    """Separable raised-cosine window over ``box`` (z, y, x slices of ``ref``): 1 inside,
    falling to 0 over ``width`` Å at each face of the box that is not a face of the grid."""
    window = np.ones(tuple(b.stop - b.start for b in box), np.float32)
    for axis, (b, n, v) in enumerate(zip(box, ref.shape, ref.voxel_size[::-1])):
        w = np.ones(b.stop - b.start)
        k = min(int(np.ceil(width / v)), len(w) // 2)
        ramp = 0.5 * (1 - np.cos(np.pi * (np.arange(k) + 0.5) / k)) if k else np.ones(0)
        if b.start > 0:
            w[:k] = ramp
        if b.stop < n:
            w[len(w) - k:] = ramp[::-1]
        shape = [1, 1, 1]
        shape[axis] = len(w)
        window *= w.reshape(shape).astype(np.float32)
    return window


def _shell_scale(sums, edges: np.ndarray) -> tuple:
    """(k, B) with ln(Σ|F₁|²/Σ|F₂|²) = 2 ln k − B s²/2 at the shells' centres, fitted by
    weighted least squares (weights: reflections × (1 + FSC/(1 − FSC)), FSC clipped as the
    amplitude scaling clips it)."""
    s_sq = (0.5 * (edges[:-1] + edges[1:])) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.log(sums.sum_f1_sq / sums.sum_f2_sq)
        fsc = sums.sum_re_cross / np.sqrt(sums.sum_f1_sq * sums.sum_f2_sq)
    use = np.isfinite(ratio) & (sums.count >= 2)
    if use.sum() < 2:
        return 1.0, 0.0
    fsc = np.clip(np.nan_to_num(fsc, nan=0.0), SIGNAL_FSC_FLOOR, SIGNAL_FSC_CAP)
    w = np.sqrt(sums.count * (1.0 + fsc / (1.0 - fsc)))[use]
    design = np.stack([np.full(use.sum(), 2.0), -0.5 * s_sq[use]], axis=1)
    (log_k, b), *_ = np.linalg.lstsq(design * w[:, None], ratio[use] * w, rcond=None)
    return float(np.exp(log_k)), float(b)


def floor_summary(floor, sigma: float, region=None, box=None, grid_shape=None) -> dict:
    """The resampling floor's size against σ: its width and the median and largest √floor / σ
    over ``region`` (bool mask; the whole grid when None or empty).

    Parameters
    ----------
    floor : Map or numpy.ndarray
        The floor (density units²), as from :func:`resampling_floor`.
    sigma : float
        σ of the difference (density units), > 0.
    region : numpy.ndarray of bool, optional
        On the whole grid.
    box : tuple of slice, optional
        (z, y, x) slices of the grid that ``floor`` covers (0 beyond them); None when it
        covers the grid.
    grid_shape : tuple of int, optional
        The grid's shape, with ``box`` (default the shape of ``region``).

    Returns
    -------
    dict
        ``width_fwhm_d_min``, ``rms_over_sigma_median``, ``rms_over_sigma_max``.
    """
    floor = floor.data if isinstance(floor, Map) else np.asarray(floor)
    if box is not None and grid_shape is None:
        if region is None:
            raise ValueError("a floor on a box needs the grid's shape (grid_shape or region)")
        grid_shape = np.shape(region)
    if region is None or not np.any(region):
        values = floor.reshape(-1)
        zeros = 0 if box is None else int(np.prod(grid_shape)) - floor.size
    elif box is None:
        values, zeros = floor[region], 0
    else:
        values = floor[region[box]]
        zeros = int(np.count_nonzero(region)) - len(values)
    # the median and largest of the values and `zeros` zeros (a floor is never negative)
    total = len(values) + zeros
    middle = sorted({(total - 1) // 2, total // 2})
    ordered = np.partition(values, [max(m - zeros, 0) for m in middle]) if len(values) else values
    picks = np.array([np.float32(0.0) if m < zeros else ordered[m - zeros] for m in middle],
                     dtype=np.float32)
    # in float32 as the values are: the summary does not depend on the floor's extent
    largest = np.max(values) if len(values) else np.float32(0.0)
    return {"width_fwhm_d_min": FLOOR_WIDTH,
            "rms_over_sigma_median": float(np.sqrt(np.mean(picks))) / sigma,
            "rms_over_sigma_max": float(np.sqrt(largest)) / sigma}


def _divide_with_floor(diff: np.ndarray, sigma: float, floor: np.ndarray, region,
                       box=None) -> dict:
    """diff ← diff / √(σ² + floor) in place (``floor`` is not changed; on the (z, y, x)
    slices ``box`` of the grid, 0 beyond them, or on the whole grid); the floor's size
    relative to σ over ``region`` (the whole box when None)."""
    summary = floor_summary(floor, sigma, region, box, diff.shape)
    # plane by plane: no temporary of the map's size (memory)
    inside = diff if box is None else diff[box]
    for plane, variance in zip(inside, floor):
        scale = np.divide(variance, np.float32(sigma * sigma), dtype=np.float32)
        scale += np.float32(1.0)
        np.sqrt(scale, out=scale)
        scale *= np.float32(sigma)
        plane /= scale
    if box is not None:  # beyond the box the floor is 0: √(σ² + 0) = σ
        outside = np.ones(diff.shape[1:], dtype=bool)
        outside[box[1:]] = False
        for z, plane in enumerate(diff):
            if box[0].start <= z < box[0].stop:
                plane[outside] /= np.float32(sigma)
            else:
                plane /= np.float32(sigma)
    return summary


#: Shells over the resolution range for the noise weights of a noise-calibrated difference.
WEIGHT_SHELLS = 40


def _noise_of_difference(noise, ref: Map, scaling: ScalingResult, in_range: np.ndarray,
                         nthreads: int) -> np.ndarray:
    """Half-transform of the difference's noise: k·g·N_target + N_reference in the range.

    The sum, not the difference: for maps with independent noise both have the variance
    (k·g)²·σ²_target + σ²_reference; for two maps of the same data (one noise) the
    difference of the realisations would cancel and call interpolation error significant,
    while the sum stays a bound on the noise."""
    noise_ref, noise_tgt = noise
    for name, m in (("reference", noise_ref), ("target", noise_tgt)):
        if m.shape != ref.shape:
            raise GridMismatchError(f"the {name}'s noise map has shape {m.shape}, not the "
                                    f"reference grid's {ref.shape}")
    out = half_transform(noise_tgt, nthreads=nthreads)
    apply_target_factor(out, ref, scaling)
    out += half_transform(noise_ref, nthreads=nthreads)
    out *= in_range
    return out


def _difference_weights(delta: np.ndarray, noise_delta: np.ndarray, ref: Map, d_max, d_min,
                        nthreads: int):
    """Per-shell weights w = max(0, 1 − ⟨|ΔN|²⟩/⟨|ΔF|²⟩), the fraction of the difference's
    power that is not noise (a Wiener weight, as FSC-weighted maps are made), as shell rows
    and as a half-grid array."""
    edges = shell_edges(d_max, d_min, WEIGHT_SHELLS)
    shells = shell_index(ref.shape, ref.cell, edges, nthreads=nthreads)
    sums = shell_sums(delta, noise_delta, shells, WEIGHT_SHELLS, nthreads=nthreads)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.nan_to_num(1.0 - sums.sum_f2_sq / sums.sum_f1_sq, nan=0.0)
    w = np.clip(w, 0.0, 1.0)
    per_reflection = np.where(shells >= 0, w[np.clip(shells, 0, WEIGHT_SHELLS - 1)],
                              0.0).astype(np.float32)
    count = np.maximum(sums.count, 1)
    rows = [{"d_max": float(1.0 / edges[j]) if edges[j] > 0 else float("inf"),
             "d_min": float(1.0 / edges[j + 1]), "weight": float(w[j]),
             "power_difference": float(sums.sum_f1_sq[j] / count[j]),
             "power_noise": float(sums.sum_f2_sq[j] / count[j])}
            for j in range(WEIGHT_SHELLS)]
    return rows, per_reflection


def difference_map(ref: Map, target: Map, d_max=None, d_min=None, *,
                   scaling: str = "isotropic", scaling_target: str = "wilson", mask=None,
                   n_shells: int = 20, nthreads: int = 0) -> Map:
    """Isomorphous vector-difference map target − reference, in σ units.

    Parameters
    ----------
    ref, target : Map
        Maps on the same grid.
    d_max, d_min : float, optional
        Resolution range in Å (default: all low-resolution terms, to the Nyquist limit).
    scaling, scaling_target, mask, n_shells, nthreads
        See :func:`vector_difference`.

    Returns
    -------
    Map
        ΔF = F_tgt'·e^{iφ_tgt} − F_ref·e^{iφ_ref} synthesised on the reference grid, divided by
        its σ over the whole box (or over ``mask``); all zero when the maps do not differ.
        Positive: more density in the target.

    Examples
    --------
    >>> import numpy as np, voxscale
    >>> rng = np.random.default_rng(0)
    >>> a = voxscale.Map(rng.random((20, 20, 20), np.float32), 1.0)
    >>> b = voxscale.Map(a.data + 0.1 * rng.random((20, 20, 20), np.float32), 1.0)
    >>> d = voxscale.difference_map(a, b, None, 3.0)
    >>> round(float(d.data.std()), 3)
    1.0
    """
    nthreads = resolve_threads(nthreads)
    return vector_difference(ref, target, d_max, d_min, scaling=scaling,
                             scaling_target=scaling_target, mask=mask, n_shells=n_shells,
                             nthreads=nthreads).map


def real_space_difference(ref: Map, target: Map, *, d_min=None, mask=None,
                          transforms=(None, None), overwrite: bool = False,
                          nthreads: int = 0) -> Map:
    """Real-space difference target − reference of the two maps normalised to equal σ.

    Parameters
    ----------
    ref, target : Map
        Maps on the same grid.
    d_min : float, optional
        Low-pass both maps to this resolution (Å) first, e.g. the worse of the two.
    mask : Map or numpy.ndarray, optional
        Region over which the means and σ are taken (default the whole box).
    transforms : tuple of numpy.ndarray, optional
        ``(half_transform(ref), half_transform(target))`` when the caller has them (read,
        not changed), for the low-pass; either None (the default) is computed here.
    overwrite : bool, optional
        The given transforms may be overwritten (low-passed in place: a map less).
    nthreads : int, optional

    Returns
    -------
    Map
        (target − mean)/σ − (ref − mean)/σ, in units of the maps' σ.
    """
    nthreads = resolve_threads(nthreads)
    check_same_grid(ref, target)
    region = None if mask is None else _mask_array(mask, ref.shape)

    def normalised(m: Map, f) -> np.ndarray:
        # one map at a time, normalised in place (a copy of the caller's map): memory
        if d_min is None:
            data = m.data.astype(np.float32, copy=True)
        elif f is None:
            data = low_pass(m, d_min, nthreads=nthreads).data
        elif overwrite:  # the caller's transform low-passed in place: no copy of it
            f *= _sphere_mask(m.shape, m.cell, d_min)
            data = map_from_half_transform(f, m, overwrite=True, nthreads=nthreads).data
        else:
            data = low_pass_of_transform(f, m, d_min, nthreads=nthreads).data
        mean, sd = mean_std(data, mask=region)
        if not sd > 0:
            raise ValueError("a map is flat; it cannot be normalised")
        data -= np.float32(mean)
        data /= np.float32(sd)
        return data

    f_ref, f_tgt = transforms
    out = normalised(target, f_tgt)
    out -= normalised(ref, f_ref)
    return Map(out, ref.voxel_size, ref.origin)
