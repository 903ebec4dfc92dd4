"""Local realignment: fit parts of the molecule separately after the global fit.

A domain that rotated between the two maps leaves a strong negative/positive difference pair
over all of it, hiding the chemical differences inside. Each selected part (a chain, or a
residue range of a chain, of the reference model) gets a mask of the voxels within a radius of
its atoms; the target's density inside the mask is refitted rigidly into the reference, the
target resampled with that transform, and the vector difference recomputed; inside each mask
the combined difference map takes the realigned part's difference.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..reciprocal.difference import vector_difference
from ..errors import VoxscaleError
from ..fit.rigid import ReferenceGrid, rigid_fit
from ..fit.rotations import rotation_angle_deg
from ..maps.map import Map
from ..maps.interpolation import resample
from ..threads import resolve_threads

__all__ = ["DomainFit", "LocalRealignment", "parse_domain", "domain_mask", "distance_to_atoms",
           "local_realignment"]

_DOMAIN = re.compile(r"^(?P<chain>[^:\s]+)(?::(?P<start>-?\d+)-(?P<end>-?\d+))?$")


def parse_domain(text: str):
    """Parse "A" (a whole chain) or "A:10-50" (residues 10 to 50 of chain A).

    Parameters
    ----------
    text : str

    Returns
    -------
    (chain, first, last)
        first and last are None for a whole chain.
    """
    m = _DOMAIN.match(text.strip())
    if not m:
        raise ValueError(f"domain {text!r} must be CHAIN or CHAIN:FIRST-LAST, e.g. A or A:10-50")
    start, end = m.group("start"), m.group("end")
    if start is not None and int(start) > int(end):
        raise ValueError(f"domain {text!r}: the first residue is after the last")
    return m.group("chain"), None if start is None else int(start), None if end is None else int(end)


def _domain_atoms(model, spec):
    """(the part's atoms, all other atoms) of the model's first model, (n, 3) in Å."""
    chain, first, last = spec
    inside, outside = [], []
    for ch in model[0]:
        for res in ch:
            own = ch.name == chain and (first is None or first <= res.seqid.num <= last)
            (inside if own else outside).extend(atom.pos.tolist() for atom in res)
    if not inside:
        where = "" if first is None else f":{first}-{last}"
        raise VoxscaleError(f"domain {chain}{where} has no atoms in the reference model")
    return np.array(inside), np.array(outside).reshape(-1, 3)


def distance_to_atoms(like: Map, atoms: np.ndarray, radius: float) -> np.ndarray:
    """Distance (Å) from every voxel of ``like``'s grid to the nearest atom, up to ``radius``.

    Parameters
    ----------
    like : Map
    atoms : numpy.ndarray, shape (n, 3)
        Positions in Å.
    radius : float
        Voxels farther than this from every atom get +inf.

    Returns
    -------
    numpy.ndarray of float32, shape like.shape
    """
    dist = np.full(like.shape, np.inf, dtype=np.float32)
    v = like.voxel_size
    reach = np.ceil(radius / v).astype(int)
    offsets = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach[::-1]], indexing="ij"),
                       axis=-1).reshape(-1, 3)  # (dz, dy, dx)
    shape = np.array(like.shape)
    for p in np.asarray(atoms, dtype=np.float64).reshape(-1, 3):
        idx = np.round((p - like.origin) / v).astype(int)[::-1] + offsets
        inside = np.all((idx >= 0) & (idx < shape), axis=1)
        idx = idx[inside]
        d = np.linalg.norm(like.origin + idx[:, ::-1] * v - p, axis=1)
        near = d <= radius
        idx, d = idx[near], d[near]
        current = dist[idx[:, 0], idx[:, 1], idx[:, 2]]
        dist[idx[:, 0], idx[:, 1], idx[:, 2]] = np.minimum(current, d)
    return dist


def domain_mask(like: Map, atoms: np.ndarray, radius: float = 3.0,
                other_atoms=None) -> np.ndarray:
    """Voxels within ``radius`` Å of the atoms (and nearer to them than to ``other_atoms``).

    Parameters
    ----------
    like : Map
    atoms : numpy.ndarray, shape (n, 3)
        The part's atom positions in Å.
    radius : float, optional
    other_atoms : numpy.ndarray, shape (m, 3), optional
        The rest of the molecule: voxels nearer to these are left out, so the mask does not
        take density of neighbouring parts.

    Returns
    -------
    numpy.ndarray of bool, shape like.shape
    """
    own = distance_to_atoms(like, atoms, radius)
    mask = np.isfinite(own)
    if other_atoms is not None and len(other_atoms):
        mask &= own < distance_to_atoms(like, other_atoms, radius)
    return mask


@dataclass
class DomainFit:
    """The local fit of one part.

    Attributes
    ----------
    domain : str
        As given (e.g. "A" or "A:10-50").
    transform : numpy.ndarray, shape (4, 4)
        Local correction in the reference frame: x_ref = R·x + t for the globally fitted target.
    rotation_deg, shift_A : float
        Size of that correction.
    cc_before, cc_after : float
        Correlation of the part's target density with the reference before and after.
    n_voxels : int
        Voxels in the part's mask.
    rms_before, rms_after : float
        RMS of the difference map inside the mask, in σ of the global difference map.
    """

    domain: str
    transform: np.ndarray
    rotation_deg: float
    shift_A: float
    cc_before: float
    cc_after: float
    n_voxels: int
    rms_before: float = float("nan")
    rms_after: float = float("nan")


@dataclass
class LocalRealignment:
    """Result of :func:`local_realignment`.

    Attributes
    ----------
    domains : list of DomainFit
    difference : Map
        The global difference map with every part replaced by its realigned difference, in σ
        of the global difference map.
    rms_rest : float
        RMS of the global difference map over the molecule outside the parts (σ).
    """

    domains: list
    difference: Map
    rms_rest: float
    masks: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        """dict : The per-part fits (the content of ``domains.json``)."""
        return {"rms_rest_sigma": self.rms_rest,
                "domains": [{"domain": d.domain, "transform": d.transform,
                             "rotation_deg": d.rotation_deg, "shift_A": d.shift_A,
                             "cc_before": d.cc_before, "cc_after": d.cc_after,
                             "n_voxels": d.n_voxels, "rms_before_sigma": d.rms_before,
                             "rms_after_sigma": d.rms_after} for d in self.domains]}


def local_realignment(ref: Map, target: Map, ref_model, domains, *, d_max=None, d_min=None,
                      radius: float = 3.0, nthreads: int = 0, **difference_options
                      ) -> LocalRealignment:
    """Refit parts of the target separately and recompute their differences.

    Parameters
    ----------
    ref : Map
        Reference map.
    target : Map
        Target on the reference grid, globally fitted and corrected (e.g.
        :func:`voxscale.corrected_target`).
    ref_model : gemmi.Structure
        Reference model; it defines the parts.
    domains : sequence of str
        Parts as "CHAIN" or "CHAIN:FIRST-LAST".
    d_max, d_min : float, optional
        Resolution range of the difference maps (Å).
    radius : float, optional
        Mask radius around the part's atoms (Å, default 3).
    nthreads : int, optional
    **difference_options
        Passed to :func:`voxscale.vector_difference` (scaling, n_shells, …).

    Returns
    -------
    LocalRealignment
    """
    nthreads = resolve_threads(nthreads)
    specs = [(text, parse_domain(text)) for text in domains]
    glob = vector_difference(ref, target, d_max, d_min, nthreads=nthreads, **difference_options)
    combined = glob.map.data * glob.sigma  # density units
    grid = ReferenceGrid(ref, order=3, nthreads=nthreads)
    molecule = domain_mask(ref, np.array([a.pos.tolist() for ch in ref_model[0] for r in ch
                                          for a in r]), radius)
    fits, masks = [], {}
    for text, spec in specs:
        own, others = _domain_atoms(ref_model, spec)
        mask = domain_mask(ref, own, radius, other_atoms=others)
        iz, iy, ix = np.nonzero(mask)
        if len(ix) < 50:
            raise VoxscaleError(f"domain {text}: only {len(ix)} voxels in its mask")
        xyz = ref.origin + np.stack([ix, iy, iz], axis=1) * ref.voxel_size
        values = target.data[iz, iy, ix].astype(np.float64)
        values = (values - values.mean()).astype(np.float32)
        before = grid.score(xyz, values, np.eye(3), np.zeros(3), xyz.mean(axis=0))[0]
        fit = rigid_fit(grid, xyz, values, np.eye(4), nthreads=nthreads)
        moved = resample(target, ref, fit.transform, 1.0, order=3, nthreads=nthreads)
        local = vector_difference(ref, moved, d_max, d_min, nthreads=nthreads,
                                  **difference_options)
        combined[mask] = local.map.data[mask] * local.sigma
        fits.append(DomainFit(text, fit.transform, fit.rotation_deg, fit.shift_A, float(before),
                              fit.cc, int(mask.sum())))
        masks[text] = mask
    sigma = glob.sigma if glob.sigma > 0 else 1.0
    rest = molecule.copy()
    for mask in masks.values():
        rest &= ~mask
    for f in fits:
        m = masks[f.domain]
        f.rms_before = float(np.sqrt(np.mean(glob.map.data[m] ** 2)))
        f.rms_after = float(np.sqrt(np.mean((combined[m] / sigma) ** 2)))
    rms_rest = float(np.sqrt(np.mean(glob.map.data[rest] ** 2))) if rest.any() else float("nan")
    return LocalRealignment(fits, Map((combined / sigma).astype(np.float32), ref.voxel_size,
                                      ref.origin), rms_rest, masks)
