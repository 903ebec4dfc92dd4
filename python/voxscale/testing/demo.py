"""The demo's input pair: maps and models with a known voxel-size error and substitutions.

The test molecule is a four-helix bundle built from ideal geometry
(:func:`voxscale.testing.molecules.helix_bundle`). The reference map is its density at 3 Å on 1.0 Å
voxels; the target is the same molecule with a few residues substituted by alanine, rotated,
shifted, sampled every 1.05/f Å on its own box but labelled 1.05 Å — a true voxel-size error
of factor f, so the correction is s = 1/f — with noise added to both maps.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fit.rotations import rotation_from_vector
from ..maps.map import Map, relabel_voxel_size
from ..maps.models import transform_structure
from ..reciprocal.model_map import model_map
from .molecules import helix_bundle
from .variants import with_noise

__all__ = ["demo_inputs", "DEMO_SUBSTITUTIONS", "DEMO_FACTOR"]

#: Residues substituted by alanine in the target: (chain, number).
DEMO_SUBSTITUTIONS = (("A", 6), ("B", 11), ("C", 20), ("D", 15))
#: The target is sampled every v/f Å but labelled v: the correction factor is 1/f.
DEMO_FACTOR = 1.025


def demo_inputs(folder, *, size: int = 64, factor: float = DEMO_FACTOR,
                d_min: float = 3.0, noise: float = 0.1, seed: int = 1) -> dict:
    """Write the demo's maps and models into ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        Created if missing.
    size : int, optional
        Reference box edge in voxels (1.0 Å voxels; default 64).
    factor : float, optional
        Voxel-size error f of the target (default 1.025; the correction is 1/f).
    d_min : float, optional
        Resolution of both maps in Å (default 3).
    noise : float, optional
        Noise σ relative to each map's σ (default 0.1).
    seed : int, optional
        Random seed of the noise.

    Returns
    -------
    dict
        Paths (``ref``, ``target``, ``ref_model``, ``target_model``) and ``truth``
        (``scale`` = 1/f, ``substitutions`` as chain/number pairs, ``rotation_deg``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ref_model = helix_bundle()
    target_model = helix_bundle(substitutions=[(c, n, "ALA") for c, n in DEMO_SUBSTITUTIONS])
    original = {(ch.name, res.seqid.num): res.name for ch in ref_model[0] for res in ch}
    ref = model_map(ref_model, voxel_size=1.0, shape=(size,) * 3,
                    origin=np.full(3, -(size - 1) / 2.0), d_min=d_min)
    angle = 15.0
    rot = rotation_from_vector(np.radians(angle) * np.array([0.3, 0.5, 0.81]) / 1.0)
    move = np.eye(4)
    move[:3, :3] = rot
    move[:3, 3] = [4.0, -3.0, 2.5]
    moved = transform_structure(target_model, move)
    t_size = size - 4
    spacing = 1.05 / factor
    centre = move[:3, 3]
    target = model_map(moved, voxel_size=spacing, shape=(t_size,) * 3,
                       origin=centre - spacing * (t_size - 1) / 2.0, d_min=d_min)
    target = relabel_voxel_size(target, 1.05)
    with_noise(ref, noise, seed=seed, d_min=d_min).write(folder / "ref.mrc")
    with_noise(target, noise, seed=seed + 1, d_min=d_min).write(folder / "target.mrc")
    ref_model.write_pdb(str(folder / "ref_model.pdb"))
    # The target model in the target map's labelled frame: scaled by f about the box centre.
    labelled = np.eye(4)
    labelled[:3, :3] *= factor
    labelled[:3, 3] = centre * (1 - factor)
    transform_structure(moved, labelled).write_pdb(str(folder / "target_model.pdb"))
    return {"ref": folder / "ref.mrc", "target": folder / "target.mrc",
            "ref_model": folder / "ref_model.pdb", "target_model": folder / "target_model.pdb",
            "truth": {"scale": 1.0 / factor,
                      "substitutions": [{"chain": c, "number": n, "from": original[(c, n)],
                                         "to": "ALA"} for c, n in DEMO_SUBSTITUTIONS],
                      "rotation_deg": angle}}
