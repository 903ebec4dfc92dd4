"""The noise of a map from its two half maps (docs/method.md §1 step 6).

A full map is (usually) the average of two independently reconstructed half maps, possibly
filtered or sharpened afterwards. With H̄ = (H₁ + H₂)/2 and N = (H₁ − H₂)/2, the two halves'
independent noise of equal variance gives N the same noise as H̄ and no signal; the full map
F relates to H̄ by a per-shell transfer t = Re ΣF·H̄* / Σ|H̄|² (1 for a plain average, the
filter or sharpening of post-processing otherwise). So t·N is a realisation of the full
map's noise: propagated through the same resampling and scaling as the map, it calibrates
the difference map in standard deviations of the noise.

Per shell the half maps also give the map's own FSC (between H₁ and H₂), its resolution
(FSC = 0.143, Rosenthal & Henderson 2003) and the full map's signal and noise power:
noise ⟨|t·N|²⟩, signal ⟨|F|²⟩ − noise.

References
----------
P. B. Rosenthal and R. Henderson, J. Mol. Biol. 333 (2003) 721–745.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import GridMismatchError, VoxscaleError
from ..maps.map import Map, is_constant
from ..threads import resolve_threads
from .shells import resolution_from_fsc, shell_edges, shell_index, shell_sums
from .transform import half_transform, map_from_half_transform

__all__ = ["HalfMapNoise", "half_map_noise", "check_half_map", "HALF_MAP_FSC_THRESHOLD"]

#: FSC between half maps at the resolution of the full map (Rosenthal & Henderson 2003).
HALF_MAP_FSC_THRESHOLD = 0.143


@dataclass
class HalfMapNoise:
    """A map's noise and resolution from its half maps.

    Attributes
    ----------
    noise : Map
        A realisation of the full map's noise, on the map's grid: t·(H₁ − H₂)/2.
    resolution : float
        Where the half-map FSC first falls below 0.143 (Å).
    edges : numpy.ndarray
        Shell edges in Å⁻¹ (increasing, to the Nyquist limit).
    fsc : numpy.ndarray
        Half-map FSC per shell.
    transfer : numpy.ndarray
        Per-shell t from the halves' average to the full map.
    signal_power, noise_power : numpy.ndarray
        Mean signal and noise power ⟨|F|²⟩ of the full map per shell.
    """

    noise: Map = field(repr=False)
    resolution: float
    edges: np.ndarray = field(repr=False)
    fsc: np.ndarray = field(repr=False)
    transfer: np.ndarray = field(repr=False)
    signal_power: np.ndarray = field(repr=False)
    noise_power: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        """The resolution and the per-shell curves (d in Å), for ``summary.json``."""
        with np.errstate(divide="ignore"):
            d = 1.0 / self.edges[1:]
        return {"resolution": self.resolution,
                "shells": [{"d_min": float(d[j]), "fsc": float(self.fsc[j]),
                            "transfer": float(self.transfer[j]),
                            "signal_power": float(self.signal_power[j]),
                            "noise_power": float(self.noise_power[j])}
                           for j in range(len(d))]}


def _xyz(v) -> str:
    return "(" + ", ".join(f"{float(x):.5g}" for x in v) + ")"


def check_half_map(full: Map, half: Map, name: str, *,
                   why: str = "half maps must be the two halves of that reconstruction, on "
                              "its grid") -> None:
    """Raise GridMismatchError (naming ``name``, saying ``why``) unless ``half`` is on
    ``full``'s grid (shape, voxel size, origin)."""
    if (half.shape != full.shape or not np.allclose(half.voxel_size, full.voxel_size,
                                                    rtol=1e-5)
            or not np.allclose(half.origin, full.origin,
                               atol=1e-3 * float(full.voxel_size.min()))):
        raise GridMismatchError(
            f"{name} (shape {half.shape}, voxel {_xyz(half.voxel_size)} Å, origin "
            f"{_xyz(half.origin)} Å) is not on the grid of its map (shape {full.shape}, voxel "
            f"{_xyz(full.voxel_size)} Å, origin {_xyz(full.origin)} Å): {why}")


#: The full map must correlate with the halves' average at least this well (median FSC over
#: the shells where the halves share signal): else they are not its halves.
FULL_TO_HALVES_FSC = 0.5


def _check_halves(halves, to_full, noise_sums, edges, names) -> None:
    """Refuse half maps without noise between them, or that are not the full map's halves."""
    total = float(np.sum(to_full.sum_f2_sq))
    if not float(np.sum(noise_sums.sum_f1_sq)) > 1e-10 * total:
        raise VoxscaleError(f"{names[0]} and {names[1]} are the same map: half maps are two "
                            "independent reconstructions, and their difference is the noise")
    with np.errstate(invalid="ignore", divide="ignore"):
        fsc_halves = np.nan_to_num(halves.fsc, nan=0.0)
        fsc_full = np.nan_to_num(to_full.fsc, nan=0.0)
    shared = fsc_halves[1:] > HALF_MAP_FSC_THRESHOLD
    if not shared.any():
        raise VoxscaleError(f"{names[0]} and {names[1]} share no signal (their FSC is below "
                            f"{HALF_MAP_FSC_THRESHOLD} in every shell): they are not two halves "
                            "of one reconstruction")
    agreement = float(np.median(fsc_full[1:][shared]))
    if agreement < FULL_TO_HALVES_FSC:
        raise VoxscaleError(f"{names[0]} and {names[1]} are not the halves of this full map: "
                            f"the full map's FSC against their average is {agreement:.2f} "
                            "where they share signal")


def half_map_noise(full: Map, half1: Map, half2: Map, *, n_shells: int = 50,
                   names=("half map 1", "half map 2"), nthreads: int = 0) -> HalfMapNoise:
    """The noise of ``full`` from its two half maps.

    Parameters
    ----------
    full : Map
        The full map.
    half1, half2 : Map
        Its half maps, on its grid.
    n_shells : int, optional
        Shells equal in 1/d³ up to the Nyquist limit (default 50).
    names : tuple of str, optional
        How the halves are named in errors (their files).
    nthreads : int, optional

    Returns
    -------
    HalfMapNoise

    Raises
    ------
    GridMismatchError
        If a half map is not on the full map's grid.
    """
    nthreads = resolve_threads(nthreads)
    for half, name in zip((half1, half2), names):
        if not isinstance(half, Map):
            raise VoxscaleError(f"{name} must be a Map, not {type(half).__name__}")
        check_half_map(full, half, name)
        if is_constant(half.data):
            raise VoxscaleError(f"{name} is constant: a half map is a reconstruction")
    f_full = half_transform(full, nthreads=nthreads)
    f1 = half_transform(half1, nthreads=nthreads)
    f2 = half_transform(half2, nthreads=nthreads)
    edges = shell_edges(None, 2.0 * float(np.max(full.voxel_size)), n_shells)
    shells = shell_index(full.shape, full.cell, edges, nthreads=nthreads)
    halves = shell_sums(f1, f2, shells, n_shells, nthreads=nthreads)
    f1 += f2
    f1 *= np.float32(0.5)   # H̄
    f2 *= np.float32(-1.0)
    f2 += f1                # H̄ − H₂ = (H₁ − H₂)/2 = N
    to_full = shell_sums(f_full, f1, shells, n_shells, nthreads=nthreads)
    del f1
    with np.errstate(invalid="ignore", divide="ignore"):
        transfer = np.nan_to_num(to_full.sum_re_cross / to_full.sum_f2_sq, nan=0.0)
        fsc = np.nan_to_num(halves.fsc, nan=0.0)
    # every reflection of a shell gets its shell's t (outside the shells, beyond Nyquist in
    # the corners, t of the last shell)
    per_reflection = transfer[np.clip(shells, 0, n_shells - 1)].astype(np.float32)
    f2 *= per_reflection
    del per_reflection
    noise_sums = shell_sums(f2, None, shells, n_shells, nthreads=nthreads)
    count = np.maximum(to_full.count, 1)
    noise_power = noise_sums.sum_f1_sq / count
    _check_halves(halves, to_full, noise_sums, edges, names)
    signal_power = np.maximum(to_full.sum_f1_sq / count - noise_power, 0.0)
    resolution = resolution_from_fsc(fsc, edges, threshold=HALF_MAP_FSC_THRESHOLD)
    noise = map_from_half_transform(f2, full, overwrite=True, nthreads=nthreads)
    return HalfMapNoise(noise, resolution, edges, fsc, transfer, signal_power, noise_power)
