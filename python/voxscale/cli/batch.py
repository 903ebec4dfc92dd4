"""``voxscale batch PAIRS.csv``: survey many map pairs on a Dask cluster."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..errors import VoxscaleError
from .options import memory_size, positive_int
from .progress import ProgressBar

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register the sub-command."""
    p = subparsers.add_parser(
        "batch", help="survey many map pairs on a Dask cluster",
        description="Scan the voxel-scale factor of every pair of PAIRS.csv (columns ref, "
                    "target, optional id, ref_model, target_model, d_max, d_min, range_lo, "
                    "range_hi, step, contour; relative paths relative to the CSV's folder) and "
                    "compare the amplitudes before and after correction, one Dask task per "
                    "pair. Rows go to OUT/results.csv as they finish and to "
                    "OUT/results.parquet. Exit status 0 when the batch ran, even if pairs "
                    "failed (they are rows with status error).")
    p.add_argument("pairs", help="CSV table of the pairs")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="running Dask scheduler, e.g. tcp://host:8786 (default: start a local "
                        "cluster)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="worker processes of the local cluster (default cores // T)")
    p.add_argument("--threads-per-task", type=positive_int, default=1, metavar="T",
                   help="threads of each pair's kernels (default 1)")
    p.add_argument("--memory-per-worker", type=memory_size, default=None, metavar="BYTES",
                   help="memory limit of each local worker, e.g. 4GB (default: memory / N)")
    p.add_argument("--resume", action="store_true",
                   help="keep the ok rows of OUT/results.csv and run the rest")
    p.add_argument("--force", action="store_true", help="discard existing results")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the survey; 0 when it ran (failed pairs are rows), 130 when interrupted."""
    if args.workers is not None and args.workers < 1:
        raise VoxscaleError("--workers must be at least 1")
    if args.threads_per_task < 1:
        raise VoxscaleError("--threads-per-task must be at least 1")
    if args.resume and args.force:
        raise VoxscaleError("give --resume or --force, not both")
    from ..batch.survey import batch  # dask and pandas only when a survey runs

    try:
        with ProgressBar("batch", enabled=not args.quiet) as bar:
            table = batch(args.pairs, out=args.out, scheduler=args.scheduler,
                          workers=args.workers, threads_per_task=args.threads_per_task,
                          memory_per_worker=args.memory_per_worker, resume=args.resume,
                          force=args.force, progress=bar)
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"voxscale batch: interrupted ({signal.Signals(signum).name}); finished rows are "
              f"in {Path(args.out) / 'results.csv'}; run again with --resume to continue",
              file=sys.stderr)
        return 128 + int(signum)
    if not args.quiet:
        ok = int((table["status"] == "ok").sum())
        print(f"{len(table)} pairs: {ok} ok, {len(table) - ok} failed; written to "
              f"{Path(args.out) / 'results.csv'} and results.parquet")
    return 0
