"""``voxscale demo``: the whole comparison on a pair the package makes itself.

The test molecule is a four-helix bundle built from ideal geometry
(:func:`voxscale.molecule.helix_bundle`). The reference map is its density at 3 Å on 1.0 Å
voxels; the target is the same molecule with a few residues substituted by alanine, rotated,
shifted, sampled every 1.05/f Å on its own box but labelled 1.05 Å — a true voxel-size error
of factor f, so the correction is s = 1/f — with noise added to both maps.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from .cliutil import add_common_options
from .fit import rotation_from_vector
from .io import Map
from .molecule import helix_bundle
from .sf import low_pass
from .simulate import model_map, relabel_voxel_size, transform_structure

__all__ = ["demo_inputs", "add_cli", "DEMO_SUBSTITUTIONS", "DEMO_FACTOR"]

#: Residues substituted by alanine in the target: (chain, number).
DEMO_SUBSTITUTIONS = (("A", 6), ("B", 11), ("C", 20), ("D", 15))
#: The target is sampled every v/f Å but labelled v: the correction factor is 1/f.
DEMO_FACTOR = 1.025


def _noisy(m: Map, level: float, resolution: float, seed: int) -> Map:
    """Add noise low-passed to the resolution, with σ = level × the map's σ."""
    rng = np.random.default_rng(seed)
    noise = low_pass(Map(rng.standard_normal(m.shape, dtype=np.float32), m.voxel_size,
                         m.origin), resolution)
    scale = level * float(m.data.std()) / float(noise.data.std())
    return Map(m.data + scale * noise.data, m.voxel_size, m.origin)


def demo_inputs(folder, *, size: int = 64, factor: float = DEMO_FACTOR,
                resolution: float = 3.0, noise: float = 0.1, seed: int = 1) -> dict:
    """Write the demo's maps and models into ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        Created if missing.
    size : int, optional
        Reference box edge in voxels (1.0 Å voxels; default 64).
    factor : float, optional
        Voxel-size error f of the target (default 1.025; the correction is 1/f).
    resolution : float, optional
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
                    origin=np.full(3, -(size - 1) / 2.0), resolution=resolution)
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
                       origin=centre - spacing * (t_size - 1) / 2.0, resolution=resolution)
    target = relabel_voxel_size(target, 1.05)
    _noisy(ref, noise, resolution, seed).write(folder / "ref.mrc")
    _noisy(target, noise, resolution, seed + 1).write(folder / "target.mrc")
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


def _cmd_demo(args: argparse.Namespace) -> int:
    from .cli import run_compare
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="voxscale-demo-") as tmp:
        made = demo_inputs(tmp, size=args.size)
        if not args.quiet:
            print("voxscale demo: a four-helix bundle; the target has a voxel-size error of "
                  f"{100 * (DEMO_FACTOR - 1):.1f} % and {len(DEMO_SUBSTITUTIONS)} residues "
                  "substituted by alanine", file=sys.stderr)
        summary = run_compare(made["ref"], made["target"], out,
                              ref_model_path=str(made["ref_model"]),
                              target_model_path=str(made["target_model"]),
                              threads=args.threads, force=args.force, quiet=args.quiet,
                              extra={"demo_truth": made["truth"]},
                              inputs={"ref": "demo reference map (generated)",
                                      "target": "demo target map (generated)",
                                      "ref_model": "helix bundle (generated)",
                                      "target_model": "helix bundle with substitutions"})
    if not args.quiet:
        truth = made["truth"]
        print(f"true factor {truth['scale']:.5f}, recovered "
              f"{summary['voxel_scale']['best_scale']:.5f}; substituted "
              + ", ".join(f"{s['chain']}/{s['from']}{s['number']}" for s in
                          truth["substitutions"]))
    return 0


def add_cli(subparsers) -> None:
    """Register ``voxscale demo``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
    """
    p = subparsers.add_parser(
        "demo", help="run the whole comparison on a generated map pair (no input files)",
        description="Build a test molecule, make a reference map and a target map with a known "
                    "voxel-size error and a few substitutions, and run 'voxscale compare' on "
                    "them; summary.json adds demo_truth.")
    p.add_argument("--out", default="voxscale-demo", help="output folder (default voxscale-demo)")
    p.add_argument("--size", type=int, default=64, help="reference box edge in voxels")
    add_common_options(p, out=False, force_help="write into an existing folder")
    p.set_defaults(run=_cmd_demo)
