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
from dataclasses import asdict, dataclass, field
from typing import Mapping, Optional

import numpy as np

from . import _core
from .io import Map
from .models import check_model_in_map

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
        """ChimeraX/Chimera marker file: red markers for negative, green for positive peaks."""
        lines = [f'<marker_set name="{name}">']
        for i, p in enumerate(self, start=1):
            r, g, b = (0.1, 0.75, 0.1) if p.height_sigma > 0 else (0.85, 0.1, 0.1)
            radius = 0.4 + 0.1 * min(abs(p.height_sigma), 20.0)
            note = f"{p.height_sigma:+.1f} sigma"
            for label, atom in p.nearest.items():
                if atom is not None:
                    note += (f"; {label} {atom['chain']}/{atom['residue_name']}"
                             f"{atom['residue_number']} {atom['atom']} {atom['distance']:.1f} A")
            lines.append(f'<marker id="{i}" x="{p.x:.3f}" y="{p.y:.3f}" z="{p.z:.3f}" '
                         f'r="{r}" g="{g}" b="{b}" radius="{radius:.2f}" note="{note}"/>')
        lines.append("</marker_set>")
        return "\n".join(lines) + "\n"


def _refine(data: np.ndarray, iz: int, iy: int, ix: int):
    """Sub-voxel offset (x, y, z order) and height from 3-point parabolas along each axis."""
    v0 = float(data[iz, iy, ix])
    offset = np.zeros(3)
    height = v0
    idx = [ix, iy, iz]
    for axis in range(3):  # axis 0 = x (array axis 2)
        n = data.shape[2 - axis]
        if idx[axis] == 0 or idx[axis] == n - 1:
            continue
        lo, hi = list(idx), list(idx)
        lo[axis] -= 1
        hi[axis] += 1
        vm = float(data[lo[2], lo[1], lo[0]])
        vp = float(data[hi[2], hi[1], hi[0]])
        curv = vm - 2 * v0 + vp
        if curv == 0:
            continue
        off = float(np.clip(0.5 * (vm - vp) / curv, -0.5, 0.5))
        offset[axis] = off
        height -= 0.25 * (vm - vp) * off
    return offset, height


def _atom_table(structure):
    rows, xyz = [], []
    for chain in structure[0]:
        for res in chain:
            for atom in res:
                rows.append((chain.name, res.name, int(res.seqid.num), atom.name))
                xyz.append(atom.pos.tolist())
    return rows, np.array(xyz, dtype=np.float64).reshape(-1, 3)


def nearest_atoms(points: np.ndarray, structure, *, max_distance: Optional[float] = None):
    """The nearest atom of a model to each point.

    Parameters
    ----------
    points : numpy.ndarray, shape (n, 3)
        Positions in Å.
    structure : gemmi.Structure
        Model (first model used).
    max_distance : float, optional
        Report None beyond this distance (Å).

    Returns
    -------
    list of dict or None
        ``chain``, ``residue_name``, ``residue_number``, ``atom``, ``distance`` (Å).
    """
    rows, xyz = _atom_table(structure)
    out = []
    for p in np.asarray(points, dtype=np.float64).reshape(-1, 3):
        if not len(xyz):
            out.append(None)
            continue
        d2 = ((xyz - p) ** 2).sum(axis=1)
        i = int(np.argmin(d2))
        dist = float(np.sqrt(d2[i]))
        if max_distance is not None and dist > max_distance:
            out.append(None)
            continue
        chain, resname, resnum, atom = rows[i]
        out.append({"chain": chain, "residue_name": resname, "residue_number": resnum,
                    "atom": atom, "distance": dist})
    return out


def find_peaks(diff_map: Map, sigma: float = 4.0, models: Optional[Mapping] = None, *,
               merge_radius: Optional[float] = None, max_peaks: Optional[int] = 500,
               max_distance: Optional[float] = None, nthreads: int = 0) -> PeakTable:
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
        A peak farther than this (Å) from every atom of a model gets None for that model
        (default: always report the nearest atom, with its distance).
    max_peaks : int, optional
        Keep at most this many, strongest first (default 500: a flat difference map with
        its noise in σ units would otherwise give thousands).
    nthreads : int, optional

    Returns
    -------
    PeakTable
        Strongest |height| first.
    """
    if not (np.isfinite(sigma) and 0 < sigma < 1e30):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    models = dict(models or {})
    radius = (max(1.5, 1.5 * float(np.max(diff_map.voxel_size))) if merge_radius is None
              else float(merge_radius))
    data = diff_map.data
    index, values = _core.local_extrema(data, float(sigma), nthreads)
    labels, region_count, region_sum = _core.label_regions(data, float(sigma))
    order = np.argsort(-np.abs(values), kind="stable")
    accepted_pos = np.empty((0, 3))
    accepted_sign = np.empty(0, dtype=bool)
    table = PeakTable()
    table.labels = tuple(models)
    voxel_volume = float(np.prod(diff_map.voxel_size))
    for i in order:
        ix, iy, iz = (int(v) for v in index[i])
        offset, height = _refine(data, iz, iy, ix)
        pos = diff_map.origin + (np.array([ix, iy, iz]) + offset) * diff_map.voxel_size
        positive = bool(values[i] > 0)
        same = accepted_sign == positive
        if same.any() and np.min(np.sum((accepted_pos[same] - pos) ** 2, axis=1)) < radius**2:
            continue
        accepted_pos = np.vstack([accepted_pos, pos])
        accepted_sign = np.append(accepted_sign, positive)
        region = int(labels[iz, iy, ix]) - 1
        count, total = int(region_count[region]), float(region_sum[region])
        table.append(Peak(float(pos[0]), float(pos[1]), float(pos[2]), float(height),
                          count * voxel_volume, total * voxel_volume))
        if max_peaks is not None and len(table) >= max_peaks:
            break
    # Strongest refined height first (the search order used the voxel values).
    table.sort(key=lambda p: -abs(p.height_sigma))
    for label, structure in models.items():
        check_model_in_map(structure, diff_map, what=f"the {label} model",
                           where="the difference map")
    if models and table:
        points = np.array([[p.x, p.y, p.z] for p in table])
        for label, structure in models.items():
            for peak, atom in zip(table, nearest_atoms(points, structure,
                                                       max_distance=max_distance)):
                peak.nearest[label] = atom
    return table
