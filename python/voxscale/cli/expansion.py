"""``voxscale expansion REF_MODEL TARGET_MODEL``: expansion coefficients of two models."""
from __future__ import annotations

import argparse

from .._version import __version__
from ..analysis.expansion import MAX_RMSD, expansion
from ..pipeline.output import OutputDir
from ..pipeline.plots import plot_expansion
from .options import add_common_options, positive_float

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register the sub-command."""
    p = subparsers.add_parser(
        "expansion", help="expansion coefficient of TARGET_MODEL relative to REF_MODEL",
        description="Superpose the target model on the reference by matched Cα atoms and fit "
                    "the shifts against the distance from the centre of mass (slopes in %%, "
                    "positive = target larger). Writes expansion.json and expansion.png into "
                    "--out.")
    p.add_argument("ref_model", help="reference model (PDB/mmCIF)")
    p.add_argument("target_model", help="target model (PDB/mmCIF)")
    p.add_argument("--chains", nargs="+", metavar="CHAIN",
                   help="reference chains to use (default all protein chains)")
    p.add_argument("--max-rmsd", type=positive_float, default=MAX_RMSD,
                   help="refuse models whose Cα RMSD after superposition is above this "
                        f"(Å, default {MAX_RMSD:g}): not one molecule, or paired wrongly")
    add_common_options(p, threads=False)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Fit the expansion, write expansion.json and expansion.png; 0."""
    with OutputDir(args.out, ["expansion.json", "expansion.png"], force=args.force) as out:
        result = expansion(args.ref_model, args.target_model, chains=args.chains,
                           max_rmsd=args.max_rmsd)
        report = result.to_dict()
        report["inputs"]["chains"] = args.chains
        report["version"] = __version__
        out.create()
        plot_expansion(result, out / "expansion.png")
        out.write_json("expansion.json", report)
    if not args.quiet:
        t, r = result.fits["total"], result.fits["radial"]
        f, f_se = result.similarity
        print(f"{result.n_pairs} Cα pairs, RMSD {result.rmsd:.2f} Å; expansion "
              f"{f:+.3f} ± {f_se:.3f} % (similarity transform), radial "
              f"{r['origin'].slope:+.3f} ± {r['origin'].slope_se:.3f} % (robust "
              f"{r['robust_origin'].slope:+.3f} %); shift length {t['origin'].slope:+.3f} % "
              f"(an upper bound); written to {out.path}")
    return 0
