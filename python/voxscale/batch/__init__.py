"""Surveys of many map pairs on a Dask cluster (``voxscale batch``).

Modules
-------
pairs
    The pair table, validated.
task
    One pair: the comparison pipeline without difference maps, and its memory estimate.
results
    results.csv (appended row by row) and results.parquet.
cluster
    A client of a running scheduler or of a new local cluster.
survey
    :func:`batch`: estimate, submit, collect, save.

Dask and pandas are imported only when a survey runs (``pip install voxscale[batch]``).
``voxscale.batch(pairs, ...)`` calls :func:`voxscale.batch.survey.batch`.
"""
import sys
import types

from .pairs import PairSpec, read_pairs
from .results import read_results
from .survey import batch
from .task import (COLUMNS, MEMORY_BASE, MEMORY_FACTOR_REF, MEMORY_FACTOR_TARGET,
                   estimate_memory, map_voxels, run_pair)

__all__ = ["batch", "read_pairs", "read_results", "run_pair", "PairSpec", "estimate_memory",
           "map_voxels", "COLUMNS", "MEMORY_FACTOR_REF", "MEMORY_FACTOR_TARGET", "MEMORY_BASE"]


class _CallableModule(types.ModuleType):
    """Lets ``voxscale.batch(pairs, ...)`` call :func:`batch`."""

    def __call__(self, *args, **kwargs):
        return batch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
