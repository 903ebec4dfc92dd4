"""Peaks of difference maps, assigned to the nearest atoms of models.

Local maxima above +threshold and minima below −threshold (26-neighbour test in the C++ core)
are refined below the voxel by a parabola through the peak and its two neighbours along each
axis, merged when a stronger peak of the same sign lies within the merge radius, and sorted by
|height|. Each peak gets the volume (Å³) and the integral (height units × Å³) of its connected
region beyond the threshold (6-connected regions labelled in the C++ core), and for each
given model its nearest atom.
"""
from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Mapping, Optional

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from .. import _core
from ..errors import OptionError
from ..maps.map import Map
from ..maps.models import check_model_in_map, model_atom_positions
from ..threads import resolve_threads

__all__ = ["Peak", "PeakTable", "find_peaks", "nearest_atoms"]


@dataclass
class Peak:
    """One difference-map peak.

    Attributes
    ----------
    x, y, z : float
        Position in Å (refined below the voxel).
    height_sigma : float
        Height in the map's units (σ for difference maps); negative for negative peaks.
    volume_A3 : float
        Volume of the connected region beyond the threshold, Å³.
    integral : float
        Sum of the map over that region times the voxel volume (height units × Å³).
    nearest : dict
        For each model label, None or the nearest atom as ``chain``, ``residue_name``,
        ``residue_number``, ``atom``, ``distance`` (Å).
    """

    x: float
    y: float
    z: float
    height_sigma: float
    volume_A3: float
    integral: float
    nearest: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The peak as a flat dict (model labels become keys), as in ``peaks.json``."""
        out = {k: v for k, v in asdict(self).items() if k != "nearest"}
        out.update(self.nearest)
        return out


class PeakTable(list):
    """A list of :class:`Peak`, strongest first, with writers for CSV, JSON and ChimeraX."""

    labels: tuple = ()
    #: Peaks found beyond the threshold (inside the mask and away from the edge) before the
    #: cap; more than ``len(self)`` when the cap was hit.
    n_found: int = 0

    @property
    def capped(self) -> bool:
        """bool : Whether ``max_peaks`` cut the list."""
        return self.n_found > len(self)

    def to_json(self) -> str:
        """JSON: a list of peak objects (see :meth:`Peak.as_dict`)."""
        return json.dumps([p.as_dict() for p in self], indent=2) + "\n"

    def to_csv(self) -> str:
        """CSV with one row per peak; nearest atoms as label_chain, label_residue_name, …"""
        columns = ["rank", "x", "y", "z", "height_sigma", "volume_A3", "integral"]
        fields = ["chain", "residue_name", "residue_number", "atom", "distance"]
        columns += [f"{label}_{f}" for label in self.labels for f in fields]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for rank, p in enumerate(self, start=1):
            row = [rank, f"{p.x:.3f}", f"{p.y:.3f}", f"{p.z:.3f}", f"{p.height_sigma:.3f}",
                   f"{p.volume_A3:.2f}", f"{p.integral:.3f}"]
            for label in self.labels:
                atom = p.nearest.get(label)
                row += ["" if atom is None else (f"{atom[f]:.3f}" if f == "distance"
                                                 else atom[f]) for f in fields]
            writer.writerow(row)
        return buf.getvalue()

    def to_cmm(self, name: str = "voxscale peaks") -> str:
        """ChimeraX/Chimera marker file: red markers for negative, green for positive peaks.

        Written with :mod:`xml.etree.ElementTree`, so names and notes are escaped.
        """
        root = ET.Element("marker_set", name=name)
        for i, p in enumerate(self, start=1):
            r, g, b = (0.1, 0.75, 0.1) if p.height_sigma > 0 else (0.85, 0.1, 0.1)
            note = f"{p.height_sigma:+.1f} sigma"
            for label, atom in p.nearest.items():
                if atom is not None:
                    note += (f"; {label} {atom['chain']}/{atom['residue_name']}"
                             f"{atom['residue_number']} {atom['atom']} {atom['distance']:.1f} A")
            ET.SubElement(root, "marker", id=str(i), x=f"{p.x:.3f}", y=f"{p.y:.3f}",
                          z=f"{p.z:.3f}", r=str(r), g=str(g), b=str(b),
                          radius=f"{0.4 + 0.1 * min(abs(p.height_sigma), 20.0):.2f}", note=note)
        ET.indent(root)
        return ET.tostring(root, encoding="unicode") + "\n"


def _refine(data: np.ndarray, index: np.ndarray):
    """Sub-voxel offsets (x, y, z) and heights of extrema at ``index`` (n, 3; ix, iy, iz),
    from a 3-point parabola along each axis (none at the box edge)."""
    index = np.asarray(index, dtype=np.int64).reshape(-1, 3)
    ix, iy, iz = index.T
    v0 = data[iz, iy, ix].astype(np.float64)
    offset = np.zeros((len(index), 3))
    height = v0.copy()
    for axis in range(3):  # axis 0 = x (array axis 2)
        n = data.shape[2 - axis]
        inner = (index[:, axis] > 0) & (index[:, axis] < n - 1)
        lo, hi = index.copy(), index.copy()
        lo[:, axis] = np.where(inner, lo[:, axis] - 1, lo[:, axis])
        hi[:, axis] = np.where(inner, hi[:, axis] + 1, hi[:, axis])
        vm = data[lo[:, 2], lo[:, 1], lo[:, 0]].astype(np.float64)
        vp = data[hi[:, 2], hi[:, 1], hi[:, 0]].astype(np.float64)
        curv = vm - 2 * v0 + vp
        ok = inner & (curv != 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.where(ok, np.clip(0.5 * (vm - vp) / np.where(ok, curv, 1.0), -0.5, 0.5), 0.0)
        offset[:, axis] = off
        height -= 0.25 * (vm - vp) * off
    return offset, height


def nearest_atoms(points: np.ndarray, structure, *, max_distance: Optional[float] = None):
    """The nearest atom of a model to each point (:class:`gemmi.NeighborSearch`).

    Parameters
    ----------
    points : numpy.ndarray, shape (n, 3)
        Positions in Å.
    structure : gemmi.Structure
        Model (first model used). Maps are not periodic: the model's unit cell is ignored.
    max_distance : float, optional
        Report None beyond this distance (Å).

    Returns
    -------
    list of dict or None
        ``chain``, ``residue_name``, ``residue_number``, ``atom``, ``distance`` (Å).
    """
    model = structure[0]
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if not model.count_atom_sites():
        return [None] * len(points)
    search = gemmi.NeighborSearch(model, gemmi.UnitCell(), 6.0).populate()
    radius = float("inf") if max_distance is None else float(max_distance)
    out = []
    for p in points:
        pos = gemmi.Position(*p)
        mark = search.find_nearest_atom(pos, radius=radius)
        if mark is None:
            out.append(None)
            continue
        cra = mark.to_cra(model)
        distance = float(cra.atom.pos.dist(pos))
        if max_distance is not None and distance > max_distance:
            out.append(None)
            continue
        out.append({"chain": cra.chain.name, "residue_name": cra.residue.name,
                    "residue_number": int(cra.residue.seqid.num), "atom": cra.atom.name,
                    "distance": distance})
    return out


def _strongest_apart(positions: np.ndarray, positive: np.ndarray, radius: float) -> np.ndarray:
    """Indices of the candidates kept when, strongest first, a candidate closer than
    ``radius`` to a kept one of the same sign is dropped (candidates sorted strongest first).

    The close pairs come from a k-d tree (:class:`scipy.spatial.cKDTree`): the merge costs
    the number of candidates plus their close pairs, not their square.
    """
    if not len(positions):
        return np.zeros(0, dtype=np.int64)
    pairs = cKDTree(positions).query_pairs(radius, output_type="ndarray")
    pairs = np.sort(pairs[positive[pairs[:, 0]] == positive[pairs[:, 1]]], axis=1)
    weaker = {}
    for i, j in pairs:  # i is the stronger of the two
        weaker.setdefault(int(i), []).append(int(j))
    dropped = np.zeros(len(positions), dtype=bool)
    for i in range(len(positions)):
        if not dropped[i]:
            dropped[weaker.get(i, [])] = True
    return np.flatnonzero(~dropped)


def _allowed(diff_map: Map, index: np.ndarray, positions: np.ndarray, models: dict,
             max_distance, mask, edge_margin) -> np.ndarray:
    """Which candidates (voxel ``index`` ix, iy, iz; ``positions`` in Å) pass the mask, the
    edge margin and the distance to the models."""
    keep = np.ones(len(index), dtype=bool)
    if not len(index):
        return keep
    ix, iy, iz = index.T
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != diff_map.shape:
            raise OptionError(f"the peak mask has shape {mask.shape}, the map {diff_map.shape}")
        keep &= mask[iz, iy, ix]
    if edge_margin is not None and edge_margin > 0:
        lo = diff_map.origin + edge_margin
        hi = diff_map.origin + (np.array(diff_map.shape[::-1]) - 1) * diff_map.voxel_size \
            - edge_margin
        keep &= np.all((positions >= lo) & (positions <= hi), axis=1)
    if max_distance is not None and models:
        near = np.zeros(len(index), dtype=bool)
        for structure in models.values():
            xyz = model_atom_positions(structure)
            if len(xyz):
                near |= cKDTree(xyz).query(positions, distance_upper_bound=max_distance)[0] \
                    <= max_distance
        keep &= near
    return keep


def find_peaks(diff_map: Map, sigma: float = 4.0, models: Optional[Mapping] = None, *,
               merge_radius: Optional[float] = None, max_peaks: Optional[int] = 500,
               max_distance: Optional[float] = None, mask=None,
               edge_margin: Optional[float] = None, nthreads: int = 0) -> PeakTable:
    """Positive and negative peaks of a difference map beyond ±sigma.

    Parameters
    ----------
    diff_map : Map
        Difference map in σ units (as from :func:`voxscale.difference_map`).
    sigma : float, optional
        Threshold in the map's units (default 4).
    models : mapping of str to gemmi.Structure, optional
        Models whose nearest atom is reported for each peak, by label (e.g. ``{"ref": st1,
        "target": st2}``).
    merge_radius : float, optional
        Peaks of the same sign closer than this (Å) to a stronger one are dropped (default
        max(1.5 Å, 1.5 × the largest voxel size)).
    max_distance : float, optional
        Keep only peaks within this distance (Å) of an atom of one of the models, and give
        None for a model whose nearest atom is farther (default: keep every peak and report
        the nearest atom, with its distance).
    mask : numpy.ndarray of bool, shape (nz, ny, nx), optional
        Keep only peaks at voxels inside it (e.g. the molecular mask).
    edge_margin : float, optional
        Drop peaks closer than this (Å) to a face of the box, where the transform's
        periodicity and a cut density make differences of their own.
    max_peaks : int, optional
        Keep at most this many, strongest first (default 500: a flat difference map with
        its noise in σ units would otherwise give thousands).
    nthreads : int, optional

    Returns
    -------
    PeakTable
        Strongest |height| first.
    """
    nthreads = resolve_threads(nthreads)
    with np.errstate(over="ignore"):  # the kernels take it as float32
        sigma32 = np.float32(sigma) if np.isfinite(sigma) else np.float32(np.nan)
    if not (np.isfinite(sigma32) and sigma32 > 0):
        raise OptionError(f"sigma must be a positive number within float32, got {sigma!r}")
    if max_peaks is not None and (isinstance(max_peaks, bool) or int(max_peaks) != max_peaks
                                  or max_peaks < 1):
        raise OptionError(f"max_peaks must be a whole number >= 1 or None, got {max_peaks!r}")
    models = dict(models or {})
    radius = (max(1.5, 1.5 * float(np.max(diff_map.voxel_size))) if merge_radius is None
              else float(merge_radius))
    data = diff_map.data
    index, values = _core.local_extrema(data, float(sigma), nthreads)
    labels, region_count, region_sum = _core.label_regions(data, float(sigma))
    order = np.argsort(-np.abs(values), kind="stable")
    index, values = np.asarray(index, dtype=np.int64)[order].reshape(-1, 3), values[order]
    offset, height = _refine(data, index)
    positions = diff_map.origin + (index + offset) * diff_map.voxel_size
    for label, structure in models.items():
        check_model_in_map(structure, diff_map, what=f"the {label} model",
                           where="the difference map")
    # filtered before the merge: a stronger extremum outside the mask or at the edge must
    # not remove a weaker one inside
    allowed = np.flatnonzero(_allowed(diff_map, index, positions, models, max_distance, mask,
                                      edge_margin))
    kept = allowed[_strongest_apart(positions[allowed], values[allowed] > 0, radius)]
    table = PeakTable()
    table.n_found = len(kept)
    if max_peaks is not None:
        kept = kept[:max_peaks]
    table.labels = tuple(models)
    voxel_volume = float(np.prod(diff_map.voxel_size))
    for i in kept:
        ix, iy, iz = index[i]
        region = int(labels[iz, iy, ix]) - 1
        count, total = int(region_count[region]), float(region_sum[region])
        x, y, z = (float(v) for v in positions[i])
        table.append(Peak(x, y, z, float(height[i]), count * voxel_volume, total * voxel_volume))
    # Strongest refined height first (the search order used the voxel values).
    table.sort(key=lambda p: -abs(p.height_sigma))
    if models and table:
        points = np.array([[p.x, p.y, p.z] for p in table])
        for label, structure in models.items():
            for peak, atom in zip(table, nearest_atoms(points, structure,
                                                       max_distance=max_distance)):
                peak.nearest[label] = atom
    return table
